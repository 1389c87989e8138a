package rules

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"
	"time"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// oneRule builds a set holding one rule with the given probe table (and extra head keys).
func oneRule(t testing.TB, head, probe string) *Set {
	t.Helper()
	src := fmt.Sprintf("[[rule]]\nid = \"r\"\ntitle = \"t\"\nseverity = \"high\"\ncontrols = [\"ISO27001:2022 A.8.9\"]\n%s\n%s\n", head, probe)
	s, err := LoadFS(fstest.MapFS{"r.toml": {Data: []byte(src)}})
	if err != nil {
		t.Fatalf("loading rule:\n%s\n%v", src, err)
	}
	return s
}

func evalOne(t testing.TB, s *Set, f Facts) Result {
	t.Helper()
	res := s.Evaluate(context.Background(), f, now)
	if len(res) != 1 {
		t.Fatalf("%d results", len(res))
	}
	return res[0]
}
