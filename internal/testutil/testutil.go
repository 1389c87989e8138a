// Package testutil holds helpers shared by tests: finding the real tools a test needs, and
// skipping a test only when its need is opted out by name.
//
// A test that needs a missing tool, or root, fails with the command that installs it. The
// variable HARDTRAIL_TEST_SKIP lists what to do without, comma-separated: tool names as the
// tests ask for them (sshd, promtool, iptables, ...), "root", or "all"; a test needing one of
// them is skipped and, when HARDTRAIL_TEST_OPTOUT_LOG names a file, recorded there, one line
// per test, so that `make test` can count the opt-outs. With CI=true the list is ignored.
package testutil

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// OptOutVar names the variable listing the needs whose tests are skipped on purpose.
const OptOutVar = "HARDTRAIL_TEST_SKIP"

// OptOutLogVar names the variable naming the file where each opt-out is recorded as
// "NEED<TAB>TEST" on a line of its own.
const OptOutLogVar = "HARDTRAIL_TEST_OPTOUT_LOG"

// InCI reports whether the tests run in CI, where nothing may be opted out.
func InCI() bool { return os.Getenv("CI") == "true" }

// OptedOut reports whether the tests that need need (a tool name, "root") are skipped on purpose.
func OptedOut(need string) bool {
	if InCI() {
		return false
	}
	for _, f := range strings.Split(os.Getenv(OptOutVar), ",") {
		if f = strings.TrimSpace(f); f == need || f == "all" {
			return true
		}
	}
	return false
}

// Skip skips the test when need is opted out, recording the opt-out; otherwise it fails the
// test with the reason and the two ways on: install what is missing, or opt out of need.
func Skip(t testing.TB, need, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if OptedOut(need) {
		record(t, need)
		t.Skipf("opted out by %s=%s: %s", OptOutVar, need, reason)
	}
	how := ""
	if pkg := Package(need); pkg != "" {
		how = fmt.Sprintf("install it (apt-get install -y --no-install-recommends %s, or `make test` as root on Debian), or ", pkg)
	}
	if InCI() {
		t.Fatalf("%s; CI=true: %sfix the machine", reason, how)
	}
	t.Fatalf("%s; %sopt out with %s=%s", reason, how, OptOutVar, need)
}

var recordMu sync.Mutex

// record appends one opt-out line to the file OptOutLogVar names, if any.
func record(t testing.TB, need string) {
	path := os.Getenv(OptOutLogVar)
	if path == "" {
		return
	}
	recordMu.Lock()
	defer recordMu.Unlock()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatalf("recording the opt-out: %v", err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s\t%s\n", need, t.Name()); err != nil {
		t.Fatalf("recording the opt-out: %v", err)
	}
}

//go:embed testdeps.txt
var testdeps string

// Deps returns the tools the tests need, each with the Debian package that installs it, in the
// order of testdeps.txt: the list `make test` and CI install from.
func Deps() [][2]string {
	var out [][2]string
	for _, line := range strings.Split(testdeps, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if f := strings.Fields(line); len(f) == 2 {
			out = append(out, [2]string{f[0], f[1]})
		}
	}
	return out
}

// Package returns the Debian package that installs the tool, or "" when testdeps.txt does not
// list it.
func Package(tool string) string {
	i := slices.IndexFunc(Deps(), func(d [2]string) bool { return d[0] == tool })
	if i < 0 {
		return ""
	}
	return Deps()[i][1]
}

// extraDirs are searched after PATH: sshd, iptables-save and nft live in the sbin directories,
// often missing from a non-root user's PATH, and Debian keeps PostgreSQL's server programs in a
// versioned directory of their own.
var extraDirs = []string{"/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/lib/postgresql/*/bin"}

// LookPath finds a program on PATH, then in the sbin directories and PostgreSQL's.
func LookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil || strings.Contains(name, "/") {
		return p, err
	}
	for _, d := range extraDirs {
		matches, _ := filepath.Glob(filepath.Join(d, name))
		slices.Sort(matches)
		for i := len(matches) - 1; i >= 0; i-- { // the newest PostgreSQL first
			if st, serr := os.Stat(matches[i]); serr == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return matches[i], nil
			}
		}
	}
	return "", err
}

// Tool returns the path of a program, or skips the test when the tool is opted out (whether it
// is installed or not), or fails it when the tool is missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if OptedOut(name) {
		Skip(t, name, "needs %s", name)
	}
	p, err := LookPath(name)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			err = errors.New("not found on PATH or in the sbin directories")
		}
		Skip(t, name, "%s is not installed: %v", name, err)
	}
	return p
}

// Root skips the test when root is opted out, and fails it unless it runs as root.
func Root(t testing.TB) {
	t.Helper()
	if OptedOut("root") {
		Skip(t, "root", "needs root")
	}
	if os.Geteuid() != 0 {
		Skip(t, "root", "needs root (run `sudo make test`)")
	}
}

// Short skips the test under `go test -short`, recording it as an opt-out named "short".
func Short(t testing.TB, reason string) {
	t.Helper()
	if testing.Short() {
		record(t, "short")
		t.Skipf("opted out by -short: %s", reason)
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

// Must fails the test when a set-up step returned an error: testutil.Must(t, os.WriteFile(...)).
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
