package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// capture is a manifest of artifacts a and b taken at t.
func capture(target string, t time.Time, a, b string) (*Manifest, [][]byte) {
	m := &Manifest{Target: target, Transport: "local", Hostname: "h1", Started: t.Add(-time.Second), TakenAt: t, Profiles: []string{"linux"}, ToolVersion: "test"}
	m.Artifacts = []ArtifactEntry{
		{Name: "b", Source: "b", Command: []string{"cat", "b"}, DurationMS: t.UnixMilli() % 1000, Stderr: t.String()},
		{Name: "a", Source: "a", Path: "/etc/a", Mode: "0644", Owner: "root", Group: "root"},
	}
	return m, [][]byte{[]byte(b), []byte(a)}
}

func TestSaveOrHold(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	p := HoldPolicy{MaxAge: 24 * time.Hour, MaxGap: 10 * time.Minute}
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	step := func(at time.Time, a, b string, mutate func(*Manifest)) *Saved {
		t.Helper()
		m, c := capture("web1", at, a, b)
		if mutate != nil {
			mutate(m)
		}
		saved, err := s.SaveOrHold(ctx, m, c, p)
		if err != nil {
			t.Fatal(err)
		}
		return saved
	}
	first := step(t0, "A", "B", nil)
	if first.Held || first.Seq != 1 {
		t.Fatalf("first capture: %+v", first)
	}
	// Equal captures five minutes apart hold the snapshot; durations and stderr differ.
	for i := 1; i <= 3; i++ {
		got := step(t0.Add(time.Duration(i)*5*time.Minute), "A", "B", nil)
		if !got.Held || got.ID != first.ID || got.NewBlobs != 0 || got.Artifacts != 2 {
			t.Fatalf("equal capture %d: %+v", i, got)
		}
	}
	h, err := s.Held(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Since.Equal(t0) || !h.Until.Equal(t0.Add(15*time.Minute)) || h.Count != 3 || h.MaxGap != 5*time.Minute || h.Target != "web1" {
		t.Errorf("held %+v", h)
	}
	if log, _ := s.Log(ctx, LogQuery{Target: "web1"}); len(log) != 1 {
		t.Errorf("holding stored snapshots: %+v", log)
	}
	// Anything that is evidence ends the span with a new snapshot.
	at := t0.Add(20 * time.Minute)
	for _, tc := range []struct {
		name   string
		a      string
		mutate func(*Manifest)
	}{
		{"content", "A2", nil},
		{"back to the held content", "A", nil},
		{"exit code", "A", func(m *Manifest) { one := 1; m.Artifacts[0].ExitCode = &one }},
		{"file mode", "A", func(m *Manifest) { m.Artifacts[1].Mode = "0666" }},
		{"unavailable", "A", func(m *Manifest) { m.Artifacts[1].Unavailable = "permission denied" }},
		{"artifact gone", "A", func(m *Manifest) { m.Artifacts = m.Artifacts[1:] }},
		{"host key", "A", func(m *Manifest) { m.HostKey = "SHA256:x" }},
		{"tool version", "A", func(m *Manifest) { m.ToolVersion = "test2" }},
	} {
		at = at.Add(time.Minute)
		m, c := capture("web1", at, tc.a, "B")
		if tc.mutate != nil {
			tc.mutate(m)
			c = c[len(c)-len(m.Artifacts):]
		}
		got, err := s.SaveOrHold(ctx, m, c, p)
		if err != nil {
			t.Fatal(err)
		}
		if got.Held {
			t.Errorf("%s: a changed capture was held", tc.name)
		}
	}
	// The newest snapshot is what a capture is held against.
	latest := step(at.Add(time.Minute), "A", "B", nil)
	again := step(at.Add(2*time.Minute), "A", "B", nil)
	if latest.Held || !again.Held || again.ID != latest.ID {
		t.Errorf("after changes: %+v then %+v", latest, again)
	}
	// Too long since it was last seen, or too old: a new snapshot.
	gap := step(at.Add(2*time.Minute+p.MaxGap+time.Second), "A", "B", nil)
	if gap.Held {
		t.Error("held across a gap longer than MaxGap")
	}
	old := gap
	tt := at.Add(2*time.Minute + p.MaxGap + time.Second)
	for tt.Sub(at) < p.MaxAge+time.Hour {
		tt = tt.Add(p.MaxGap - time.Second)
		old = step(tt, "A", "B", nil)
		if !old.Held {
			break
		}
	}
	if old.Held || old.ID == gap.ID {
		t.Errorf("a snapshot older than MaxAge was held: %+v", old)
	}
	if d := tt.Sub(at.Add(2*time.Minute + p.MaxGap + time.Second)); d < p.MaxAge || d > p.MaxAge+p.MaxGap {
		t.Errorf("new snapshot after %s, want just past MaxAge %s", d, p.MaxAge)
	}
	rep, err := s.Verify(ctx)
	if err != nil || len(rep.Problems) != 0 || rep.Held < 3 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	// No policy: always a snapshot.
	m, c := capture("web1", tt.Add(time.Minute), "A", "B")
	if got, err := s.SaveOrHold(ctx, m, c, HoldPolicy{}); err != nil || got.Held {
		t.Errorf("zero policy: %+v %v", got, err)
	}
}

func TestHeldNotFound(t *testing.T) {
	s := open(t)
	sv := save(t, s, "web1", map[string]string{"a": "x"})
	if _, err := s.Held(context.Background(), sv.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Held of a snapshot never held: %v", err)
	}
}

func TestVerifyHeld(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	p := HoldPolicy{MaxAge: time.Hour, MaxGap: time.Hour}
	t0 := time.Now().Add(-time.Minute)
	m, c := capture("web1", t0, "A", "B")
	first, _ := s.SaveOrHold(ctx, m, c, p)
	m, c = capture("web1", t0.Add(time.Second), "A", "B")
	if got, err := s.SaveOrHold(ctx, m, c, p); err != nil || !got.Held {
		t.Fatalf("%+v %v", got, err)
	}
	tamper(t, s.Path(), `UPDATE held SET last_at = '2001-01-01T00:00:00Z'`)
	rep, _ := s.Verify(ctx)
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].String(), "held: held record 1 (") ||
		!strings.Contains(rep.Problems[0].Msg, `column last_at is "2001-01-01T00:00:00Z", the record says `+t0.Add(time.Second).UTC().Format(time.RFC3339Nano)) {
		t.Errorf("problems: %v", rep.Problems)
	}
	tamper(t, s.Path(), `UPDATE held SET target = 'db1', last_at = ?`, t0.Add(time.Second).UTC().Format(time.RFC3339Nano))
	rep, _ = s.Verify(ctx)
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Msg, `column target is "db1", the record says web1`) {
		t.Errorf("problems: %v", rep.Problems)
	}
	_ = first
}

