package main

import (
	"strings"
	"testing"

	_ "github.com/hardtrail/hardtrail/internal/testutil" // the -update flag every test binary takes
)

func TestSummary(t *testing.T) {
	const stream = `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- PASS: TestA (0.00s)\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: broke\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- FAIL: TestB (0.00s)\n"}
{"Action":"fail","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestC","Output":"--- SKIP: TestC (0.00s)\n"}
{"Action":"skip","Package":"p","Test":"TestC"}
{"Action":"output","Package":"p","Test":"TestD","Output":"--- SKIP: TestD (0.00s)\n"}
{"Action":"skip","Package":"p","Test":"TestD"}
{"Action":"run","Package":"p","Test":"TestE"}
{"Action":"output","Package":"p","Test":"TestE","Output":"panic: test timed out after 1s\n"}
{"Action":"output","Package":"p","Output":"FAIL\n"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t0.01s\n"}
{"Action":"fail","Package":"p"}
{"ImportPath":"q [q.test]","Action":"build-output","Output":"q/x.go:1:1: expected 'package'\n"}
{"ImportPath":"q [q.test]","Action":"build-fail"}
{"Action":"output","Package":"r","Output":"PASS\n"}
{"Action":"output","Package":"r","Output":"ok  \tr\t0.01s\n"}
`
	for _, tc := range []struct {
		name, optouts string
		ok            bool
		want          []string
		not           []string
	}{
		{"every skip asked for", "sshd\tTestC\nroot\tTestD\n", false, []string{
			"--- FAIL: TestB (0.00s)\n    b_test.go:9: broke\n",
			"--- SKIP: TestC", "panic: test timed out after 1s\n", "FAIL\tp\t0.01s\n", "q/x.go:1:1: expected 'package'\n", "ok  \tr\t0.01s\n",
			"opted out (HARDTRAIL_TEST_SKIP or -short): 2 tests: root 1, sshd 1\n",
			"FAIL: 1 package failed to build\n",
			"4 ran, 2 opted out\n", "tests: 1 passed, 1 failed, 2 skipped\n",
		}, []string{"=== RUN", "--- PASS", "\nPASS\n"}},
		{"a skip nobody asked for", "sshd\tTestC\n", false, []string{
			"FAIL: 1 test skipped without an opt-out",
			"4 ran, 1 opted out\n", "tests: 1 passed, 1 failed, 2 skipped\n",
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			s := newSummary(&out)
			if err := s.read(strings.NewReader(stream)); err != nil {
				t.Fatal(err)
			}
			if ok := s.finish(tc.optouts); ok != tc.ok {
				t.Errorf("finish = %v, want %v", ok, tc.ok)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out.String(), n) {
					t.Errorf("output has %q:\n%s", n, out.String())
				}
			}
			if !strings.HasSuffix(out.String(), tc.want[len(tc.want)-1]) {
				t.Errorf("last line is not the count:\n%s", out.String())
			}
		})
	}
}

// A passing run with no skips is ok.
func TestSummaryClean(t *testing.T) {
	var out strings.Builder
	s := newSummary(&out)
	if err := s.read(strings.NewReader(`{"Action":"pass","Package":"p","Test":"TestA"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	if !s.finish("") {
		t.Errorf("a clean run failed:\n%s", out.String())
	}
	if want := "1 ran, 0 opted out\ntests: 1 passed, 0 failed, 0 skipped\n"; !strings.HasSuffix(out.String(), want) {
		t.Errorf("got %q, want it to end in %q", out.String(), want)
	}
}
