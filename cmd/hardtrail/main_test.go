package main

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/hardtrail/hardtrail/internal/pgtest"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hardtrail-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "hardtrail")
	// Built as `make build` builds it (static, stripped), so tests and benchmarks run what ships;
	// with symbols when a benchmark runs it under a profiler (HARDTRAIL_BENCH_WRAP).
	ldflags := "-ldflags=-s -w"
	if os.Getenv("HARDTRAIL_BENCH_WRAP") != "" {
		ldflags = "-ldflags="
	}
	build := exec.Command("go", "build", "-trimpath", ldflags, "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(2)
	}
	pgtest.Main(m, func() { os.RemoveAll(dir) })
}

// ht runs the binary and returns stdout, stderr and the exit code.
func ht(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	return htRun(t, nil, "", args...)
}

// htRun runs the binary in dir (the test's own when empty) with env added to a clean
// environment (no HARDTRAIL_* settings, no ssh-agent).
func htRun(t testing.TB, env []string, dir string, args ...string) (string, string, int) {
	t.Helper()
	stdout, stderr, code, err := htExec(env, dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return stdout, stderr, code
}

// htExec is htRun for goroutines other than the test's, which must not call t.Fatal: err is
// set when the binary could not be run at all.
func htExec(env []string, dir string, args ...string) (string, string, int, error) {
	cmd := exec.Command(binary, args...)
	cmd.Env = cleanEnv(env...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.String(), stderr.String(), ee.ExitCode(), nil
	}
	return stdout.String(), stderr.String(), 0, err
}

func mustHT(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, code := ht(t, args...)
	if code != 0 {
		t.Fatalf("hardtrail %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

type snapLine struct {
	ID        string `json:"id"`
	Target    string `json:"target"`
	Artifacts int    `json:"artifacts"`
	Changed   int    `json:"changed"`
	NewBlobs  int    `json:"new_blobs"`
	Error     string `json:"error"`
	Stage     string `json:"stage"`
}

func snapshotJSON(t testing.TB, args ...string) []snapLine {
	t.Helper()
	var out []snapLine
	if err := json.Unmarshal([]byte(mustHT(t, append(args, "--format", "json")...)), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The linux profile on this machine, twice: the second snapshot changes nothing and stores no
// new blob, and the store verifies.
func TestSnapshotTwiceLocal(t *testing.T) {
	store := filepath.Join(t.TempDir(), "new", "dir", "h.db")
	first := snapshotJSON(t, "--store", store, "snapshot")
	if len(first) != 1 || first[0].Target != "local" || first[0].Artifacts < 9 || first[0].Changed != first[0].Artifacts {
		t.Fatalf("first snapshot: %+v", first)
	}
	// Tests of other packages running at the same time open and close listening sockets, so a
	// changed net/listening is the host changing; try a few pairs before calling it a failure.
	var second []snapLine
	for try := 0; ; try++ {
		second = snapshotJSON(t, "--store", store, "snapshot", "local")
		if second[0].Changed == 0 {
			break
		}
		if try == 4 {
			t.Fatalf("unchanged host: every following snapshot changed something: %+v\n%s", second[0], mustHT(t, "--store", store, "show", "local"))
		}
	}
	if second[0].NewBlobs != 0 {
		t.Fatalf("unchanged snapshot stored %d new blobs", second[0].NewBlobs)
	}
	log := mustHT(t, "--store", store, "log", "-n", "2")
	lines := strings.Split(strings.TrimSpace(log), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], second[0].ID[:12]) {
		t.Errorf("log:\n%s", log)
	}
	prev := strings.Fields(lines[1])[0]
	show := mustHT(t, "--store", store, "show", "local")
	for _, want := range []string{"snapshot      " + second[0].ID, "previous      " + prev, "sshd/effective", "packages/installed", "0 of"} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}
	osr := mustHT(t, "--store", store, "show", first[0].ID[:8], "system/os-release")
	want, _ := os.ReadFile("/etc/os-release")
	if osr != string(want) {
		t.Errorf("show ARTIFACT gave %q", osr)
	}
	if out := mustHT(t, "--store", store, "store", "verify"); !strings.Contains(out, " snapshots and ") {
		t.Errorf("verify: %s", out)
	}
	st, _ := os.Stat(store)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("store mode %v", st.Mode())
	}
	kst, _ := os.Stat(store + ".key")
	if kst.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", kst.Mode())
	}
}

func TestExitCodesAndErrors(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "h.db")
	bad := filepath.Join(dir, "bad.toml")
	testutil.Must(t, os.WriteFile(bad, []byte("[[target]]\nname = \"a\"\nprofils = [\"linux\"]\n"), 0o600))
	cfg := filepath.Join(dir, "two.toml")
	testutil.Must(t, os.WriteFile(cfg, []byte(fmt.Sprintf("store = %q\n[[target]]\nname = \"local\"\n[[target]]\nname = \"gone\"\naddress = \"root@127.0.0.1:1\"\ntimeout = \"5s\"\n", store)), 0o600))
	cycle, err := filepath.Abs("../../testdata/config/invalid-jump-cycle.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--config", bad, "snapshot"}, 2, "bad.toml:3:1: target.profils: unknown key"},
		{[]string{"--config", filepath.Join(dir, "none.toml"), "snapshot"}, 2, "no such file"},
		{[]string{"--config", cycle, "snapshot"}, 2, `invalid-jump-cycle.toml:11:1: target[2].jump: target "a": jump hosts form a cycle: a -> b -> c -> a`},
		{[]string{"nosuchcommand"}, 2, "unknown command"},
		{[]string{"--store", store, "snapshot", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"--store", store, "snapshot", "nosuchtarget"}, 2, `unknown target "nosuchtarget"`},
		{[]string{"--store", store, "show", "deadbeef"}, 2, `no snapshot matches "deadbeef"`},
		{[]string{"--store", store, "show", "abc"}, 2, "at least 6 hex digits"},
		{[]string{"--store", store, "--format", "xml", "log"}, 2, `--format "xml": want one of: text, json`},
		{[]string{"--store", store, "--log-level", "loud", "log"}, 2, "--log-level"},
		{[]string{"--config", cfg, "snapshot"}, 1, "1 of 2 targets failed to capture"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := ht(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.err) {
				t.Errorf("exit %d, want %d; stderr %q lacks %q (stdout %q)", code, tc.code, errOut, tc.err, out)
			}
		})
	}
	// The good target of a mixed run was stored.
	if out := mustHT(t, "--config", cfg, "log"); !strings.Contains(out, "local") || strings.Contains(out, "gone") {
		t.Errorf("log after partial failure:\n%s", out)
	}
	out, _, _ := ht(t, "--config", cfg, "snapshot")
	if !strings.Contains(out, "gone  failed at ") {
		t.Errorf("failure line missing: %q", out)
	}
}

