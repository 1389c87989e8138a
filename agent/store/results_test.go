package store

import (
	"fmt"
	"testing"
	"time"
)

// Re-evaluating unchanged rules on an unchanged snapshot stores nothing new; a report that
// differs in more than its time is a record of its own, and the newest is the report.
func TestSaveResultsAppends(t *testing.T) { onEngines(t, testSaveResultsAppends) }

func testSaveResultsAppends(t *testing.T, open opener) {
	s := open(t)
	ctx := t.Context()
	sv := save(t, s, "web1", map[string]string{"a": "x"})
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	report := func(at time.Time, pass bool) []byte {
		return fmt.Appendf(nil, `{"evaluated_at":%q,"results":[{"rule":"r","pass":%v}]}`, at.Format(time.RFC3339Nano), pass)
	}
	for i, tc := range []struct {
		pass    bool
		records int
	}{{false, 1}, {false, 1}, {false, 1}, {true, 2}, {true, 2}, {false, 3}} {
		at := t0.Add(time.Duration(i) * 5 * time.Minute)
		if err := s.SaveResults(ctx, sv.ID, "sha256:r", at, report(at, tc.pass)); err != nil {
			t.Fatal(err)
		}
		if n := s.countRows(t, "results"); n != tc.records {
			t.Fatalf("evaluation %d: %d records, want %d", i, n, tc.records)
		}
	}
	rs, err := s.Results(ctx, sv.ID)
	last := t0.Add(25 * time.Minute)
	if err != nil || len(rs) != 1 || string(rs[0].Report) != string(report(last, false)) || !rs[0].EvaluatedAt.Equal(last) {
		t.Fatalf("results %+v %v", rs, err)
	}
	if rep, err := s.Verify(ctx); err != nil || len(rep.Problems) > 0 || rep.Results != 3 {
		t.Fatalf("verify %+v %v", rep, err)
	}
}
