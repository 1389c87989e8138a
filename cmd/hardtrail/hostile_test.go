package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/internal/testutil"
	"github.com/hardtrail/hardtrail/rules"
)

// measured is one run of the binary with what it cost.
type measured struct {
	stdout, stderr string
	code           int
	wall           time.Duration
	maxRSS         int64 // bytes, the process's peak resident set
}

// runMeasured runs the binary with env added to a clean environment and reports its peak RSS
// and wall time. The peak comes from wait4's rusage as GNU time reads it: the rusage of a
// direct child of this test would count the test's own pages (Go starts children with vfork,
// and the kernel carries the parent's high-water mark across exec), while time(1), small and
// forking for real, reports the binary's own.
func runMeasured(t testing.TB, env []string, args ...string) measured {
	t.Helper()
	timeTool := testutil.Tool(t, "time")
	rssFile := filepath.Join(t.TempDir(), "rss")
	cmd := exec.Command(timeTool, append([]string{"-q", "-f", "%M", "-o", rssFile, binary}, args...)...)
	cmd.Env = cleanEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	m := measured{stdout: stdout.String(), stderr: stderr.String(), wall: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		m.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(rssFile)
	if err != nil {
		t.Fatal(err)
	}
	kib, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("time(1) wrote %q", b)
	}
	m.maxRSS = kib << 10
	return m
}

func (m measured) within(t testing.TB, what string, wall time.Duration, rss int64) {
	t.Helper()
	t.Logf("%s: exit %d in %s, peak RSS %d MiB", what, m.code, m.wall.Round(time.Millisecond), m.maxRSS>>20)
	if m.wall > wall {
		t.Errorf("%s took %s, more than %s", what, m.wall, wall)
	}
	if m.maxRSS > rss {
		t.Errorf("%s peaked at %d MiB RSS, more than %d MiB", what, m.maxRSS>>20, rss>>20)
	}
}

// randomWords is an alternation of n random words: nothing for the matcher to share, so each
// byte of input costs time in proportion to n.
func randomWords(n int) string {
	r := rand.New(rand.NewPCG(3, 4))
	w := make([]string, n)
	for i := range w {
		b := make([]byte, 8)
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		w[i] = string(b)
	}
	return strings.Join(w, "|")
}

func commandRule(id, re string) string {
	return fmt.Sprintf("[[rule]]\nid = %q\ntitle = \"t\"\nseverity = \"high\"\ncontrols = [\"c\"]\n[rule.command]\nartifact = \"app/conf\"\nstdout_matches = %q\n", id, re)
}

// A rule file of a million rules is refused by its size before it is read, and, with the size
// limit raised, by its count before it is decoded.
func TestHostileMillionRules(t *testing.T) {
	p := filepath.Join(t.TempDir(), "many.toml")
	var b bytes.Buffer
	for i := range 1_000_000 {
		fmt.Fprintf(&b, "[[rule]]\nid = \"r%d\"\n", i)
	}
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	m := runMeasured(t, nil, "rules", "lint", p)
	if m.code != 2 || !strings.Contains(m.stdout, "bytes in one rule file") || !strings.Contains(m.stdout, "HARDTRAIL_RULES_MAX_FILE_BYTES=N") {
		t.Errorf("exit %d\n%s%s", m.code, m.stdout, m.stderr)
	}
	m.within(t, "lint of a million rules", 2*time.Second, 48<<20)
	m = runMeasured(t, []string{"HARDTRAIL_RULES_MAX_FILE_BYTES=1000000000"}, "rules", "lint", p)
	if m.code != 2 || !strings.Contains(m.stdout, "rules and waivers in one load") || !strings.Contains(m.stdout, "HARDTRAIL_RULES_MAX_RULES=N") {
		t.Errorf("size limit raised: exit %d\n%s%s", m.code, m.stdout, m.stderr)
	}
	m.within(t, "lint of a million rules, size limit raised", 3*time.Second, 160<<20)
}

