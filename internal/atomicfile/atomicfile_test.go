package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as a writer that is killed in the middle of a write.
func TestMain(m *testing.M) {
	if path := os.Getenv("ATOMICFILE_HANG"); path != "" {
		Write(path, 0o644, func(w io.Writer) error {
			w.Write([]byte("partial"))
			fmt.Println("writing")
			time.Sleep(time.Hour)
			return nil
		})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func temps(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if strings.Contains(e.Name(), ".tmp-") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	for _, content := range []string{"one", "two, longer"} {
		if err := WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %o, want 640", st.Mode().Perm())
	}
	if ts := temps(t, dir); len(ts) > 0 {
		t.Errorf("temporary files left: %v", ts)
	}
}

func TestFailedWriteLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	os.WriteFile(p, []byte("old"), 0o600)
	boom := errors.New("boom")
	err := Write(p, 0o600, func(w io.Writer) error {
		w.Write([]byte("new, half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Errorf("file changed to %q", got)
	}
	if ts := temps(t, dir); len(ts) > 0 {
		t.Errorf("temporary files left: %v", ts)
	}
}

func TestCreateRefusesExisting(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	fill := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	if err := Create(p, 0o600, fill("first")); err != nil {
		t.Fatal(err)
	}
	if err := Create(p, 0o600, fill("second")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create: %v, want fs.ErrExist", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "first" {
		t.Errorf("content %q, want first", got)
	}
	if ts := temps(t, dir); len(ts) > 0 {
		t.Errorf("temporary files left: %v", ts)
	}
}

// A writer killed with SIGKILL in the middle of a write leaves its temporary file; the next
// write into the directory removes it, and the target never holds part of a write.
func TestKilledWriterIsCleanedUp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	if err := WriteFile(p, []byte("whole"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ATOMICFILE_HANG="+p)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := io.ReadFull(out, buf[:7]); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if ts := temps(t, dir); len(ts) != 1 {
		t.Fatalf("temporary files after the kill: %v, want one", ts)
	}
	if got, _ := os.ReadFile(p); string(got) != "whole" {
		t.Fatalf("target holds %q after the kill", got)
	}
	if err := WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ts := temps(t, dir); len(ts) > 0 {
		t.Errorf("temporary files left after the next write: %v", ts)
	}
}

func TestCleanStaleKeepsLiveWriters(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, fmt.Sprintf(".a.tmp-%d-0123abcd", os.Getpid()))
	old := filepath.Join(dir, fmt.Sprintf(".b.tmp-%d-0123abcd", os.Getpid()))
	unrelated := filepath.Join(dir, ".c.tmp-notours")
	for _, f := range []string{live, old, unrelated} {
		os.WriteFile(f, nil, 0o600)
	}
	past := time.Now().Add(-2 * StaleAfter)
	os.Chtimes(old, past, past)
	if n := CleanStale(dir); n != 1 {
		t.Errorf("removed %d, want 1", n)
	}
	for f, want := range map[string]bool{live: true, old: false, unrelated: true} {
		if _, err := os.Stat(f); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(f), err == nil, want)
		}
	}
}

// Of concurrent Creates of one file, exactly one wins; the file holds the winner's whole content.
func TestCreateConcurrent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- Create(p, 0o600, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "writer %02d %s", i, strings.Repeat("x", 4096))
				return err
			})
		}()
	}
	won := 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			won++
		case !errors.Is(err, fs.ErrExist):
			t.Errorf("Create: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d Creates won, want 1", won)
	}
	if b, _ := os.ReadFile(p); len(b) != len("writer 00 ")+4096 {
		t.Errorf("content of %d bytes", len(b))
	}
	if ts := temps(t, filepath.Dir(p)); len(ts) > 0 {
		t.Errorf("temporary files left: %v", ts)
	}
}
