package store

import (
	"context"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/internal/pgtest"
)

// A write whose commit went through on the server just before its connection broke is run
// again (the client cannot tell it committed): every kind of record is then stored once, not
// twice. A proxy in front of a real cluster breaks the connection after the server's COMMIT
// and before its reply.
func TestRetryAfterLostCommitStoresOnce(t *testing.T) {
	c := pgtest.Shared(t)
	db := c.NewDB(t, "")
	p := c.NewProxy(t)
	ctx := t.Context()
	s, err := Open(ctx, p.DSN(db, c.User))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	snap := func(content string, at time.Time) (*Manifest, [][]byte) {
		m := manifest("web1", "sshd/effective")
		m.Started, m.TakenAt = at, at
		return m, [][]byte{[]byte(content)}
	}
	m, cs := snap("permitrootlogin yes\n", t0)
	before, err := s.Save(ctx, m, cs)
	if err != nil {
		t.Fatal(err)
	}
	var after *Saved
	hold := HoldPolicy{MaxAge: 24 * time.Hour, MaxGap: time.Hour}
	steps := []struct {
		what, table string
		write       func() error
	}{
		{"snapshot", "snapshots", func() error {
			m, cs := snap("permitrootlogin no\n", t0.Add(time.Minute))
			after, err = s.Save(ctx, m, cs)
			return err
		}},
		{"held record", "held", func() error {
			m, cs := snap("permitrootlogin no\n", t0.Add(2*time.Minute))
			sv, err := s.SaveOrHold(ctx, m, cs, hold)
			if err == nil && !sv.Held {
				t.Errorf("the capture was not held: %+v", sv)
			}
			return err
		}},
		{"link", "links", func() error {
			_, err := s.Tag(ctx, Link{Incident: "INC-1", Phase: Before, Snapshot: before.ID, By: "alice"})
			return err
		}},
		{"incident record", "incident_records", func() error {
			_, err := s.AddRecord(ctx, Record{Incident: "INC-1", Kind: KindOpen, Title: "root logins", By: "alice"})
			return err
		}},
		{"note", "incident_records", func() error {
			_, err := s.AddRecord(ctx, Record{Incident: "INC-1", Kind: KindNote, Text: "fixed by hand", By: "alice"})
			return err
		}},
		{"status event", "status_events", func() error {
			_, err := s.RecordStatus(ctx, StatusEvent{Incident: "INC-1", Target: "web1", Status: "open", Cause: "no after", Snapshot: before.ID})
			return err
		}},
		{"results", "results", func() error {
			return s.SaveResults(ctx, after.ID, "sha256:r", time.Now(), []byte(`{"pass":true}`))
		}},
		{"rule set", "rule_sets", func() error {
			return s.SaveRuleSet(ctx, "sha256:r", []RuleFile{{Name: "r.toml", Text: []byte("# rules\n")}}, time.Now())
		}},
	}
	count := func(table string) int {
		var n int
		if err := s.r.QueryRowContext(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, st := range steps {
		n, drops := count(st.table), p.Drops()
		p.BreakNextCommit()
		if err := st.write(); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		if p.Drops() != drops+1 {
			t.Fatalf("%s: the proxy broke %d connections, want 1", st.what, p.Drops()-drops)
		}
		if got := count(st.table); got != n+1 {
			t.Errorf("%s: %d rows added to %s, want 1", st.what, got-n, st.table)
		}
	}
	rep, err := s.Verify(ctx)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}
	if h, err := s.Held(ctx, after.ID); err != nil || h.Count != 1 {
		t.Errorf("held span: %+v %v, want one capture", h, err)
	}
	var ids []string
	for _, l := range mustLinks(t, s) {
		ids = append(ids, l.ID)
	}
	if len(ids) != 1 {
		t.Errorf("links %v, want one", ids)
	}
}

func mustLinks(t *testing.T, s *Store) []Link {
	t.Helper()
	ls, err := s.Links(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	return ls
}
