package store

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func targetNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("t%03d", i)
	}
	return out
}

func lease(t *testing.T, s *Store, agent string, targets []string, ttl, every time.Duration) *Leases {
	t.Helper()
	l, err := s.Lease(t.Context(), LeaseRequest{Agent: agent, Targets: targets, TTL: ttl, Every: every})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// begin begins the capture of each target, as the agent does, and returns those it may capture.
func begin(t *testing.T, s *Store, agent string, targets []string, every time.Duration) []string {
	t.Helper()
	var out []string
	for _, tg := range targets {
		ok, err := s.BeginCapture(t.Context(), agent, tg, every)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			out = append(out, tg)
		}
	}
	return out
}

// leaseAndBegin renews the agent's leases and begins every due capture.
func leaseAndBegin(t *testing.T, s *Store, agent string, targets []string, ttl, every time.Duration) *Leases {
	t.Helper()
	l := lease(t, s, agent, targets, ttl, every)
	if got := begin(t, s, agent, l.Due, every); !slices.Equal(got, l.Due) {
		t.Fatalf("%s: began %v of the due %v", agent, got, l.Due)
	}
	return l
}

// One agent holds every target; a capture is due once per interval, whoever holds the target.
func TestLeaseClaimAndDue(t *testing.T) {
	onEngines(t, func(t *testing.T, open opener) {
		s := open(t)
		ts := targetNames(5)
		j, err := s.Lease(t.Context(), LeaseRequest{Agent: "a1", Targets: ts, TTL: time.Minute, Every: 400 * time.Millisecond, Join: true})
		if err != nil || len(j.Held)+len(j.Due)+len(j.Claimed) != 0 || j.Agents != 1 || j.Share != 5 {
			t.Fatalf("join: %+v %v", j, err)
		}
		l := leaseAndBegin(t, s, "a1", ts, time.Minute, 400*time.Millisecond)
		if !slices.Equal(l.Held, ts) || !slices.Equal(l.Due, ts) || !slices.Equal(l.Claimed, ts) || l.Agents != 1 || l.Share != 5 {
			t.Fatalf("first lease: %+v", l)
		}
		if got := begin(t, s, "a1", ts, 400*time.Millisecond); len(got) != 0 {
			t.Fatalf("began again at once: %v", got)
		}
		if got := begin(t, s, "a2", ts, time.Millisecond); len(got) != 0 {
			t.Fatalf("an agent without the leases began %v", got)
		}
		l = lease(t, s, "a1", ts, time.Minute, 400*time.Millisecond)
		if !slices.Equal(l.Held, ts) || len(l.Due) != 0 || len(l.Claimed) != 0 {
			t.Fatalf("renewed at once: %+v", l)
		}
		time.Sleep(DueAfter(400 * time.Millisecond))
		if l = lease(t, s, "a1", ts, time.Minute, 400*time.Millisecond); !slices.Equal(l.Due, ts) {
			t.Fatalf("an interval later: %+v", l)
		}
		rows, err := s.TargetLeases(t.Context())
		if err != nil || len(rows) != 5 || rows[0].Holder != "a1" || rows[0].CapturedBy != "a1" || rows[0].Captured.IsZero() {
			t.Fatalf("rows: %+v %v", rows, err)
		}
		// A target no longer configured is released.
		if l = lease(t, s, "a1", ts[:4], time.Minute, time.Hour); !slices.Equal(l.Released, ts[4:]) || len(l.Held) != 4 {
			t.Fatalf("one target fewer: %+v", l)
		}
	})
}

// A second agent gets half: the first sheds its excess at its next renewal, the second claims
// it at its own, and the shed targets are not due again before their interval is up.
func TestLeaseFairShare(t *testing.T) {
	onEngines(t, func(t *testing.T, open opener) {
		s := open(t)
		ts := targetNames(11)
		const every = time.Hour
		leaseAndBegin(t, s, "a1", ts, time.Minute, every)
		if l := lease(t, s, "a2", ts, time.Minute, every); len(l.Held) != 0 || l.Agents != 2 || l.Share != 6 {
			t.Fatalf("a2 joins: %+v", l)
		}
		if l := lease(t, s, "a1", ts, time.Minute, every); len(l.Held) != 6 || len(l.Released) != 5 || len(l.Due) != 0 {
			t.Fatalf("a1 sheds: %+v", l)
		}
		l2 := lease(t, s, "a2", ts, time.Minute, every)
		if len(l2.Held) != 5 || !slices.Equal(l2.Claimed, l2.Held) || len(l2.Due) != 0 {
			t.Fatalf("a2 claims: %+v", l2)
		}
		// A third: shares of 4.
		lease(t, s, "a3", ts, time.Minute, every)
		for _, a := range []string{"a1", "a2", "a3", "a1", "a2", "a3"} {
			lease(t, s, a, ts, time.Minute, every)
		}
		counts := holders(t, s)
		if counts["a1"]+counts["a2"]+counts["a3"] != 11 || counts["a1"] > 4 || counts["a2"] > 4 || counts["a3"] > 4 {
			t.Errorf("three agents hold %v", counts)
		}
	})
}

func holders(t *testing.T, s *Store) map[string]int {
	t.Helper()
	rows, err := s.TargetLeases(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.Holder]++
	}
	return out
}

