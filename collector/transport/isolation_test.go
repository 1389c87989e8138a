package transport_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/collector/transport/ssh"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

// shapes are commands whose children outlive a plain kill of the command: a pipeline, a child
// after which the shell has more to do, and a child that leaves the session with setsid. Each
// sleep has a unique length so that pgrep finds it alone.
func shapes(base string) [][]string {
	return [][]string{
		{"sh", "-c", "sleep " + base + "1 | cat"},
		{"sh", "-c", "sleep " + base + "2; echo x"},
		{"sh", "-c", "setsid sleep " + base + "3 & sleep " + base + "4"},
	}
}

// running reports the processes whose command line contains pattern.
func running(t *testing.T, pattern string) string {
	t.Helper()
	out, err := exec.Command(testutil.Tool(t, "pgrep"), "-af", pattern).Output()
	if err != nil {
		return "" // exit 1: none
	}
	return string(out)
}

// noneLeft fails the test when a process whose command line contains pattern still runs 3 s on.
func noneLeft(t *testing.T, pattern string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := running(t, pattern)
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still running 3s after the command was stopped:\n%s", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A command past its own Timeout is stopped with everything it started, with an error wrapping
// context.DeadlineExceeded and no exit code.
func TestLocalCommandTimeout(t *testing.T) {
	testutil.Tool(t, "setsid")
	l := transport.NewLocal()
	for _, argv := range shapes("1081.") {
		start := time.Now()
		res, err := l.Run(t.Context(), transport.Command{Argv: argv, Timeout: 300 * time.Millisecond})
		if !errors.Is(err, context.DeadlineExceeded) || res == nil || res.ExitCode != -1 {
			t.Errorf("%q: %+v, %v; want a timeout with no exit code", argv, res, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%q: took %s", argv, d)
		}
	}
	noneLeft(t, "sleep 1081.")
	// The transport's own command timeout applies when the command sets none.
	l.CommandTimeout = 200 * time.Millisecond
	if _, err := l.Run(t.Context(), transport.Command{Argv: []string{"sleep", "1081.9"}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CommandTimeout: %v", err)
	}
}

// A command that exits leaves nothing behind: what it put in the background is killed, in its
// group or out of it.
func TestLocalLeavesNothing(t *testing.T) {
	testutil.Tool(t, "setsid")
	l := transport.NewLocal()
	for _, argv := range [][]string{
		{"sh", "-c", "sleep 1082.1 >/dev/null 2>&1 & echo started"},
		{"sh", "-c", "setsid sleep 1082.2 >/dev/null 2>&1 & echo started"},
	} {
		res, err := l.Run(t.Context(), transport.Command{Argv: argv})
		if err != nil || string(res.Stdout) != "started\n" || res.ExitCode != 0 {
			t.Errorf("%q: %+v, %v", argv, res, err)
		}
	}
	noneLeft(t, "sleep 1082.")
}

// TestLocalKilledParent: when the process running a command is killed with SIGKILL, nothing of
// the command survives it. The process is this test binary, run again as a helper.
func TestLocalKilledParent(t *testing.T) {
	if os.Getenv("HARDTRAIL_TEST_HELPER") == "run" {
		shape := shapes("1083.")[len(os.Args[len(os.Args)-1])%3]
		_, err := transport.NewLocal().Run(context.Background(), transport.Command{Argv: shape, Timeout: time.Hour})
		t.Fatalf("the helper's command ended: %v", err)
	}
	testutil.Tool(t, "setsid")
	for i := range 3 {
		arg := strings.Repeat("x", i)
		cmd := exec.Command(os.Args[0], "-test.run=^TestLocalKilledParent$", "-test.count=1", "--", arg)
		cmd.Env = append(os.Environ(), "HARDTRAIL_TEST_HELPER=run")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until the command and its children run.
		want := []string{"sleep 1083.1", "sleep 1083.2", "sleep 1083.4"}[i]
		deadline := time.Now().Add(10 * time.Second)
		for running(t, want) == "" {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("shape %d never started", i)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if i == 2 {
			for running(t, "sleep 1083.3") == "" && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		noneLeft(t, "sleep 1083.")
	}
}

// Both transports default to the same command timeout, the one the README documents.
func TestDefaultCommandTimeout(t *testing.T) {
	for name, got := range map[string]time.Duration{
		"local": transport.NewLocal().CommandTimeout, "transport": transport.DefaultCommandTimeout, "ssh": ssh.DefaultCommandTimeout,
	} {
		if got != 60*time.Second {
			t.Errorf("%s: command timeout %s, want 60s", name, got)
		}
	}
}
