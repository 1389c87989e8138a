// Command testrun runs `go test -json` with the arguments it is given, prints the lines plain
// `go test` prints (each package's ok or FAIL line, and the output of failed and skipped tests),
// and ends with the count of tests that passed, failed and were skipped, and what was opted out.
//
// A skipped test that testutil did not record as an opt-out fails the run: a skip must be asked
// for by name (see internal/testutil).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	log, err := os.CreateTemp("", "hardtrail-optout-*")
	if err != nil {
		fmt.Fprintln(stderr, "testrun:", err)
		return 2
	}
	log.Close()
	defer os.Remove(log.Name())

	cmd := exec.Command("go", append([]string{"test", "-json"}, args...)...)
	cmd.Env = append(os.Environ(), "HARDTRAIL_TEST_OPTOUT_LOG="+log.Name())
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(stderr, "testrun:", err)
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "testrun:", err)
		return 2
	}
	s := newSummary(stdout)
	readErr := s.read(out)
	waitErr := cmd.Wait()
	optouts, err := os.ReadFile(log.Name())
	if err != nil {
		fmt.Fprintln(stderr, "testrun:", err)
		return 2
	}
	ok := s.finish(string(optouts))
	if readErr != nil {
		fmt.Fprintln(stderr, "testrun: reading go test -json:", readErr)
		return 2
	}
	var exit *exec.ExitError
	switch {
	case errors.As(waitErr, &exit):
		return exit.ExitCode()
	case waitErr != nil:
		fmt.Fprintln(stderr, "testrun:", waitErr)
		return 2
	case !ok:
		return 1
	}
	return 0
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Output     string
}

type key struct{ pkg, test string }

// summary turns the event stream back into plain `go test` output and counts the results.
type summary struct {
	w                    io.Writer
	buf                  map[key][]string
	passed, failed       int
	skipped              map[string]int // test name -> skips, to match with the recorded opt-outs
	nSkipped, buildFails int
}

func newSummary(w io.Writer) *summary {
	return &summary{w: w, buf: map[key][]string{}, skipped: map[string]int{}}
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			fmt.Fprintf(s.w, "%s\n", line) // not an event: pass it on as it came
			continue
		}
		s.event(e)
	}
	return sc.Err()
}

func (s *summary) event(e event) {
	k := key{e.Package, e.Test}
	switch {
	case e.Action == "build-output":
		fmt.Fprint(s.w, e.Output)
	case e.Action == "build-fail":
		s.buildFails++
	case e.Test == "" && e.Action == "output":
		if e.Output != "PASS\n" { // plain go test prints ok alone for a passing package
			fmt.Fprint(s.w, e.Output)
		}
	case e.Test == "" && e.Action == "fail":
		// A package that failed with tests still open (a panic, the -timeout) shows their output.
		for k := range s.buf {
			if k.pkg == e.Package {
				s.flush(k)
			}
		}
	case e.Test == "":
	case e.Action == "output":
		if t := strings.TrimLeft(e.Output, " "); strings.HasPrefix(t, "=== ") {
			return // RUN, PAUSE, CONT: the -v lines plain go test leaves out
		}
		s.buf[k] = append(s.buf[k], e.Output)
	case e.Action == "pass":
		s.passed++
		delete(s.buf, k)
	case e.Action == "fail":
		s.failed++
		s.flush(k)
	case e.Action == "skip":
		s.nSkipped++
		s.skipped[e.Test]++
		s.flush(k)
	}
}

// flush prints a test's output as plain go test does: its "--- FAIL" or "--- SKIP" line first,
// then what it logged (go test -json streams the log before that line).
func (s *summary) flush(k key) {
	lines := s.buf[k]
	i := len(lines) - 1
	for i >= 0 && !strings.HasPrefix(strings.TrimLeft(lines[i], " "), "--- ") {
		i--
	}
	if i > 0 {
		lines = append(append([]string{lines[i]}, lines[:i]...), lines[i+1:]...)
	}
	for _, l := range lines {
		fmt.Fprint(s.w, l)
	}
	delete(s.buf, k)
}

// finish prints the closing lines and reports whether every skip was an opt-out.
func (s *summary) finish(optouts string) bool {
	byNeed := map[string]int{}
	recorded := map[string]int{}
	for _, l := range strings.Split(optouts, "\n") {
		need, test, ok := strings.Cut(l, "\t")
		if !ok {
			continue
		}
		byNeed[need]++
		recorded[test]++
	}
	unasked := 0
	for test, n := range s.skipped {
		unasked += max(0, n-recorded[test])
	}
	optedOut := s.nSkipped - unasked
	fmt.Fprintln(s.w)
	if optedOut > 0 {
		var needs []string
		for n := range byNeed {
			needs = append(needs, n)
		}
		sort.Strings(needs)
		var parts []string
		for _, n := range needs {
			parts = append(parts, fmt.Sprintf("%s %d", n, byNeed[n]))
		}
		fmt.Fprintf(s.w, "opted out (HARDTRAIL_TEST_SKIP or -short): %s: %s\n", plural(optedOut, "test"), strings.Join(parts, ", "))
	}
	if unasked > 0 {
		fmt.Fprintf(s.w, "FAIL: %s skipped without an opt-out (use testutil.Tool, Root, Skip or Short)\n", plural(unasked, "test"))
	}
	if s.buildFails > 0 {
		fmt.Fprintf(s.w, "FAIL: %s failed to build\n", plural(s.buildFails, "package"))
	}
	// The last line has the plain form CI reads: "tests: N passed, N failed, N skipped".
	fmt.Fprintf(s.w, "%d ran, %d opted out\n", s.passed+s.failed+s.nSkipped, optedOut)
	fmt.Fprintf(s.w, "tests: %d passed, %d failed, %d skipped\n", s.passed, s.failed, s.nSkipped)
	return unasked == 0 && s.failed == 0 && s.buildFails == 0
}

// plural is "1 test", "2 tests".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
