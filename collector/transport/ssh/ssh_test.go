package ssh_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/collector/transport/ssh"
	"github.com/hardtrail/hardtrail/collector/transport/ssh/sshtest"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"go.uber.org/goleak"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fixture is a loopback sshd with a root key authorized and every host key in known_hosts.
type fixture struct {
	srv *sshtest.Server
	dir string
	key *sshtest.Key
	kh  string
}

func newFixture(t testing.TB, opts sshtest.Options) *fixture {
	t.Helper()
	srv := sshtest.Start(t, opts)
	dir := t.TempDir()
	key := sshtest.NewKey(t, dir, "id_ed25519", "ed25519", "")
	srv.Authorize(t, "root", key, "")
	var lines []string
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		if srv.HostKeys[typ] != nil {
			lines = append(lines, srv.KnownHostsLine(typ))
		}
	}
	return &fixture{srv: srv, dir: dir, key: key, kh: sshtest.WriteKnownHosts(t, dir, lines...)}
}

func (f *fixture) config() ssh.Config {
	return ssh.Config{
		Address:          "root@" + f.srv.Addr,
		IdentityFiles:    []string{f.key.Path},
		KnownHosts:       []string{f.kh},
		HandshakeTimeout: 10 * time.Second,
		CommandTimeout:   30 * time.Second,
	}
}

func dial(t testing.TB, cfg ssh.Config) *ssh.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr, err := ssh.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func run(t *testing.T, tr transport.Transport, argv ...string) *transport.Result {
	t.Helper()
	res, err := tr.Run(t.Context(), transport.Command{Argv: argv})
	if err != nil {
		t.Fatalf("Run %q: %v", argv, err)
	}
	return res
}

// stageOf returns the Stage of err's *ssh.Error, failing the test when there is none.
func stageOf(t *testing.T, err error) ssh.Stage {
	t.Helper()
	var e *ssh.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *ssh.Error", err, err)
	}
	return e.Stage
}

