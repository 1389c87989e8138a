// Package testutil holds helpers shared by tests: finding real tools, and failing instead of
// skipping when CI=true.
package testutil

import (
	"os"
	"os/exec"
	"testing"

	"github.com/hardtrail/hardtrail/collector/transport"
)

// InCI reports whether the tests run in CI, where a missing tool is a failure, not a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Skip skips the test with reason, or fails it in CI.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true and the test cannot run: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Tool returns the path of a program (PATH, then the sbin directories), or skips the test
// (fails it in CI) when it is missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := transport.LookPath(name)
	if err != nil {
		Skip(t, "%s is not installed: %v", name, err)
	}
	return p
}

// Root skips the test (fails it in CI) unless it runs as root.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root")
	}
}

// Run runs a command and fails the test with its output on error.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
