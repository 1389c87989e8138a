package ssh_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/collector/transport/ssh"
	"github.com/hardtrail/hardtrail/collector/transport/ssh/sshtest"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"go.uber.org/goleak"
)

// The fault tests each end in a typed error with the right stage, within a few seconds, leaving no
// goroutine behind here and no process behind on the target.

// leakCheck verifies, after everything else the test registered is cleaned up, that no goroutine
// started during the test is left.
func leakCheck(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// quick fails the test when fn's error takes longer than within.
func quick(t *testing.T, within time.Duration, fn func() error) error {
	t.Helper()
	start := time.Now()
	err := fn()
	if d := time.Since(start); d > within {
		t.Errorf("took %s, want under %s (error: %v)", d.Round(time.Millisecond), within, err)
	}
	return err
}

// noSurvivor fails the test when a process whose command line contains pattern is still running
// shortly after the command was stopped.
func noSurvivor(t *testing.T, pattern string) {
	t.Helper()
	pgrep := testutil.Tool(t, "pgrep")
	deadline := time.Now().Add(3 * time.Second)
	for {
		out, err := exec.Command(pgrep, "-af", pattern).Output()
		if err != nil { // exit 1: no such process
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still running on the target 3s after the command was stopped:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func wantStage(t *testing.T, err error, stage ssh.Stage) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want stage %s", stage)
	}
	if s := stageOf(t, err); s != stage {
		t.Errorf("stage %s, want %s: %v", s, stage, err)
	}
}

func TestFaultRefused(t *testing.T) {
	leakCheck(t)
	dir := t.TempDir()
	key := sshtest.NewKey(t, dir, "id", "ed25519", "")
	cfg := ssh.Config{Address: "root@" + sshtest.ClosedPort(t), IdentityFiles: []string{key.Path}}
	err := quick(t, 2*time.Second, func() error {
		_, err := ssh.Dial(t.Context(), cfg)
		return err
	})
	wantStage(t, err, ssh.StageDial)
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error does not say the connection was refused: %v", err)
	}
}

func TestFaultTarpit(t *testing.T) {
	leakCheck(t)
	dir := t.TempDir()
	key := sshtest.NewKey(t, dir, "id", "ed25519", "")
	cfg := ssh.Config{Address: "root@" + sshtest.Tarpit(t), IdentityFiles: []string{key.Path}, HandshakeTimeout: time.Second}
	err := quick(t, 3*time.Second, func() error {
		_, err := ssh.Dial(t.Context(), cfg)
		return err
	})
	wantStage(t, err, ssh.StageTimeout)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "handshake") {
		t.Errorf("error does not name the handshake deadline: %v", err)
	}
	// So does a scan for the host key.
	err = quick(t, 3*time.Second, func() error {
		_, err := ssh.ScanHostKey(t.Context(), cfg.Address, time.Second)
		return err
	})
	wantStage(t, err, ssh.StageTimeout)
	// The caller's deadline ends it too, whatever the handshake timeout.
	cfg.HandshakeTimeout = time.Minute
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	err = quick(t, 2*time.Second, func() error {
		_, err := ssh.Dial(ctx, cfg)
		return err
	})
	wantStage(t, err, ssh.StageTimeout)
}

func TestFaultHostKey(t *testing.T) {
	leakCheck(t)
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	other := sshtest.Start(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	for _, tt := range []struct {
		name string
		kh   string
		want error
	}{
		{"wrong key", sshtest.WriteKnownHosts(t, f.dir, other.KnownHostsLineAs(f.srv.Addr, "ed25519")), ssh.ErrHostKeyChanged},
		{"unknown host", sshtest.WriteKnownHosts(t, f.dir, other.KnownHostsLine("ed25519")), ssh.ErrUnknownHost},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.config()
			cfg.KnownHosts = []string{tt.kh}
			err := quick(t, 3*time.Second, func() error {
				_, err := ssh.Dial(t.Context(), cfg)
				return err
			})
			wantStage(t, err, ssh.StageHostKey)
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v does not wrap %v", err, tt.want)
			}
		})
	}
}

func TestFaultAuth(t *testing.T) {
	leakCheck(t)
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	cfg := f.config()
	cfg.Address = "nobody@" + f.srv.Addr
	err := quick(t, 3*time.Second, func() error {
		_, err := ssh.Dial(t.Context(), cfg)
		return err
	})
	wantStage(t, err, ssh.StageAuth)
	if !strings.Contains(err.Error(), "authorized_keys") {
		t.Errorf("error does not say what to do: %v", err)
	}
}

func TestFaultCommandTimeout(t *testing.T) {
	leakCheck(t)
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	cfg := f.config()
	cfg.CommandTimeout = time.Second
	tr := dial(t, cfg)
	var res *transport.Result
	err := quick(t, 6*time.Second, func() error {
		var err error
		res, err = tr.Run(t.Context(), transport.Command{Argv: []string{"sleep", "1037.25"}})
		return err
	})
	wantStage(t, err, ssh.StageTimeout)
	if !errors.Is(err, context.DeadlineExceeded) || res == nil || res.ExitCode != -1 {
		t.Errorf("Run = %+v, %v", res, err)
	}
	noSurvivor(t, "sleep 1037.25")
	// The connection is still good.
	if got := string(run(t, tr, "echo", "after").Stdout); got != "after\n" {
		t.Errorf("after a timeout: %q", got)
	}
}