func TestVersion(t *testing.T) {
	out := mustHT(t, "version")
	if !strings.HasPrefix(out, "hardtrail ") || !strings.Contains(out, "go1.") {
		t.Errorf("version: %q", out)
	}
}

func TestStoreVerifyNamesTampering(t *testing.T) {
	store := filepath.Join(t.TempDir(), "h.db")
	s1 := snapshotJSON(t, "--store", store, "snapshot")[0]
	mustHT(t, "--store", store, "snapshot")
	db, err := sql.Open("sqlite", "file:"+store)
	if err != nil {
		t.Fatal(err)
	}
	var manifest []byte
	if err := db.QueryRow(`SELECT manifest FROM snapshots WHERE id = ?`, s1.ID).Scan(&manifest); err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(flate.NewReader(bytes.NewReader(manifest)))
	var m struct {
		Artifacts []struct{ Name, SHA256 string }
	}
	testutil.Must(t, json.Unmarshal(raw, &m))
	var hash string
	for _, a := range m.Artifacts {
		if a.Name == "system/os-release" {
			hash = a.SHA256
		}
	}
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, 5)
	zw.Write([]byte("ID=evil\n"))
	zw.Close()
	if _, err := db.Exec(`UPDATE blobs SET data = ? WHERE hash = ?`, buf.Bytes(), hash); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, _, code := ht(t, "--store", store, "store", "verify")
	if code != 1 || !strings.Contains(out, "snapshot "+s1.ID[:12]) || !strings.Contains(out, "artifact system/os-release: stored content is corrupt") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// Secrets in captured files never reach the store file, raw or compressed.