func TestEqual(t *testing.T) {
	base := func() *Manifest {
		m, c := capture("web1", time.Now(), "A", "B")
		for i := range m.Artifacts {
			m.Artifacts[i].SHA256 = Hash(c[i])
		}
		return m
	}
	if !equal(base(), base()) {
		t.Fatal("a manifest differs from itself")
	}
	reordered := base()
	reordered.Artifacts[0], reordered.Artifacts[1] = reordered.Artifacts[1], reordered.Artifacts[0]
	reordered.Note, reordered.Started = "other note", time.Time{}
	reordered.Artifacts[0].Stderr, reordered.Artifacts[0].DurationMS = "warning", 99
	if !equal(base(), reordered) {
		t.Error("order, note, times, stderr or duration made manifests differ")
	}
	for name, mutate := range map[string]func(*Manifest){
		"hostname":  func(m *Manifest) { m.Hostname = "h2" },
		"profiles":  func(m *Manifest) { m.Profiles = append(m.Profiles, "x") },
		"command":   func(m *Manifest) { m.Artifacts[0].Command = []string{"cat", "c"} },
		"owner":     func(m *Manifest) { m.Artifacts[1].Owner = "nobody" },
		"truncated": func(m *Manifest) { m.Artifacts[0].Truncated = true },
		"meta":      func(m *Manifest) { m.Artifacts[0].Meta = map[string]string{"k": "v"} },
		"renamed":   func(m *Manifest) { m.Artifacts[0].Name = "c" },
		"hash":      func(m *Manifest) { m.Artifacts[1].SHA256 = Hash([]byte("other")) },
	} {
		m := base()
		mutate(m)
		if equal(base(), m) || equal(m, base()) {
			t.Errorf("%s: manifests equal", name)
		}
	}
}

// An unchanged capture that holds the newest snapshot costs the store one held record (no
// manifest, no blob). Beside it, the growth of storing the same captures as snapshots.
func TestHeldGrowth(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	p := HoldPolicy{MaxAge: 24 * time.Hour, MaxGap: time.Hour}
	m := func(at time.Time) (*Manifest, [][]byte) {
		m := &Manifest{Target: "web1", Transport: "local", Started: at, TakenAt: at, Profiles: []string{"linux"}, ToolVersion: "test"}
		var cs [][]byte
		for i := range 11 {
			m.Artifacts = append(m.Artifacts, ArtifactEntry{Name: fmt.Sprintf("art/%d", i), Source: "x"})
			cs = append(cs, []byte(strings.Repeat(fmt.Sprintf("line %d\n", i), 2000)))
		}
		return m, cs
	}
	// The pages in use, not the file's size: a schema upgrade leaves free pages that the
	// first records reuse, which would hide what they cost.
	size := func() int64 {
		s.w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
		var pages, free, pageSize int64
		s.r.QueryRow(`PRAGMA page_count`).Scan(&pages)
		s.r.QueryRow(`PRAGMA freelist_count`).Scan(&free)
		s.r.QueryRow(`PRAGMA page_size`).Scan(&pageSize)
		return (pages - free) * pageSize
	}
	t0 := time.Now().Add(-time.Hour)
	mf, cs := m(t0)
	if _, err := s.SaveOrHold(ctx, mf, cs, p); err != nil {
		t.Fatal(err)
	}
	const n = 50
	grow := func(policy HoldPolicy, from time.Time) float64 {
		before := size()
		for i := range n {
			mf, cs := m(from.Add(time.Duration(i+1) * time.Second))
			if _, err := s.SaveOrHold(ctx, mf, cs, policy); err != nil {
				t.Fatal(err)
			}
		}
		return float64(size()-before) / n
	}
	held := grow(p, t0)
	saved := grow(HoldPolicy{}, t0.Add(time.Minute))
	t.Logf("store growth per unchanged capture of 11 artifacts: %.0f bytes held, %.0f bytes as a snapshot", held, saved)
	if saved < 500 || held >= saved {
		t.Errorf("held %.0f bytes, saved %.0f bytes per capture", held, saved)
	}
	if h, err := s.Held(ctx, mustLatest(t, s, "web1")); err == nil {
		t.Errorf("the newest snapshot (stored without holding) is held: %+v", h)
	}
}

func mustLatest(t *testing.T, s *Store, target string) string {
	t.Helper()
	id, err := s.Latest(t.Context(), target)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