// TestFaultCommandTimeoutStubborn: a command that ignores SIGTERM past its timeout is killed, with
// its children, killGrace later.
func TestFaultCommandTimeoutStubborn(t *testing.T) {
	leakCheck(t)
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	cfg := f.config()
	cfg.CommandTimeout = time.Second
	tr := dial(t, cfg)
	err := quick(t, 9*time.Second, func() error {
		_, err := tr.Run(t.Context(), transport.Command{Argv: []string{"sh", "-c", "trap '' TERM; sleep 1037.3; true"}})
		return err
	})
	wantStage(t, err, ssh.StageTimeout)
	noSurvivor(t, "sleep 1037.3")
	if got := string(run(t, tr, "echo", "after").Stdout); got != "after\n" {
		t.Errorf("after a timeout: %q", got)
	}
}

// TestFaultContext stops commands through the context alone, no command timeout involved: the
// watchdog and the signal must stop them, including processes that ignore SIGTERM and SIGHUP.
func TestFaultContext(t *testing.T) {
	leakCheck(t)
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	tr := dial(t, f.config())
	ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
	defer cancel()
	var rs []transport.BatchResult
	err := quick(t, 7*time.Second, func() error {
		var err error
		rs, err = tr.RunBatch(ctx, []transport.Command{
			{Argv: []string{"echo", "first"}},
			{Argv: []string{"sh", "-c", "trap '' TERM HUP; sleep 1037.5; sleep 1037.5"}},
			{Argv: []string{"echo", "never"}},
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Err != nil || string(rs[0].Result.Stdout) != "first\n" {
		t.Errorf("first: %+v", rs[0])
	}
	for _, r := range rs[1:] {
		if !errors.Is(r.Err, context.DeadlineExceeded) {
			t.Errorf("after the deadline: %v", r.Err)
		}
	}
	noSurvivor(t, "sleep 1037.5")
}

func TestFaultDropped(t *testing.T) {
	leakCheck(t)
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	proxy := sshtest.NewProxy(t, f.srv.Addr)
	cfg := f.config()
	cfg.Address = "root@" + proxy.Addr
	cfg.KnownHosts = []string{sshtest.WriteKnownHosts(t, f.dir, f.srv.KnownHostsLineAs(proxy.Addr, "ed25519"))}
	tr := dial(t, cfg)
	time.AfterFunc(500*time.Millisecond, proxy.Drop)
	err := quick(t, 3*time.Second, func() error {
		_, err := tr.Run(t.Context(), transport.Command{Argv: []string{"sleep", "1037.75"}})
		return err
	})
	wantStage(t, err, ssh.StageCommand)
	noSurvivor(t, "sleep 1037.75")
}

func TestFaultDeadPeer(t *testing.T) {
	leakCheck(t)
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	proxy := sshtest.NewProxy(t, f.srv.Addr)
	cfg := f.config()
	cfg.Address = "root@" + proxy.Addr
	cfg.KnownHosts = []string{sshtest.WriteKnownHosts(t, f.dir, f.srv.KnownHostsLineAs(proxy.Addr, "ed25519"))}
	cfg.KeepAlive = 200 * time.Millisecond
	tr := dial(t, cfg)
	time.AfterFunc(500*time.Millisecond, proxy.Freeze)
	err := quick(t, 4*time.Second, func() error {
		_, err := tr.Run(t.Context(), transport.Command{Argv: []string{"sleep", "1037.875"}})
		return err
	})
	wantStage(t, err, ssh.StageTimeout)
	if !strings.Contains(err.Error(), "keepalive") {
		t.Errorf("error does not name the keepalives: %v", err)
	}
	// Once the network is back to closing connections, the target cleans up.
	proxy.Close()
	noSurvivor(t, "sleep 1037.875")
}

func TestFaultFlood(t *testing.T) {
	leakCheck(t)
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	tr := dial(t, f.config())
	var rs []transport.BatchResult
	err := quick(t, 6*time.Second, func() error {
		var err error
		rs, err = tr.RunBatch(t.Context(), []transport.Command{
			{Argv: []string{"yes", "hardtrail-flood"}, MaxBytes: 4096},
			{Argv: []string{"head", "-c", "100000000", "/dev/zero"}, MaxBytes: 1 << 20},
			{Argv: []string{"sh", "-c", "trap '' TERM; exec yes hardtrail-stubborn"}, MaxBytes: 4096},
			{Argv: []string{"echo", "after"}},
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{4096, 1 << 20, 4096} {
		r := rs[i]
		if r.Err != nil || len(r.Result.Stdout) != want || !r.Result.Truncated {
			t.Errorf("flood %d: %d bytes, truncated %v, %v", i, len(r.Result.Stdout), r.Result.Truncated, r.Err)
		}
	}
	if !strings.HasPrefix(string(rs[0].Result.Stdout), "hardtrail-flood\n") {
		t.Errorf("flood output starts %q", rs[0].Result.Stdout[:20])
	}
	if rs[3].Err != nil || string(rs[3].Result.Stdout) != "after\n" {
		t.Errorf("after the flood: %+v", rs[3])
	}
	noSurvivor(t, "yes hardtrail-flood")
	noSurvivor(t, "yes hardtrail-stubborn")
}
