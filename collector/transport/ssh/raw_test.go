package ssh_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	glider "github.com/gliderlabs/ssh"
	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/collector/transport/ssh"
	"github.com/hardtrail/hardtrail/collector/transport/ssh/sshtest"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// device is an in-process SSH server that answers like a network device's CLI: no shell, the
// exec request's text is the command, and often no exit status.
func device(t *testing.T) (addr string, hostKey gossh.PublicKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	srv := &glider.Server{
		PublicKeyHandler: func(glider.Context, glider.PublicKey) bool { return true },
		Handler: func(s glider.Session) {
			switch s.RawCommand() {
			case "show version":
				io.WriteString(s, "Cisco IOS Software, Version 15.2\n")
				s.Close() // no exit status, as many devices do
			case "show running-config | include hostname":
				io.WriteString(s, "hostname edge-fw1\n")
				s.Exit(0)
			case "show tech-support":
				for {
					if _, err := io.WriteString(s, strings.Repeat("x", 1000)+"\n"); err != nil {
						return
					}
				}
			case "debug all":
				<-s.Context().Done()
			default:
				io.WriteString(s.Stderr(), "% Invalid input detected at '^' marker.\n")
				s.Exit(1)
			}
		},
	}
	srv.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return l.Addr().String(), signer.PublicKey()
}

func TestRawCommands(t *testing.T) {
	leakCheck(t)
	addr, hostKey := device(t)
	dir := t.TempDir()
	key := sshtest.NewKey(t, dir, "id", "ed25519", "")
	cfg := ssh.Config{
		Address: "admin@" + addr, IdentityFiles: []string{key.Path}, RawCommands: true,
		KnownHosts:     []string{sshtest.WriteKnownHosts(t, dir, knownhosts.Line([]string{addr}, hostKey))},
		CommandTimeout: time.Second,
	}
	tr := dial(t, cfg)
	ctx := t.Context()

	rs, err := tr.RunBatch(ctx, []transport.Command{
		{Argv: []string{"show", "version"}},
		{Argv: []string{"show", "running-config", "|", "include", "hostname"}},
		{Argv: []string{"show", "bogus"}},
		{Argv: []string{"show", "tech-support"}, MaxBytes: 5000},
		{Argv: []string{"show", "version\nreload"}},
		{Argv: []string{"show", "version"}, Sudo: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		out  string
		exit int
	}{
		{"Cisco IOS Software, Version 15.2\n", 0},
		{"hostname edge-fw1\n", 0},
		{"", 1},
	}
	for i, w := range want {
		if rs[i].Err != nil || string(rs[i].Result.Stdout) != w.out || rs[i].Result.ExitCode != w.exit {
			t.Errorf("command %d: %+v %v", i, rs[i].Result, rs[i].Err)
		}
	}
	if !strings.Contains(string(rs[2].Result.Stderr), "Invalid input") {
		t.Errorf("stderr %q", rs[2].Result.Stderr)
	}
	if r := rs[3]; r.Err != nil || len(r.Result.Stdout) != 5000 || !r.Result.Truncated {
		t.Errorf("flood: %v %v", r.Result, r.Err)
	}
	if rs[4].Err == nil || rs[5].Err == nil {
		t.Errorf("a newline or sudo was accepted: %v, %v", rs[4].Err, rs[5].Err)
	}

	err = quick(t, 3*time.Second, func() error {
		_, err := tr.Run(ctx, transport.Command{Argv: []string{"debug", "all"}})
		return err
	})
	wantStage(t, err, ssh.StageTimeout)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hanging command: %v", err)
	}
	if _, err := tr.ReadFile(ctx, "/etc/passwd", 0); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("ReadFile on a device: %v", err)
	}
	if _, err := tr.Glob(ctx, "/etc/*"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Glob on a device: %v", err)
	}
}

// TestRawCommandsOpenSSH sends raw commands to a real sshd: the login shell reads the line.
func TestRawCommandsOpenSSH(t *testing.T) {
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	cfg := f.config()
	cfg.RawCommands = true
	tr := dial(t, cfg)
	res, err := tr.Run(t.Context(), transport.Command{Argv: []string{"echo", "hello", "world;", "exit", "3"}})
	if err != nil || string(res.Stdout) != "hello world\n" || res.ExitCode != 3 {
		t.Errorf("Run = %+v, %v", res, err)
	}
}
