package store

import (
	"strings"
	"testing"
	"time"

	_ "github.com/hardtrail/hardtrail/internal/testutil" // the -update flag every test binary takes
)

func TestStatusEvents(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	a := save(t, s, "web1", map[string]string{"a": "hard"})
	d := save(t, s, "db1", map[string]string{"a": "x"})
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i, tc := range []struct {
		e        StatusEvent
		recorded bool
		from     string
	}{
		{StatusEvent{Incident: "INC-1", Target: "web1", Status: "open", Cause: "no after snapshot yet"}, true, ""},
		{StatusEvent{Incident: "INC-1", Target: "web1", Status: "open", Cause: "still"}, false, ""},
		{StatusEvent{Incident: "INC-1", Target: "web1", Status: "verified", Cause: "all 1 linked rules pass", Snapshot: a.ID, RulesDigest: "sha256:r"}, true, "open"},
		{StatusEvent{Incident: "INC-1", Target: "db1", Status: "open", Snapshot: d.ID}, true, ""},
		{StatusEvent{Incident: "INC-2", Target: "web1", Status: "verified"}, true, ""},
		{StatusEvent{Incident: "INC-1", Target: "web1", Status: "regressed", Cause: "hardened change reverted in [a]", Snapshot: a.ID}, true, "verified"},
		{StatusEvent{Incident: "INC-1", Target: "web1", Status: "regressed", Cause: "another cause"}, false, ""},
	} {
		tc.e.At = t0.Add(time.Duration(i) * time.Minute)
		got, err := s.RecordStatus(ctx, tc.e)
		if err != nil {
			t.Fatal(err)
		}
		if (got != nil) != tc.recorded {
			t.Fatalf("event %d: recorded %v, want %v", i, got != nil, tc.recorded)
		}
		if got != nil && (got.From != tc.from || got.ID == "" || got.Format != StatusFormat) {
			t.Errorf("event %d: %+v", i, got)
		}
	}
	evs, err := s.StatusEvents(ctx, "INC-1")
	if err != nil || len(evs) != 4 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	if evs[2].Target != "db1" || evs[3].Status != "regressed" || evs[3].Cause != "hardened change reverted in [a]" || !evs[3].At.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("events %+v", evs)
	}
	all, _ := s.StatusEvents(ctx, "")
	for i := 1; i < len(all); i++ {
		if all[i].Prev != all[i-1].ID || all[i].Seq != all[i-1].Seq+1 {
			t.Errorf("chain broken at %d", i)
		}
	}
	for _, bad := range []StatusEvent{
		{Incident: "INC-1", Target: "web1", Status: "fixed"},
		{Incident: "1NC", Target: "web1", Status: "open"},
		{Incident: "INC-1", Target: "web 1", Status: "open"},
	} {
		if _, err := s.RecordStatus(ctx, bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
	rep, err := s.Verify(ctx)
	if err != nil || len(rep.Problems) != 0 || rep.Events != 5 {
		t.Fatalf("verify %+v %v", rep, err)
	}
	tamper(t, s.Path(), `UPDATE status_events SET record = replace(record, 'reverted', 'kept') WHERE seq = 5`)
	tamper(t, s.Path(), `DELETE FROM status_events WHERE seq = 2`)
	tamper(t, s.Path(), `UPDATE status_events SET record = replace(record, ?, ?) WHERE seq = 3`, d.ID, a.ID)
	rep, _ = s.Verify(ctx)
	var text []string
	for _, p := range rep.Problems {
		text = append(text, p.String())
	}
	joined := strings.Join(text, "\n")
	for _, w := range []string{"status_events: status event 5 (", "record hashes to", "chain gap: seq 3 follows seq 1", "belongs to target web1, not db1"} {
		if !strings.Contains(joined, w) {
			t.Errorf("verify does not say %q:\n%s", w, joined)
		}
	}
}