func TestAuth(t *testing.T) {
	userCA := sshtest.NewKey(t, t.TempDir(), "user_ca", "ed25519", "")
	f := newFixture(t, sshtest.Options{UserCA: userCA})
	dir := f.dir
	rsa := sshtest.NewKey(t, dir, "id_rsa", "rsa", "")
	f.srv.Authorize(t, "root", rsa, "")
	const pass = "correct horse battery staple"
	enc := sshtest.NewKey(t, dir, "id_enc", "ed25519", pass)
	f.srv.Authorize(t, "root", enc, "")
	passFile := filepath.Join(dir, "passphrase")
	if err := os.WriteFile(passFile, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongPassFile := filepath.Join(dir, "wrong")
	if err := os.WriteFile(wrongPassFile, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Certificate keys are not in authorized_keys: only the CA vouches for them.
	certKey := sshtest.NewKey(t, dir, "id_cert", "ed25519", "")
	certKey.Certify(t, userCA, false, "-5m:+1h", "root")
	explicitKey := sshtest.NewKey(t, dir, "id_explicit", "ecdsa", "")
	explicitCert := filepath.Join(dir, "explicit.cert")
	if err := os.Rename(explicitKey.Certify(t, userCA, false, "-5m:+1h", "root"), explicitCert); err != nil {
		t.Fatal(err)
	}
	expiredKey := sshtest.NewKey(t, dir, "id_expired", "ed25519", "")
	expiredKey.Certify(t, userCA, false, "20200101:20200102", "root")
	otherKey := sshtest.NewKey(t, dir, "id_other", "ed25519", "")
	agentKey := sshtest.NewKey(t, dir, "id_agent", "ed25519", "")
	f.srv.Authorize(t, "root", agentKey, "")
	t.Setenv("SSH_AUTH_SOCK", sshtest.StartAgent(t, agentKey))
	t.Setenv("HT_TEST_PASSPHRASE", pass)

	tests := []struct {
		name    string
		cfg     func(*ssh.Config)
		wantErr string // in the message of an auth-stage error
	}{
		{"ed25519", func(c *ssh.Config) {}, ""},
		{"rsa", func(c *ssh.Config) { c.IdentityFiles = []string{rsa.Path} }, ""},
		{"passphrase file", func(c *ssh.Config) { c.IdentityFiles, c.PassphraseFile = []string{enc.Path}, passFile }, ""},
		{"passphrase env", func(c *ssh.Config) { c.IdentityFiles, c.PassphraseEnv = []string{enc.Path}, "HT_TEST_PASSPHRASE" }, ""},
		{"agent", func(c *ssh.Config) { c.IdentityFiles, c.UseAgent = nil, true }, ""},
		{"certificate beside the key", func(c *ssh.Config) { c.IdentityFiles = []string{certKey.Path} }, ""},
		{"explicit certificate", func(c *ssh.Config) {
			c.IdentityFiles, c.Certificates = []string{explicitKey.Path}, []string{explicitCert}
		}, ""},
		{"no passphrase", func(c *ssh.Config) { c.IdentityFiles = []string{enc.Path} }, "is encrypted: set passphrase_file"},
		{"wrong passphrase", func(c *ssh.Config) { c.IdentityFiles, c.PassphraseFile = []string{enc.Path}, wrongPassFile }, "passphrase is wrong"},
		{"unset passphrase variable", func(c *ssh.Config) { c.IdentityFiles, c.PassphraseEnv = []string{enc.Path}, "HT_TEST_UNSET" }, "HT_TEST_UNSET is not set"},
		{"key not authorized", func(c *ssh.Config) { c.IdentityFiles = []string{otherKey.Path} }, gossh.FingerprintSHA256(otherKey.Public)},
		{"expired certificate", func(c *ssh.Config) { c.IdentityFiles = []string{expiredKey.Path} }, "EXPIRED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.config()
			tt.cfg(&cfg)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			tr, err := ssh.Dial(ctx, cfg)
			if tt.wantErr != "" {
				if err == nil {
					tr.Close()
					t.Fatal("Dial succeeded, want an auth error")
				}
				if s := stageOf(t, err); s != ssh.StageAuth {
					t.Errorf("stage %s, want auth: %v", s, err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if got := string(run(t, tr, "id", "-u").Stdout); got != "0\n" {
				t.Errorf("id -u = %q", got)
			}
		})
	}
}

func TestHostKeys(t *testing.T) {
	hostCA := sshtest.NewKey(t, t.TempDir(), "host_ca", "ed25519", "")
	f := newFixture(t, sshtest.Options{HostCA: hostCA})
	dir := f.dir
	addr := f.srv.Addr
	name := knownhosts.Normalize(addr) // [127.0.0.1]:PORT
	fp := func(typ string) string { return gossh.FingerprintSHA256(f.srv.HostKeys[typ].Public) }
	line := f.srv.KnownHostsLine
	stranger := sshtest.NewKey(t, dir, "stranger", "ed25519", "")
	otherCA := sshtest.NewKey(t, dir, "other_ca", "ed25519", "")

	// A file hashed by OpenSSH itself.
	hashed := sshtest.WriteKnownHosts(t, dir, line("ed25519"), line("rsa"))
	testutil.Run(t, testutil.Tool(t, "ssh-keygen"), "-q", "-H", "-f", hashed)
	if b, _ := os.ReadFile(hashed); bytes.Contains(b, []byte("127.0.0.1")) {
		t.Fatalf("ssh-keygen -H left names in clear:\n%s", b)
	}

	tests := []struct {
		name    string
		lines   []string // known_hosts lines; nil for no file
		file    string   // a known_hosts file instead of lines
		pins    []string
		wantKey string // fingerprint recorded in Info().HostKey
		wantErr error  // wrapped by the hostkey-stage error
		wantMsg []string
	}{
		{name: "all keys", lines: []string{line("ed25519"), line("ecdsa"), line("rsa")}, wantKey: fp("ed25519")},
		{name: "ed25519 only", lines: []string{line("ed25519")}, wantKey: fp("ed25519")},
		{name: "ecdsa only", lines: []string{line("ecdsa")}, wantKey: fp("ecdsa")},
		{name: "rsa only", lines: []string{line("rsa")}, wantKey: fp("rsa")},
		{name: "hashed by x/crypto", lines: []string{
			knownhosts.Line([]string{knownhosts.HashHostname(name)}, f.srv.HostKeys["ecdsa"].Public)}, wantKey: fp("ecdsa")},
		{name: "hashed by ssh-keygen -H", file: hashed, wantKey: fp("ed25519")},
		{name: "cert-authority", lines: []string{"@cert-authority " + name + " " + hostCA.AuthorizedLine()}, wantKey: fp("ed25519")},
		{name: "cert-authority wildcard", lines: []string{
			fmt.Sprintf("@cert-authority [127.0.0.*]:%d %s", f.srv.Port, hostCA.AuthorizedLine())}, wantKey: fp("ed25519")},
		{name: "pinned ed25519", pins: []string{fp("ed25519")}, wantKey: fp("ed25519")},
		{name: "pinned ecdsa", pins: []string{fp("ecdsa")}, wantKey: fp("ecdsa")},
		{name: "pinned rsa", pins: []string{fp("rsa")}, wantKey: fp("rsa")},
		{name: "pinned beside known_hosts", lines: []string{knownhosts.Line([]string{"other.example"}, stranger.Public)}, pins: []string{fp("ed25519")},
			wantKey: fp("ed25519")},

		{name: "unknown host", wantErr: ssh.ErrUnknownHost,
			wantMsg: []string{"hardtrail hosts add web1 --fingerprint " + fp("ed25519")}},
		{name: "entry for port 22 only", lines: []string{knownhosts.Line([]string{"127.0.0.1"}, f.srv.HostKeys["ed25519"].Public)},
			wantErr: ssh.ErrUnknownHost},
		{name: "changed key", lines: []string{knownhosts.Line([]string{addr}, stranger.Public)}, wantErr: ssh.ErrHostKeyChanged,
			wantMsg: []string{gossh.FingerprintSHA256(stranger.Public), fp("ed25519"), "hardtrail hosts add web1"}},
		{name: "wrong pin", pins: []string{gossh.FingerprintSHA256(stranger.Public)}, wantErr: ssh.ErrHostKeyChanged,
			wantMsg: []string{gossh.FingerprintSHA256(stranger.Public)}},
		{name: "revoked key", lines: []string{line("ed25519"), "@revoked * " + f.srv.HostKeys["ed25519"].AuthorizedLine()},
			wantErr: ssh.ErrHostKeyRevoked},
		{name: "revoked pinned key", lines: []string{"@revoked * " + f.srv.HostKeys["ed25519"].AuthorizedLine()},
			pins: []string{fp("ed25519")}, wantErr: ssh.ErrHostKeyRevoked},
		{name: "revoked CA", lines: []string{"@cert-authority " + name + " " + hostCA.AuthorizedLine(),
			"@revoked * " + hostCA.AuthorizedLine()}, wantErr: ssh.ErrHostKeyRevoked},
		{name: "untrusted CA", lines: []string{"@cert-authority " + name + " " + otherCA.AuthorizedLine()},
			wantMsg: []string{"host certificate", gossh.FingerprintSHA256(hostCA.Public)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := f.config()
			cfg.Name = "web1"
			cfg.KnownHosts = []string{filepath.Join(t.TempDir(), "absent")}
			if tt.lines != nil {
				cfg.KnownHosts = []string{sshtest.WriteKnownHosts(t, t.TempDir(), tt.lines...)}
			}
			if tt.file != "" {
				cfg.KnownHosts = []string{tt.file}
			}
			cfg.Fingerprints = tt.pins
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			tr, err := ssh.Dial(ctx, cfg)
			if tt.wantKey != "" {
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				if got := tr.Info().HostKey; got != tt.wantKey {
					t.Errorf("Info().HostKey = %s, want %s", got, tt.wantKey)
				}
				return
			}
			if err == nil {
				tr.Close()
				t.Fatal("Dial succeeded, want a host key error")
			}
			if s := stageOf(t, err); s != ssh.StageHostKey {
				t.Errorf("stage %s, want hostkey: %v", s, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tt.wantErr)
			}
			var hk *ssh.HostKeyError
			if !errors.As(err, &hk) || hk.Presented == nil {
				t.Errorf("error %v carries no presented key", err)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error does not mention %q:\n%v", m, err)
				}
			}
		})
	}
}

func TestScanAndEnrol(t *testing.T) {
	f := newFixture(t, sshtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	key, err := ssh.ScanHostKey(ctx, "root@"+f.srv.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key.Marshal(), f.srv.HostKeys["ed25519"].Public.Marshal()) {
		t.Fatalf("scanned %s %s, want the ed25519 key", key.Type(), gossh.FingerprintSHA256(key))
	}
	// The unknown-host error names the same key that a scan finds.
	cfg := f.config()
	kh := filepath.Join(t.TempDir(), "new", "known_hosts")
	cfg.KnownHosts = []string{kh}
	_, err = ssh.Dial(ctx, cfg)
	if !errors.Is(err, ssh.ErrUnknownHost) || !strings.Contains(err.Error(), gossh.FingerprintSHA256(key)) {
		t.Fatalf("Dial before enrolment: %v", err)
	}
	if _, err := ssh.AddKnownHost(kh, f.srv.Addr, key); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{kh: 0o600, filepath.Dir(kh): 0o700 | os.ModeDir} {
		if st, err := os.Stat(p); err != nil || st.Mode() != want {
			t.Errorf("%s: mode %v, want %v (%v)", p, st.Mode(), want, err)
		}
	}
	b, _ := os.ReadFile(kh)
	if bytes.Contains(b, []byte("127.0.0.1")) {
		t.Errorf("known_hosts names the host in clear: %s", b)
	}
	// OpenSSH finds the hashed entry.
	out := testutil.Run(t, testutil.Tool(t, "ssh-keygen"), "-F", knownhosts.Normalize(f.srv.Addr), "-f", kh)
	if !strings.Contains(out, "ssh-ed25519") {
		t.Errorf("ssh-keygen -F does not find the entry:\n%s", out)
	}
	tr := dial(t, cfg)
	run(t, tr, "true")

	// Appending to a file without a final newline keeps lines apart.
	if err := os.WriteFile(kh, bytes.TrimRight(b, "\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ssh.AddKnownHost(kh, "root@"+f.srv.Addr, f.srv.HostKeys["rsa"].Public); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(kh); bytes.Count(b, []byte("\n")) != 2 {
		t.Errorf("known_hosts after two entries:\n%s", b)
	}
}

func TestJump(t *testing.T) {
	jump := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}, Config: []string{"LogLevel DEBUG1"}})
	target := sshtest.Start(t, sshtest.Options{HostKeyTypes: []string{"ed25519", "ecdsa"}})
	target.Authorize(t, "root", jump.key, "")
	both := sshtest.WriteKnownHosts(t, jump.dir, jump.srv.KnownHostsLine("ed25519"), target.KnownHostsLine("ed25519"))
	onlyJump := sshtest.WriteKnownHosts(t, jump.dir, jump.srv.KnownHostsLine("ed25519"))
	onlyTarget := sshtest.WriteKnownHosts(t, jump.dir, target.KnownHostsLine("ed25519"))

	cfg := func(kh string) ssh.Config {
		return ssh.Config{
			Name: "db1", Address: "root@" + target.Addr, IdentityFiles: []string{jump.key.Path}, KnownHosts: []string{kh},
			Jump: &ssh.Config{Name: "bastion", Address: "root@" + jump.srv.Addr},
		}
	}
	tr := dial(t, cfg(both))
	if got := string(run(t, tr, "id", "-u").Stdout); got != "0\n" {
		t.Errorf("id -u through the jump = %q", got)
	}
	if got, want := tr.Info().HostKey, gossh.FingerprintSHA256(target.HostKeys["ed25519"].Public); got != want {
		t.Errorf("HostKey %s, want the target's %s", got, want)
	}
	// The jump host opened the connection to the target (direct-tcpip).
	if want := fmt.Sprintf("target 127.0.0.1 port %d", target.Port); !strings.Contains(jump.srv.Log(), want) {
		t.Log(jump.srv.Log())
		t.Errorf("jump sshd did not log %q", want)
	}

	// Enrolment of a target behind the jump scans its key through the jump.
	jcfg := *cfg(onlyJump).Jump
	jcfg.IdentityFiles, jcfg.KnownHosts = []string{jump.key.Path}, []string{onlyJump}
	key, err := ssh.ScanHostKeyVia(t.Context(), jcfg, target.Addr, 5*time.Second)
	if err != nil || !bytes.Equal(key.Marshal(), target.HostKeys["ed25519"].Public.Marshal()) {
		t.Errorf("ScanHostKeyVia: %v", err)
	}

	for _, tt := range []struct {
		kh, failing string
	}{{onlyTarget, "bastion"}, {onlyJump, "db1"}} {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		_, err := ssh.Dial(ctx, cfg(tt.kh))
		cancel()
		var e *ssh.Error
		if !errors.As(err, &e) || e.Stage != ssh.StageHostKey || e.Target != tt.failing || !errors.Is(err, ssh.ErrUnknownHost) {
			t.Errorf("Dial with %s unknown: %v", tt.failing, err)
		}
	}
}

func TestQuoting(t *testing.T) {
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	tr := dial(t, f.config())
	pwned := filepath.Join(t.TempDir(), "pwned")
	words := []string{
		"plain", "two words", ";", "; touch " + pwned, "$(touch " + pwned + ")", "`touch " + pwned + "`",
		"a\nb", "'", "it's", `"`, `\`, `\'`, "*", "$HOME", "${PATH}", "", " ", "\t", "--", "-n", "&&", "|", ">",
		"<", "#", "~", "!", "é ✓", "'\"'\"'", "end\n",
	}
	res := run(t, tr, append([]string{"printf", `%s\n`}, words...)...)
	want := strings.Join(words, "\n") + "\n"
	if diff := cmp.Diff(want, string(res.Stdout)); diff != "" {
		t.Errorf("words changed on the way (-sent +printed):\n%s", diff)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("a word was executed by the remote shell")
	}
}

// sessions counts the sessions sshd started so far.
func sessions(srv *sshtest.Server) int { return strings.Count(srv.Log(), "Starting session:") }

func TestBatch(t *testing.T) {
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	tr := dial(t, f.config())
	bin := make([]byte, 0, 3*256+1)
	for range 3 {
		for b := range 256 {
			bin = append(bin, byte(b))
		}
	}
	bin = append(bin, '\n')
	binFile := filepath.Join(f.dir, "binary")
	notExec := filepath.Join(f.dir, "not-executable")
	for p, b := range map[string][]byte{binFile: bin, notExec: []byte("#!/bin/sh\n")} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fake := "\nHT-00000000000000000000000000000000 E 0 0 0\nHT-00000000000000000000000000000000 B 1\n"
	tests := []struct {
		cmd      transport.Command
		stdout   string
		stderr   string
		exit     int
		trunc    bool
		notFound bool
		perm     bool
	}{
		{cmd: transport.Command{Argv: []string{"cat", binFile}}, stdout: string(bin)},
		{cmd: transport.Command{Argv: []string{"printf", "%s", fake}}, stdout: fake},
		{cmd: transport.Command{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}}, stdout: "out\n", stderr: "err\n", exit: 3},
		{cmd: transport.Command{Argv: []string{"true"}}},
		{cmd: transport.Command{Argv: []string{"hardtrail-no-such-command"}}, notFound: true},
		{cmd: transport.Command{Argv: []string{"/nonexistent/bin/tool"}}, notFound: true},
		{cmd: transport.Command{Argv: []string{notExec}}, perm: true},
		{cmd: transport.Command{Argv: []string{"printf", "no newline"}}, stdout: "no newline"},
		{cmd: transport.Command{Argv: []string{"printf", `\n\n`}}, stdout: "\n\n"},
		{cmd: transport.Command{Argv: []string{"seq", "100000"}, MaxBytes: 10}, stdout: "1\n2\n3\n4\n5\n", exit: -1, trunc: true},
		{cmd: transport.Command{Argv: []string{"echo", "still running"}}, stdout: "still running\n"},
	}
	var cmds []transport.Command
	for _, tt := range tests {
		cmds = append(cmds, tt.cmd)
	}
	before := sessions(f.srv)
	rs, err := tr.RunBatch(t.Context(), cmds)
	if err != nil {
		t.Fatal(err)
	}
	if n := sessions(f.srv) - before; n != 1 {
		t.Errorf("the batch used %d sessions, want 1", n)
	}
	for i, tt := range tests {
		r := rs[i]
		name := fmt.Sprintf("%d %q", i, tt.cmd.Argv)
		switch {
		case tt.notFound:
			if !errors.Is(r.Err, transport.ErrNotFound) {
				t.Errorf("%s: err %v, want ErrNotFound", name, r.Err)
			}
			continue
		case tt.perm:
			if !errors.Is(r.Err, transport.ErrPermission) {
				t.Errorf("%s: err %v, want ErrPermission", name, r.Err)
			}
			continue
		case r.Err != nil:
			t.Errorf("%s: %v", name, r.Err)
			continue
		}
		if diff := cmp.Diff(tt.stdout, string(r.Result.Stdout)); diff != "" {
			t.Errorf("%s: stdout (-want +got):\n%s", name, diff)
		}
		if got := string(r.Result.Stderr); got != tt.stderr {
			t.Errorf("%s: stderr %q, want %q", name, got, tt.stderr)
		}
		if r.Result.ExitCode != tt.exit || r.Result.Truncated != tt.trunc {
			t.Errorf("%s: exit %d truncated %v, want %d %v", name, r.Result.ExitCode, r.Result.Truncated, tt.exit, tt.trunc)
		}
	}
	// Run is one session per command.
	before = sessions(f.srv)
	for range 3 {
		run(t, tr, "true")
	}
	if n := sessions(f.srv) - before; n != 3 {
		t.Errorf("3 runs used %d sessions", n)
	}
	// An invalid command fails alone.
	rs, err = tr.RunBatch(t.Context(), []transport.Command{{}, {Argv: []string{"echo", "a\x00b"}}, {Argv: []string{"echo", "ok"}}})
	if err != nil || rs[0].Err == nil || rs[1].Err == nil || rs[2].Err != nil || string(rs[2].Result.Stdout) != "ok\n" {
		t.Errorf("batch with invalid commands: %v %+v", err, rs)
	}
}

// TestEquivalence runs the same commands, reads and globs locally and over SSH to this machine.
func TestEquivalence(t *testing.T) {
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	remote := dial(t, f.config())
	local := transport.NewLocal()
	ctx := t.Context()
	var cmds []transport.Command
	for _, argv := range [][]string{
		{"uname", "-srvm"},
		{"id"},
		{"cat", "/etc/os-release"},
		{"ls", "-ln", "/etc/ssh"},
		{"getent", "passwd", "root"},
		{"sort", "/etc/services"},
		{"sh", "-c", "echo $LC_ALL $PAGER $SYSTEMD_PAGER"},
		{"printf", `%s|`, "a b", "$x", "'"},
		{"sshd", "-T", "-f", "/dev/null", "-o", "HostKey=" + f.srv.HostKeys["ed25519"].Path},
		{"sh", "-c", "exit 7"},
		{"hardtrail-no-such-command"},
		{"/etc/passwd"},
	} {
		cmds = append(cmds, transport.Command{Argv: argv})
	}
	rs, err := remote.RunBatch(ctx, cmds)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cmds {
		lr, lerr := local.Run(ctx, c)
		rr, rerr := rs[i].Result, rs[i].Err
		for _, sentinel := range []error{transport.ErrNotFound, transport.ErrPermission} {
			if errors.Is(lerr, sentinel) != errors.Is(rerr, sentinel) {
				t.Errorf("%q: local %v, ssh %v", c.Argv, lerr, rerr)
			}
		}
		if lerr != nil || rerr != nil {
			if (lerr == nil) != (rerr == nil) {
				t.Errorf("%q: local %v, ssh %v", c.Argv, lerr, rerr)
			}
			continue
		}
		if diff := cmp.Diff(string(lr.Stdout), string(rr.Stdout)); diff != "" || lr.ExitCode != rr.ExitCode {
			t.Errorf("%q: exit local %d ssh %d; stdout (-local +ssh):\n%s", c.Argv, lr.ExitCode, rr.ExitCode, diff)
		}
	}

	dir := globTree(t)
	// Local.ReadFile would block opening a FIFO, so it is only read remotely.
	paths := []string{"/etc/passwd", "/etc/shadow", "/etc/ssh/sshd_config", "/usr/bin/passwd", "/proc/version",
		filepath.Join(dir, "numeric"), filepath.Join(dir, "a.conf"), filepath.Join(dir, "new\nline.conf"),
		"/nonexistent/file", dir}
	for _, max := range []int64{0, 5} {
		rfs, err := remote.ReadFiles(ctx, append(paths, filepath.Join(dir, "fifo")), max)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range paths {
			lf, lerr := local.ReadFile(ctx, p, max)
			rf, rerr := rfs[i].File, rfs[i].Err
			if (lerr == nil) != (rerr == nil) || errors.Is(lerr, transport.ErrNotFound) != errors.Is(rerr, transport.ErrNotFound) {
				t.Errorf("ReadFile %s: local %v, ssh %v", p, lerr, rerr)
				continue
			}
			if diff := cmp.Diff(lf, rf); diff != "" {
				t.Errorf("ReadFile %s max %d (-local +ssh):\n%s", p, max, diff)
			}
		}
		if fifo := rfs[len(paths)]; !errors.Is(fifo.Err, transport.ErrNotRegular) {
			t.Errorf("ReadFile of a FIFO: %v", fifo.Err)
		}
	}

	patterns := []string{
		"/etc/ssh/*", "/etc/pass?d", "/etc/[a-c]*.conf", "/etc/*/sshd_config", "/etc/ssh/sshd_config",
		dir + "/*", dir + "/*.conf", dir + "/.*", dir + "/*/x.conf", dir + "/[ab]*", dir + "/?.conf", dir + "/nomatch*",
		dir + "/a.conf", dir + "/missing", dir + "/with space*", dir + "/quote'*", dir + "/$(touch*", dir + `/\*`,
		dir + "/*\n*",
	}
	var wg sync.WaitGroup
	for _, pat := range patterns {
		wg.Go(func() {
			lg, lerr := local.Glob(ctx, pat)
			rg, rerr := remote.Glob(ctx, pat)
			if lerr != nil || rerr != nil {
				t.Errorf("Glob %q: local %v, ssh %v", pat, lerr, rerr)
				return
			}
			if diff := cmp.Diff(lg, rg); diff != "" {
				t.Errorf("Glob %q (-local +ssh):\n%s", pat, diff)
			}
		})
	}
	wg.Wait()
	for _, pat := range []string{"relative/*", "/etc/[", ""} {
		if _, err := remote.Glob(ctx, pat); err == nil {
			t.Errorf("Glob %q: no error", pat)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("a glob ran code on the target")
	}
}

// globTree makes a directory with awkward names.
func globTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"a.conf", "b.conf", ".hidden.conf", "with space.conf", "quote'.conf",
		"$(touch " + "pwned).conf", "new\nline.conf", "*", "b.txt", "sub/x.conf", ".dot/x.conf", "numeric"} {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("content of "+n+"\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "numeric"), 54321, 54322); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "numeric"), 0o4751); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("mkfifo", filepath.Join(dir, "fifo")).Run(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReadFileTruncated(t *testing.T) {
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	tr := dial(t, f.config())
	p := filepath.Join(f.dir, "big")
	content := bytes.Repeat([]byte("0123456789"), 1000)
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := tr.ReadFile(t.Context(), p, 15)
	if err != nil {
		t.Fatal(err)
	}
	if string(file.Content) != "012345678901234" || !file.Truncated || file.Size != 10000 || file.Mode != 0o600 ||
		file.Owner != "root" || file.Group != "root" {
		t.Errorf("ReadFile = %+v", file)
	}
}

// TestSudo checks both sides of Command.Sudo: root runs the command as is; another user runs it
// through `sudo -n --`, which never prompts.
func TestSudo(t *testing.T) {
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	root := dial(t, f.config())
	parent := []string{"sh", "-c", "cat /proc/$PPID/comm"}
	res, err := root.Run(t.Context(), transport.Command{Argv: parent, Sudo: true})
	if err != nil || strings.TrimSpace(string(res.Stdout)) == "sudo" {
		t.Errorf("as root, a sudo command ran under %q (%v)", res.Stdout, err)
	}

	testutil.Tool(t, "sudo")
	useradd, visudo := testutil.Tool(t, "useradd"), testutil.Tool(t, "visudo")
	user := fmt.Sprintf("htssh%d", os.Getpid()%100000)
	home := t.TempDir()
	testutil.Run(t, useradd, "-M", "-d", home, "-s", "/bin/sh", "-p", "*", user)
	userdel := testutil.Tool(t, "userdel")
	t.Cleanup(func() {
		// sshd's process for the user's connection may outlive Close by a moment.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			out, err := exec.Command(userdel, user).CombinedOutput()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("userdel %s: %v\n%s", user, err, out)
				return
			}
		}
	})
	sudoers := "/etc/sudoers.d/hardtrail-test-" + user
	rule := user + " ALL=(root) NOPASSWD: /usr/bin/id, /usr/bin/sh\n"
	if err := os.WriteFile(sudoers, []byte(rule), 0o440); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(sudoers) })
	testutil.Run(t, visudo, "-c", "-f", sudoers)
	f.srv.Authorize(t, user, f.key, "")
	cfg := f.config()
	cfg.Address = user + "@" + f.srv.Addr
	tr := dial(t, cfg)

	uid := strings.TrimSpace(string(run(t, tr, "id", "-u").Stdout))
	if uid == "0" || uid == "" {
		t.Fatalf("%s has uid %q", user, uid)
	}
	res, err = tr.Run(t.Context(), transport.Command{Argv: []string{"id", "-u"}, Sudo: true})
	if err != nil || string(res.Stdout) != "0\n" {
		t.Errorf("sudo id -u = %q, %v", res.Stdout, err)
	}
	res, err = tr.Run(t.Context(), transport.Command{Argv: parent, Sudo: true})
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "sudo" {
		t.Errorf("sudo command ran under %q, %v", res.Stdout, err)
	}
	// Not allowed: sudo -n fails at once instead of asking for a password.
	start := time.Now()
	res, err = tr.Run(t.Context(), transport.Command{Argv: []string{"cat", "/etc/shadow"}, Sudo: true})
	if err != nil || res.ExitCode == 0 || !bytes.Contains(res.Stderr, []byte("sudo")) || time.Since(start) > 5*time.Second {
		t.Errorf("disallowed sudo: %+v %v", res, err)
	}
	if _, err := tr.ReadFile(t.Context(), "/etc/shadow", 0); !errors.Is(err, transport.ErrPermission) {
		t.Errorf("ReadFile /etc/shadow as %s: %v, want ErrPermission", user, err)
	}
	if _, err := tr.Run(t.Context(), transport.Command{Argv: []string{"/root/.bashrc"}}); !errors.Is(err, transport.ErrNotFound) &&
		!errors.Is(err, transport.ErrPermission) {
		t.Errorf("running a file in /root as %s: %v", user, err)
	}
}