// The targets of an agent that stops renewing are taken over once its leases expire; those of
// an agent that releases them, at once. Either way nothing is due twice in one interval.
func TestLeaseExpiryAndRelease(t *testing.T) {
	onEngines(t, func(t *testing.T, open opener) {
		s := open(t)
		ts := targetNames(6)
		const ttl, every = 2 * time.Second, time.Hour
		leaseAndBegin(t, s, "a1", ts, ttl, every)
		lease(t, s, "a2", ts, ttl, every)
		lease(t, s, "a1", ts, ttl, every) // sheds 3
		if l := lease(t, s, "a2", ts, ttl, every); len(l.Held) != 3 {
			t.Fatalf("a2: %+v", l)
		}
		// a1 dies (having begun no capture since). Before its leases expire a2 takes nothing.
		if l := lease(t, s, "a2", ts, ttl, every); len(l.Held) != 3 || l.Agents != 2 {
			t.Fatalf("a2 before expiry: %+v", l)
		}
		time.Sleep(ttl + 100*time.Millisecond)
		l := lease(t, s, "a2", ts, ttl, every)
		if !slices.Equal(l.Held, ts) || len(l.Claimed) != 3 || l.Agents != 1 || len(l.Due) != 0 {
			t.Fatalf("a2 after a1 expired: %+v", l)
		}
		// a2 stops cleanly: a3 takes everything at once.
		if err := s.ReleaseLeases(t.Context(), "a2"); err != nil {
			t.Fatal(err)
		}
		if l := lease(t, s, "a3", ts, ttl, every); !slices.Equal(l.Held, ts) || l.Agents != 1 || len(l.Due) != 0 {
			t.Fatalf("a3 after a2 released: %+v", l)
		}
	})
}

// Agents configured with different targets (an agent per server, each with its own target)
// do not count one another: each holds all of its own.
func TestLeaseSeparateFleets(t *testing.T) {
	onEngines(t, func(t *testing.T, open opener) {
		s := open(t)
		for i := range 3 {
			own := []string{fmt.Sprintf("server%d", i)}
			if l := lease(t, s, fmt.Sprintf("agent%d", i), own, time.Minute, time.Hour); !slices.Equal(l.Held, own) || l.Agents != 1 {
				t.Fatalf("agent %d: %+v", i, l)
			}
		}
	})
}

// Agents renewing at once, round after round, never hold a target together, end with fair
// shares, and every target is due exactly once in the interval, whichever agent holds it.
func TestLeaseConcurrentAgents(t *testing.T) {
	onEngines(t, func(t *testing.T, open opener) {
		s := open(t)
		ts := targetNames(90)
		const agents, rounds = 3, 12
		var mu sync.Mutex
		due := map[string]int{}
		var wg sync.WaitGroup
		errs := make(chan error, agents)
		for a := range agents {
			wg.Go(func() {
				for range rounds {
					l, err := s.Lease(t.Context(), LeaseRequest{Agent: fmt.Sprint("a", a), Targets: ts, TTL: time.Minute, Every: time.Hour})
					if err != nil {
						errs <- err
						return
					}
					for _, d := range l.Due {
						ok, err := s.BeginCapture(t.Context(), fmt.Sprint("a", a), d, time.Hour)
						if err != nil {
							errs <- err
							return
						}
						if ok {
							mu.Lock()
							due[d]++
							mu.Unlock()
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, tg := range ts {
			if due[tg] != 1 {
				t.Errorf("target %s was begun %d times in one interval", tg, due[tg])
			}
		}
		// One more round each settles the shares.
		for a := range agents {
			lease(t, s, fmt.Sprint("a", a), ts, time.Minute, time.Hour)
		}
		held := map[string]string{}
		for a := range agents {
			l := lease(t, s, fmt.Sprint("a", a), ts, time.Minute, time.Hour)
			for _, tg := range l.Held {
				if h, ok := held[tg]; ok {
					t.Errorf("target %s held by %s and a%d", tg, h, a)
				}
				held[tg] = fmt.Sprint("a", a)
			}
		}
		if counts := holders(t, s); len(held) != len(ts) || counts["a0"] != 30 || counts["a1"] != 30 || counts["a2"] != 30 {
			t.Errorf("%d of %d targets held; shares %v", len(held), len(ts), counts)
		}
	})
}

// Leases are not evidence: changing or removing lease rows changes neither the head nor what
// verification finds, and store copy leaves them behind.
func TestLeasesAreNotEvidence(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			loc, f := e.fixture(t)
			s, err := Open(t.Context(), loc)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			lease(t, s, "a1", []string{"web1", "db1"}, time.Minute, time.Minute)
			db := rawDB(t, loc)
			for _, q := range []string{`UPDATE leases SET holder = 'someone', captured_at = captured_at + 1`, `DELETE FROM leases WHERE kind = 'agent'`, `DELETE FROM leases`} {
				if _, err := db.Exec(q); err != nil {
					t.Fatal(err)
				}
				rep, err := s.VerifyWith(t.Context(), VerifyOptions{Head: f.final})
				if err != nil || len(rep.Problems) > 0 || rep.Head.Digest != f.final {
					t.Fatalf("after %s: %v %v, head %s", q, err, rep.Problems, rep.Head.Digest)
				}
			}
			lease(t, s, "a1", []string{"web1", "db1"}, time.Minute, time.Minute)
			dst := open(t)
			if _, err := Copy(t.Context(), s, dst); err != nil {
				t.Fatal(err)
			}
			if rows, err := dst.TargetLeases(t.Context()); err != nil || len(rows) != 0 {
				t.Errorf("the copy has leases %v (%v)", rows, err)
			}
		})
	}
}
