package transport

import (
	"context"
	"errors"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLocalRun(t *testing.T) {
	l := NewLocal()
	ctx := t.Context()
	for _, tc := range []struct {
		name      string
		argv      []string
		max       int64
		stdout    string
		exit      int
		trunc     bool
		errIs     error
		stderrHas string
	}{
		{name: "ok", argv: []string{"printf", "%s|", "a b", "$(x)", ";"}, stdout: "a b|$(x)|;|"},
		{name: "nonzero exit is data", argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, stdout: "out\n", exit: 3, stderrHas: "err"},
		{name: "not installed", argv: []string{"no-such-program-hardtrail"}, errIs: ErrNotFound},
		{name: "cap", argv: []string{"yes"}, max: 1000, stdout: strings.Repeat("y\n", 500), trunc: true, exit: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := l.Run(ctx, Command{Argv: tc.argv, MaxBytes: tc.max})
			if tc.errIs != nil {
				if !errors.Is(err, tc.errIs) {
					t.Fatalf("err = %v, want %v", err, tc.errIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Stdout) != tc.stdout || res.ExitCode != tc.exit || res.Truncated != tc.trunc {
				t.Errorf("got stdout %.60q exit %d truncated %v", res.Stdout, res.ExitCode, res.Truncated)
			}
			if !strings.Contains(string(res.Stderr), tc.stderrHas) {
				t.Errorf("stderr %q lacks %q", res.Stderr, tc.stderrHas)
			}
		})
	}
}

// A timeout stops the command and everything it started, promptly.
func TestLocalTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "child.pid")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The child ignores SIGTERM and holds stdout open: only a group SIGKILL ends it.
	_, err := NewLocal().Run(ctx, Command{Argv: []string{"sh", "-c", "sh -c 'trap \"\" TERM; echo $$ > " + pidfile + "; exec sleep 60' & wait"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("Run returned after %s", el)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(2 * time.Second)
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		// A zombie still answers kill(0); check its state.
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && strings.Contains(string(st), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLocalReadFileAndGlob(t *testing.T) {
	dir := t.TempDir()
	for i, n := range []string{"b.conf", "a.conf", "c.txt"} {
		testutil.Must(t, os.WriteFile(filepath.Join(dir, n), []byte(strings.Repeat("x", 10*(i+1))), 0o640))
	}
	l := NewLocal()
	ctx := t.Context()
	m, err := l.Glob(ctx, filepath.Join(dir, "*.conf"))
	if err != nil || len(m) != 2 || filepath.Base(m[0]) != "a.conf" {
		t.Fatalf("glob = %v, %v", m, err)
	}
	f, err := l.ReadFile(ctx, filepath.Join(dir, "b.conf"), 4)
	if err != nil {
		t.Fatal(err)
	}
	if string(f.Content) != "xxxx" || !f.Truncated || f.Size != 10 || f.Mode.Perm() != 0o640 || f.Owner == "" {
		t.Errorf("read %+v", f)
	}
	if _, err := l.ReadFile(ctx, filepath.Join(dir, "nope"), 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := l.ReadFile(ctx, dir, 0); !errors.Is(err, ErrNotRegular) {
		t.Errorf("directory: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ReadFile(ctx, fifo, 0); !errors.Is(err, ErrNotRegular) {
		t.Errorf("fifo: %v", err)
	}
	if _, err := l.Glob(ctx, "relative/*"); err == nil {
		t.Error("relative glob accepted")
	}
}