func TestLegacyAlgorithms(t *testing.T) {
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"rsa"}, Config: []string{
		"KexAlgorithms diffie-hellman-group14-sha1",
		"Ciphers aes128-cbc",
		"MACs hmac-sha1",
		"HostKeyAlgorithms ssh-rsa",
	}})
	cfg := f.config()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := ssh.Dial(ctx, cfg)
	if err == nil || stageOf(t, err) != ssh.StageHandshake || !strings.Contains(err.Error(), "legacy_algorithms = true") {
		t.Fatalf("Dial to a legacy-only server without legacy: %v", err)
	}
	cfg.LegacyAlgorithms = true
	tr := dial(t, cfg)
	if !tr.Info().Legacy {
		t.Error("Info().Legacy is false")
	}
	run(t, tr, "true")
}

// TestConcurrent runs more commands at once than sshd allows sessions per connection.
func TestConcurrent(t *testing.T) {
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	tr := dial(t, f.config())
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			res, err := tr.Run(t.Context(), transport.Command{Argv: []string{"echo", fmt.Sprint(i)}})
			if err != nil || string(res.Stdout) != fmt.Sprintf("%d\n", i) {
				t.Errorf("run %d: %+v %v", i, res, err)
			}
		})
	}
	wg.Wait()
}

func TestInfo(t *testing.T) {
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	tr := dial(t, f.config())
	run(t, tr, "true")
	host, _ := os.Hostname()
	want := transport.Info{Kind: "ssh", Address: "root@" + f.srv.Addr, Hostname: host,
		HostKey: gossh.FingerprintSHA256(f.srv.HostKeys["ed25519"].Public)}
	if diff := cmp.Diff(want, tr.Info()); diff != "" {
		t.Errorf("Info (-want +got):\n%s", diff)
	}
	if err := tr.Close(); err != nil {
		t.Error(err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := tr.Run(t.Context(), transport.Command{Argv: []string{"true"}}); err == nil {
		t.Error("Run after Close succeeded")
	}
}