// A pack whose regexp is a 100,000-word alternation is refused at load, with a short message;
// raised past the size limit, the rule's budget ends it, and SIGTERM ends check within a second.
func TestHostileRegexp(t *testing.T) {
	e := newAppEnv(t, strings.Repeat("x", 48<<10)+"\n", "")
	pack := filepath.Join(e.dir, "pack.toml")
	if err := os.WriteFile(pack, []byte(commandRule("huge", randomWords(100_000))), 0o644); err != nil {
		t.Fatal(err)
	}
	// Fetched, as a pack from elsewhere is.
	m := runMeasured(t, nil, "--config", e.config, "check", "--rules", "file://"+pack)
	if m.code != 2 || !strings.Contains(m.stderr, "rule.command.stdout_matches") || !strings.Contains(m.stderr, "HARDTRAIL_RULES_MAX_REGEXP_BYTES=N") {
		t.Errorf("exit %d\n%.2000s", m.code, m.stderr)
	}
	if len(m.stderr) > 1000 {
		t.Errorf("the error repeats the expression: %d bytes", len(m.stderr))
	}
	m.within(t, "check with a 100,000-word regexp", 3*time.Second, 100<<20)

	// Within raised limits, a 20,000-word alternation over 48 KB outlives a 500ms budget.
	slow := filepath.Join(e.dir, "slow.toml")
	os.WriteFile(slow, []byte(commandRule("slow", randomWords(20_000))+commandRule("quick", "^x")), 0o644)
	raised := []string{"HARDTRAIL_RULES_MAX_REGEXP_BYTES=10000000", "HARDTRAIL_RULES_MAX_REGEXP_INSTS=100000000"}
	m = runMeasured(t, append(raised, "HARDTRAIL_RULES_BUDGET=500ms"), "--config", e.config, "--format", "json", "check", "--rules", slow)
	doc := parseResults(t, m.stdout)
	if m.code != 1 || len(doc.Reports) != 1 {
		t.Fatalf("budget: exit %d\n%s", m.code, m.stderr)
	}
	res := map[string]rules.Result{}
	for _, r := range doc.Reports[0].Results {
		res[r.Rule] = r
	}
	if r := res["slow"]; r.Outcome != rules.Error || !strings.Contains(r.Message, "budget of 500ms") || len(r.Message) > 400 {
		t.Errorf("slow rule: %s %.500q", r.Outcome, r.Message)
	}
	if r := res["quick"]; r.Outcome != rules.Pass {
		t.Errorf("quick rule: %+v", r)
	}
	m.within(t, "check with a rule past its budget", 5*time.Second, 200<<20)

	// SIGTERM while the slow rule runs (with a budget of ten minutes) ends check within a second.
	cmd := exec.Command(binary, "--config", e.config, "check", "--rules", slow)
	cmd.Env = cleanEnv(append(raised, "HARDTRAIL_RULES_BUDGET=10m")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // capture and load are done well before
	cmd.Process.Signal(syscall.SIGTERM)
	stopped := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		t.Logf("check ended %s after SIGTERM: %s", time.Since(stopped).Round(time.Millisecond), strings.TrimSpace(stderr.String()))
		if d := time.Since(stopped); d > time.Second {
			t.Errorf("check took %s to end after SIGTERM", d)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("check did not end within 10s of SIGTERM")
	}
}

// zeroArchive writes a .tar.gz holding n files of size zero bytes each under INC-1/, and no
// manifest.
func zeroArchive(t testing.TB, path string, n int, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	zeros := make([]byte, 1<<20)
	tw.WriteHeader(&tar.Header{Name: "INC-1/", Typeflag: tar.TypeDir, Mode: 0o755})
	for i := range n {
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("INC-1/before/t/zero%d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: size})
		for left := size; left > 0; left -= int64(len(zeros)) {
			tw.Write(zeros[:min(left, int64(len(zeros)))])
		}
	}
	if err := errors.Join(tw.Close(), zw.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
}

// An archive of 4 x 255 MiB of zeros without a manifest is refused without holding its files.
func TestHostileBundleWithoutManifest(t *testing.T) {
	p := filepath.Join(t.TempDir(), "zeros.tar.gz")
	start := time.Now()
	zeroArchive(t, p, 4, 255<<20)
	t.Logf("archive written in %s", time.Since(start).Round(time.Millisecond))
	m := runMeasured(t, nil, "evidence", "verify", p)
	if m.code != 1 || !strings.Contains(m.stderr, "INC-1/manifest.json: missing") {
		t.Errorf("exit %d\n%s%s", m.code, m.stdout, m.stderr)
	}
	m.within(t, "evidence verify of 1 GiB of zeros", 5*time.Second, 48<<20)
}