func TestNoSecretInStore(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "h.db")
	secrets, err := filepath.Abs("../../testdata/collector/secrets.txt")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.toml")
	testutil.Must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`store = %q
[[target]]
name = "local"
profiles = ["secrets"]
[[profile]]
name = "secrets"
[[profile.source]]
name = "file/secrets"
files = [%q]
[[profile.source]]
name = "cmd/secrets"
command = ["cat", %q]
[[profile.source]]
name = "cmd/stderr"
command = ["sh", "-c", "cat %s >&2; exit 1"]
`, store, secrets, secrets, secrets)), 0o600))
	mustHT(t, "--config", cfg, "snapshot")
	mustHT(t, "--config", cfg, "snapshot")
	words := secretWords(t)
	// The raw bytes of the database and its WAL.
	for _, f := range []string{store, store + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, w := range words {
			if bytes.Contains(b, []byte(w)) {
				t.Errorf("secret %q found in %s", w, f)
			}
		}
	}
	// Every blob and manifest, decompressed.
	db, _ := sql.Open("sqlite", "file:"+store)
	defer db.Close()
	rows, err := db.Query(`SELECT data FROM blobs UNION ALL SELECT manifest FROM snapshots`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var z []byte
		rows.Scan(&z)
		b, err := io.ReadAll(flate.NewReader(bytes.NewReader(z)))
		if err != nil {
			t.Fatal(err)
		}
		n++
		for _, w := range words {
			if bytes.Contains(b, []byte(w)) {
				t.Errorf("secret %q found in a stored blob or manifest", w)
			}
		}
	}
	if n < 3 {
		t.Fatalf("only %d blobs", n)
	}
	if out := mustHT(t, "--config", cfg, "show", "local", "file/secrets"); !strings.Contains(out, "<redacted:") {
		t.Errorf("no placeholder in stored file:\n%s", out)
	}
}

// secretWords are the secret values in the redaction fixture, as the collector tests list them.
func secretWords(t *testing.T) []string {
	b, err := os.ReadFile("../../testdata/collector/secrets.txt")
	if err != nil {
		t.Fatal(err)
	}
	words := []string{"s3cr3tCommunity", "RwC0mmunity!", "n0tPublicAtAll", "CorrectHorseBatteryStaple", "Ipsec-PreShared-Key-9000", "hunter2-but-longer", "AKIAIOSFODNN7EXAMPLE", "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=", "0KXYlqgD5p9hV3xQn3zq0a2uJ8wq", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU", "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMx"}
	for _, w := range words {
		if !bytes.Contains(b, []byte(w)) {
			t.Fatalf("fixture lacks %q", w)
		}
	}
	return words
}

func TestConcurrentProcesses(t *testing.T) {
	store := filepath.Join(t.TempDir(), "h.db")
	var wg sync.WaitGroup
	errs := make([]string, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, errOut, code, err := htExec(nil, "", "--store", store, "snapshot")
			if err != nil || code != 0 {
				errs[i] = fmt.Sprintf("exit %d (%v): %s %s", code, err, out, errOut)
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Error(e)
		}
	}
	if out := mustHT(t, "--store", store, "store", "verify"); !strings.Contains(out, "ok: 2 snapshots") {
		t.Errorf("verify: %s", out)
	}
}

// SIGKILL at random moments during snapshots: the store always verifies, and every snapshot
// that exists is whole.
func TestCrashSafety(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "h.db")
	// The linux profile plus many small files (each capped at 2 KiB so that store verify after
	// every kill stays quick), so that a good share of kills land while writing.
	cfg := filepath.Join(dir, "c.toml")
	testutil.Must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`store = %q
[[target]]
name = "local"
profiles = ["linux", "docs"]
[[profile]]
name = "docs"
[[profile.source]]
name = "docs"
files = ["/usr/share/doc/*/copyright", "/etc/*.conf"]
max_bytes = 2048
`, store)), 0o600))
	start := time.Now()
	mustHT(t, "--config", cfg, "snapshot")
	full := time.Since(start)
	kills := 50
	if testing.Short() {
		kills = 10
	}
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	killed := 0
	for i := range kills {
		cmd := exec.Command(binary, "--config", cfg, "snapshot", "--note", fmt.Sprint("run ", i))
		cmd.Env = append(os.Environ(), "HARDTRAIL_CONFIG=", "HARDTRAIL_STORE=")
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(full) * 12 / 10)))
		cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); err != nil {
			killed++
		} else {
			// It finished first: the machine got faster. Follow it, so that the kills keep
			// landing during snapshots rather than after them.
			full = (full + time.Since(start)) / 2
		}
		out, errOut, code := ht(t, "--store", store, "store", "verify")
		if code != 0 {
			t.Fatalf("after kill %d (at random within %s): store verify exit %d\n%s%s", i, full, code, out, errOut)
		}
	}
	t.Logf("%d kills, %d landed before the process finished; one snapshot takes %s", kills, killed, full)
	if killed < kills/4 {
		t.Errorf("only %d of %d kills interrupted a snapshot", killed, kills)
	}
}

