package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that records a Fatalf or Skipf and ends only the goroutine it runs
// in (see call), not the test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Name() string                 { return "TestRecorded" }
func (r *recorder) Fatalf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...); runtime.Goexit() }
func (r *recorder) Skipf(f string, args ...any)  { r.skip = fmt.Sprintf(f, args...); runtime.Goexit() }
func (r *recorder) Fatal(args ...any)            { r.fatal = fmt.Sprint(args...); runtime.Goexit() }

// call runs f with a recorder in a goroutine of its own, which Fatalf and Skipf end.
func call(t *testing.T, f func(testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

// A missing tool fails with the package that installs it, unless opted out by name; an opt-out
// is recorded for the summary.
func TestToolOptOut(t *testing.T) {
	log := filepath.Join(t.TempDir(), "optouts")
	t.Setenv("CI", "")
	t.Setenv(OptOutLogVar, log)
	for _, tc := range []struct {
		skipVar, tool string
		fatal, skip   string
	}{
		{"", "no-such-tool-x", "no-such-tool-x is not installed", ""},
		{"", "rpm-not-here", "opt out with HARDTRAIL_TEST_SKIP=rpm-not-here", ""},
		{"promtool,no-such-tool-x", "no-such-tool-x", "", "opted out by HARDTRAIL_TEST_SKIP=no-such-tool-x"},
		{"all", "sh", "", "opted out by HARDTRAIL_TEST_SKIP=sh"},
	} {
		t.Setenv(OptOutVar, tc.skipVar)
		r := call(t, func(tb testing.TB) { Tool(tb, tc.tool) })
		if !strings.Contains(r.fatal, tc.fatal) || (tc.fatal == "") != (r.fatal == "") ||
			!strings.Contains(r.skip, tc.skip) || (tc.skip == "") != (r.skip == "") {
			t.Errorf("%s with %s=%q: fatal %q, skip %q; want %q, %q", tc.tool, OptOutVar, tc.skipVar, r.fatal, r.skip, tc.fatal, tc.skip)
		}
	}
	got, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if want := "no-such-tool-x\tTestRecorded\nsh\tTestRecorded\n"; string(got) != want {
		t.Errorf("recorded %q, want %q", got, want)
	}
	// CI ignores the opt-outs.
	t.Setenv("CI", "true")
	t.Setenv(OptOutVar, "all")
	r := call(t, func(tb testing.TB) { Tool(tb, "no-such-tool-x") })
	if r.skip != "" || !strings.Contains(r.fatal, "CI=true") {
		t.Errorf("in CI: fatal %q, skip %q", r.fatal, r.skip)
	}
}

// A tool testdeps.txt lists names its package in the failure.
func TestPackage(t *testing.T) {
	for tool, pkg := range map[string]string{"sshd": "openssh-server", "promtool": "prometheus", "initdb": "postgresql", "chromium": "chromium", "rpm": "rpm", "nope": ""} {
		if got := Package(tool); got != pkg {
			t.Errorf("Package(%q) = %q, want %q", tool, got, pkg)
		}
	}
}