func TestReadOnlyStore(t *testing.T) {
	testutil.Root(t)
	unshare := testutil.Tool(t, "unshare")
	dir := t.TempDir()
	store := filepath.Join(dir, "ro", "h.db")
	mustHT(t, "--store", store, "snapshot")
	// A read-only bind mount of the store's directory, in a private mount namespace.
	cmd := exec.Command(unshare, "--mount", "sh", "-c", `mount --bind -o ro "$1" "$1" && exec "$2" --store "$3" snapshot`, "sh", filepath.Dir(store), binary, store)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "is not writable") {
		t.Errorf("read-only store: %v\n%s", err, out)
	}
}

// A diff whose stored content was altered shows nothing of it, in any output mode: the
// contents are compared while they are checked against their hashes, and the output waits for
// the check.
func TestDiffOfAlteredContentShowsNothing(t *testing.T) {
	dir := t.TempDir()
	store, conf, cfg := filepath.Join(dir, "h.db"), filepath.Join(dir, "sshd_config"), filepath.Join(dir, "c.toml")
	testutil.Must(t, os.WriteFile(cfg, fmt.Appendf(nil, "[[profile]]\nname = \"f\"\n[[profile.source]]\nname = \"sshd/config\"\nfiles = [%q]\n\n[[target]]\nname = \"t\"\nprofiles = [\"f\"]\n", conf), 0o644))
	testutil.Must(t, os.WriteFile(conf, []byte(strings.Repeat("PermitRootLogin yes\n", 5000)), 0o644))
	mustHT(t, "--config", cfg, "--store", store, "snapshot")
	after := strings.Repeat("PermitRootLogin no\n", 5000)
	testutil.Must(t, os.WriteFile(conf, []byte(after), 0o644))
	s2 := snapshotJSON(t, "--config", cfg, "--store", store, "snapshot")[0]
	if out := mustHT(t, "--config", cfg, "--store", store, "diff", "t~1", "t"); !strings.Contains(out, "+PermitRootLogin no") {
		t.Fatalf("diff before the change to the store:\n%.300s", out)
	}
	db, err := sql.Open("sqlite", "file:"+store)
	testutil.Must(t, err)
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, 5)
	zw.Write([]byte(strings.Replace(after, "PermitRootLogin no", "PermitRootLogin on", 1))) // the same size
	zw.Close()
	sum := sha256.Sum256([]byte(after))
	if r, err := db.Exec(`UPDATE blobs SET data = ? WHERE hash = ?`, buf.Bytes(), hex.EncodeToString(sum[:])); err != nil {
		t.Fatal(err)
	} else if n, _ := r.RowsAffected(); n != 1 {
		t.Fatalf("%d blobs altered", n)
	}
	db.Close()
	for _, mode := range [][]string{nil, {"--stat"}, {"--format", "json"}} {
		args := append([]string{"--config", cfg, "--store", store, "diff", "t~1", s2.ID}, mode...)
		out, errOut, code := ht(t, args...)
		if code == 0 || out != "" || !strings.Contains(errOut, "does not match its hash") {
			t.Errorf("diff %v of altered content: exit %d, stdout %d bytes (%.80q), stderr %q", mode, code, len(out), out, errOut)
		}
	}
}
