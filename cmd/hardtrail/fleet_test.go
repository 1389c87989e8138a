package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/hardtrail/hardtrail/agent/fleet"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/collector/transport/ssh/sshtest"
	"github.com/hardtrail/hardtrail/config"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

// The fleet tests run the built binary against real OpenSSH servers on loopback: several targets
// in one config, captured in one `hardtrail snapshot`, each failing on its own.

// server is a loopback sshd with a root key authorized and its host keys in a known_hosts file.
type server struct {
	*sshtest.Server
	key *sshtest.Key // authorized for root
	kh  string       // known_hosts holding the server's keys under its address
}

func startServer(t *testing.T, dir string, opts sshtest.Options) *server {
	t.Helper()
	if len(opts.HostKeyTypes) == 0 {
		opts.HostKeyTypes = []string{"ed25519"}
	}
	srv := sshtest.Start(t, opts)
	key := sshtest.NewKey(t, dir, fmt.Sprintf("id_%d", srv.Port), "ed25519", "")
	srv.Authorize(t, "root", key, "")
	var lines []string
	for _, typ := range opts.HostKeyTypes {
		lines = append(lines, srv.KnownHostsLine(typ))
	}
	return &server{Server: srv, key: key, kh: sshtest.WriteKnownHosts(t, dir, lines...)}
}

func (s *server) fingerprint() string {
	return gossh.FingerprintSHA256(s.HostKeys["ed25519"].Public)
}

// target is one [[target]] table; empty fields are left out.
type target struct {
	Name, Transport, Address, Identity, Cert, KnownHosts, Jump string
	Profiles                                                   []string
	Timeout, CommandTimeout                                    string
	UseAgent                                                   *bool
}

// ssh is a target reaching s as root with s's key and known_hosts.
func (s *server) target(name string, profiles ...string) target {
	return target{Name: name, Address: "root@" + s.Addr, Identity: s.key.Path, KnownHosts: s.kh, Profiles: profiles}
}

// writeConfig writes hardtrail.toml: the store, [agent] concurrency when set, the targets, and
// extra TOML (profiles) at the end.
func writeConfig(t testing.TB, dir string, concurrency int, targets []target, extra string) (cfg, storePath string) {
	t.Helper()
	storePath = filepath.Join(dir, "store", "h.db")
	var b strings.Builder
	fmt.Fprintf(&b, "store = %q\n", storePath)
	if concurrency > 0 {
		fmt.Fprintf(&b, "[agent]\nconcurrency = %d\n", concurrency)
	}
	for _, tg := range targets {
		fmt.Fprintf(&b, "\n[[target]]\nname = %q\n", tg.Name)
		for _, kv := range [][2]string{{"transport", tg.Transport}, {"address", tg.Address}, {"identity_file", tg.Identity},
			{"certificate_file", tg.Cert}, {"known_hosts", tg.KnownHosts}, {"jump", tg.Jump}, {"timeout", tg.Timeout},
			{"command_timeout", tg.CommandTimeout}} {
			if kv[1] != "" {
				fmt.Fprintf(&b, "%s = %q\n", kv[0], kv[1])
			}
		}
		if len(tg.Profiles) > 0 {
			q := make([]string, len(tg.Profiles))
			for i, p := range tg.Profiles {
				q[i] = fmt.Sprintf("%q", p)
			}
			fmt.Fprintf(&b, "profiles = [%s]\n", strings.Join(q, ", "))
		}
		if tg.UseAgent != nil {
			fmt.Fprintf(&b, "use_agent = %v\n", *tg.UseAgent)
		}
	}
	b.WriteString("\n" + extra)
	cfg = filepath.Join(dir, "hardtrail.toml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, storePath
}

// htEnv runs the binary with a clean environment (no agent, no hardtrail variables) plus env.
func htEnv(t testing.TB, env []string, args ...string) (string, string, int) {
	t.Helper()
	return htRun(t, env, "", args...)
}

func cleanEnv(env ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k == "SSH_AUTH_SOCK" || strings.HasPrefix(k, "HARDTRAIL_") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, env...)
}

// snapshotRun runs `snapshot --format json` and returns its lines by target, stderr and the exit code.
func snapshotRun(t testing.TB, env []string, cfg string, args ...string) (map[string]snapLine, string, int) {
	t.Helper()
	out, errOut, code := htEnv(t, env, append([]string{"--config", cfg, "--format", "json", "snapshot"}, args...)...)
	var lines []snapLine
	if err := json.Unmarshal([]byte(out), &lines); err != nil {
		t.Fatalf("snapshot exit %d: %v\nstdout: %s\nstderr: %s", code, err, out, errOut)
	}
	byName := map[string]snapLine{}
	for _, l := range lines {
		byName[l.Target] = l
	}
	return byName, errOut, code
}

// manifest reads a stored snapshot's manifest through `show --format json`.
func manifest(t testing.TB, cfg, ref string) store.Manifest {
	t.Helper()
	out, errOut, code := htEnv(t, nil, "--config", cfg, "--format", "json", "show", ref)
	if code != 0 {
		t.Fatalf("show %s: exit %d: %s", ref, code, errOut)
	}
	var v struct {
		ID       string
		Manifest store.Manifest
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	return v.Manifest
}

func content(t testing.TB, cfg, ref, artifact string) string {
	t.Helper()
	out, errOut, code := htEnv(t, nil, "--config", cfg, "show", ref, artifact)
	if code != 0 {
		t.Fatalf("show %s %s: exit %d: %s", ref, artifact, code, errOut)
	}
	return out
}

func verifyStore(t testing.TB, cfg string) {
	t.Helper()
	out, errOut, code := htEnv(t, nil, "--config", cfg, "store", "verify")
	if code != 0 || !strings.Contains(out, "ok: ") {
		t.Errorf("store verify: exit %d\n%s%s", code, out, errOut)
	}
}

// evidenceView is an artifact entry without what legitimately differs between two captures of
// the same machine: how long it took.
func evidenceView(e store.ArtifactEntry) store.ArtifactEntry {
	e.DurationMS = 0
	return e
}

// The linux profile captured over SSH (to this machine, as root) is the local capture of the
// same machine, artifact by artifact, apart from provenance. Both are taken in one run, while the
// same listeners are up, so only the machine changing between the two moments can tell them
// apart: that is net/listening when tests of other packages open or close sockets meanwhile, and
// then the pair is taken again.
func TestFleetLinuxOverSSHEqualsLocal(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, sshtest.Options{})
	cfg, _ := writeConfig(t, dir, 0, []target{
		{Name: "here", Transport: "local"},
		srv.target("self"),
	}, "")
	var diffs []string
	for try := 0; ; try++ {
		lines, errOut, code := snapshotRun(t, nil, cfg)
		if code != 0 {
			t.Fatalf("snapshot: exit %d: %+v\n%s", code, lines, errOut)
		}
		local, remote := manifest(t, cfg, "here"), manifest(t, cfg, "self")
		if remote.Transport != "ssh" || remote.Address != "root@"+srv.Addr || remote.HostKey != srv.fingerprint() {
			t.Errorf("ssh provenance: transport %q address %q host key %q", remote.Transport, remote.Address, remote.HostKey)
		}
		if local.Hostname == "" || remote.Hostname != local.Hostname {
			t.Errorf("hostname: local %q, ssh %q", local.Hostname, remote.Hostname)
		}
		if len(local.Artifacts) < 11 || !slices.Equal(local.Profiles, remote.Profiles) {
			t.Fatalf("local capture: %d artifacts, profiles %v / %v", len(local.Artifacts), local.Profiles, remote.Profiles)
		}
		diffs = diffs[:0]
		lm, rm := map[string]store.ArtifactEntry{}, map[string]store.ArtifactEntry{}
		for _, e := range local.Artifacts {
			lm[e.Name] = evidenceView(e)
		}
		for _, e := range remote.Artifacts {
			rm[e.Name] = evidenceView(e)
		}
		for name := range joinKeys(lm, rm) {
			if d := gocmp.Diff(lm[name], rm[name]); d != "" {
				if lm[name].SHA256 != "" && rm[name].SHA256 != "" && lm[name].SHA256 != rm[name].SHA256 {
					d += "content (-local +ssh):\n" + gocmp.Diff(content(t, cfg, "here", name), content(t, cfg, "self", name))
				}
				diffs = append(diffs, name+" (-local +ssh):\n"+d)
			}
		}
		if len(diffs) == 0 {
			t.Logf("equal after %d tries: %d artifacts", try+1, len(local.Artifacts))
			break
		}
		onlyListening := len(diffs) == 1 && strings.HasPrefix(diffs[0], "net/listening ")
		if !onlyListening || try == 4 {
			t.Fatalf("ssh capture differs from the local one (try %d):\n%s", try+1, strings.Join(diffs, "\n"))
		}
		t.Logf("net/listening changed between the two captures (try %d):\n%s", try+1, diffs[0])
	}
	verifyStore(t, cfg)
}

func joinKeys[V any](ms ...map[string]V) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			out[k] = true
		}
	}
	return out
}

// whoami is a profile that shows who runs commands, with and without sudo, and what that user
// may read.
const whoami = `
[[profile]]
name = "whoami"
[[profile.source]]
name = "id/user"
command = ["id", "-un"]
[[profile.source]]
name = "id/sudo"
command = ["id", "-u"]
sudo = true
[[profile.source]]
name = "shadow/sudo"
command = ["head", "-c", "5", "/etc/shadow"]
sudo = true
[[profile.source]]
name = "shadow/file"
files = ["/etc/shadow"]
`

// Every way of authenticating in one run: an identity file, the agent (an in-process agent on
// SSH_AUTH_SOCK for the binary), a user certificate, a jump host named as another target, and a
// user without root that runs some commands through sudo. sshd's log shows which key each used.
func TestFleetAuth(t *testing.T) {
	dir := t.TempDir()
	userCA := sshtest.NewKey(t, dir, "user_ca", "ed25519", "")
	srv := startServer(t, dir, sshtest.Options{UserCA: userCA, Config: []string{"LogLevel DEBUG1"}})
	inner := startServer(t, dir, sshtest.Options{})

	keyed := sshtest.NewKey(t, dir, "id_keyed", "ed25519", "")
	srv.Authorize(t, "root", keyed, "")
	agentKey := sshtest.NewKey(t, dir, "id_agent", "ed25519", "")
	srv.Authorize(t, "root", agentKey, "")
	certKey := sshtest.NewKey(t, dir, "id_cert", "ecdsa", "") // not authorized: the CA vouches for it
	certKey.Certify(t, userCA, false, "-5m:+1h", "root")
	explicit := sshtest.NewKey(t, dir, "id_explicit", "ed25519", "")
	explicitCert := filepath.Join(dir, "explicit.cert")
	if err := os.Rename(explicit.Certify(t, userCA, false, "-5m:+1h", "root"), explicitCert); err != nil {
		t.Fatal(err)
	}
	sudoKey := sshtest.NewKey(t, dir, "id_sudo", "ed25519", "")
	user := sudoUser(t, "/usr/bin/id")
	srv.Authorize(t, user, sudoKey, "")

	no := false
	targets := []target{
		{Name: "keyed", Address: "root@" + srv.Addr, Identity: keyed.Path, KnownHosts: srv.kh, UseAgent: &no},
		{Name: "agent", Address: "root@" + srv.Addr, KnownHosts: srv.kh},
		{Name: "cert", Address: "root@" + srv.Addr, Identity: certKey.Path, KnownHosts: srv.kh, UseAgent: &no},
		{Name: "cert-file", Address: "root@" + srv.Addr, Identity: explicit.Path, Cert: explicitCert, KnownHosts: srv.kh, UseAgent: &no},
		{Name: "bastion", Address: "root@" + srv.Addr, Identity: srv.key.Path, KnownHosts: srv.kh, UseAgent: &no},
		{Name: "behind", Address: "root@" + inner.Addr, Identity: inner.key.Path, KnownHosts: inner.kh, Jump: "bastion", UseAgent: &no},
		{Name: "sudo", Address: user + "@" + srv.Addr, Identity: sudoKey.Path, KnownHosts: srv.kh, UseAgent: &no},
	}
	for i := range targets {
		targets[i].Profiles = []string{"whoami"}
	}
	cfg, _ := writeConfig(t, dir, 0, targets, whoami)
	lines, errOut, code := snapshotRun(t, []string{"SSH_AUTH_SOCK=" + sshtest.StartAgent(t, agentKey)}, cfg)
	if code != 0 {
		t.Fatalf("snapshot: exit %d\n%+v\n%s", code, lines, errOut)
	}
	for _, tg := range targets {
		l := lines[tg.Name]
		if l.Error != "" || l.Artifacts != 4 {
			t.Errorf("%s: %+v", tg.Name, l)
			continue
		}
		wantUser := "root"
		if tg.Name == "sudo" {
			wantUser = user
		}
		if got := content(t, cfg, tg.Name, "id/user"); got != wantUser+"\n" {
			t.Errorf("%s: id -un = %q, want %s", tg.Name, got, wantUser)
		}
		if got := content(t, cfg, tg.Name, "id/sudo"); got != "0\n" {
			t.Errorf("%s: id -u through sudo = %q", tg.Name, got)
		}
		m := manifest(t, cfg, tg.Name)
		wantKey := srv.fingerprint()
		if tg.Name == "behind" {
			wantKey = inner.fingerprint()
		}
		if m.HostKey != wantKey || m.Address != tg.Address {
			t.Errorf("%s: recorded host key %s address %s, want %s %s", tg.Name, m.HostKey, m.Address, wantKey, tg.Address)
		}
		for _, e := range m.Artifacts {
			notPermitted := strings.HasPrefix(e.Unavailable, "not permitted")
			if tg.Name == "sudo" && strings.HasPrefix(e.Name, "shadow/") != notPermitted ||
				tg.Name != "sudo" && e.Unavailable != "" {
				t.Errorf("%s: %s: unavailable %q", tg.Name, e.Name, e.Unavailable)
			}
		}
	}
	// The key each target authenticated with, as sshd saw it.
	fp := func(k *sshtest.Key) string { return gossh.FingerprintSHA256(k.Public) }
	for what, want := range map[string]string{
		"identity file":        "ED25519 " + fp(keyed),
		"agent":                "ED25519 " + fp(agentKey),
		"certificate":          "ECDSA-CERT " + fp(certKey) + " ID id_cert",
		"explicit certificate": "ED25519-CERT " + fp(explicit) + " ID id_explicit",
		"bastion":              "ED25519 " + fp(srv.key),
		"sudo user":            "Accepted publickey for " + user + " from 127.0.0.1 port",
	} {
		if !strings.Contains(srv.Log(), want) {
			t.Errorf("%s: sshd did not log %q", what, want)
		}
	}
	if want := "Accepted publickey for root from 127.0.0.1 port"; !strings.Contains(inner.Log(), want) {
		t.Errorf("behind: sshd did not log %q", want)
	}
	// The bastion opened the connection to the target behind it.
	if want := fmt.Sprintf("target 127.0.0.1 port %d", inner.Port); !strings.Contains(srv.Log(), want) {
		t.Errorf("the bastion's sshd did not log %q", want)
	}
	verifyStore(t, cfg)
}

// sudoUser adds a user with a locked password who may run the given commands as root without a
// password, and removes both when the test ends.
func sudoUser(t *testing.T, commands ...string) string {
	t.Helper()
	testutil.Root(t)
	testutil.Tool(t, "sudo")
	useradd, userdel, visudo := testutil.Tool(t, "useradd"), testutil.Tool(t, "userdel"), testutil.Tool(t, "visudo")
	user := fmt.Sprintf("htfleet%d", os.Getpid()%100000)
	testutil.Run(t, useradd, "-M", "-d", t.TempDir(), "-s", "/bin/sh", "-p", "*", user)
	t.Cleanup(func() {
		// sshd's process for the user's connection may outlive the connection by a moment.
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
	if err := os.WriteFile(sudoers, []byte(user+" ALL=(root) NOPASSWD: "+strings.Join(commands, ", ")+"\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(sudoers) })
	testutil.Run(t, visudo, "-c", "-f", sudoers)
	return user
}

// faultProfiles are profiles for the fault targets: a quick one for the targets that must get
// through, a command that hangs, a command that runs while the connection is cut, and a flood.
const faultProfiles = `
[[profile]]
name = "quick"
[[profile.source]]
name = "echo"
command = ["echo", "captured"]
[[profile.source]]
name = "os-release"
files = ["/etc/os-release"]

[[profile]]
name = "hang"
[[profile.source]]
name = "hang"
command = ["sleep", "2741.1"]
[[profile.source]]
name = "echo"
command = ["echo", "after"]

[[profile]]
name = "hang-all"
[[profile.source]]
name = "hang"
command = ["sleep", "2741.2"]

[[profile]]
name = "cut"
[[profile.source]]
name = "echo"
command = ["echo", "before"]
[[profile.source]]
name = "cut"
command = ["sleep", "2741.3"]

[[profile]]
name = "flood"
[[profile.source]]
name = "flood"
command = ["yes", "hardtrail-flood"]
max_bytes = 4096
[[profile.source]]
name = "echo"
command = ["echo", "after"]
`

// One run with a target for every fault beside targets that are fine: each fault ends its own
// target with a message naming the stage and what to do, the others are captured and stored,
// the exit code is 1, and the store verifies.
func TestFleetFaults(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, sshtest.Options{})
	stranger := sshtest.NewKey(t, dir, "stranger", "ed25519", "")
	unauthorized := sshtest.NewKey(t, dir, "unauthorized", "ed25519", "")
	proxy := sshtest.NewProxy(t, srv.Addr)
	changedKH := sshtest.WriteKnownHosts(t, dir, knownhosts.Line([]string{srv.Addr}, stranger.Public))
	proxyKH := sshtest.WriteKnownHosts(t, dir, srv.KnownHostsLineAs(proxy.Addr, "ed25519"))

	at := func(tg target, f func(*target)) target { f(&tg); return tg }
	targets := []target{
		srv.target("good1", "quick"),
		at(srv.target("refused", "quick"), func(tg *target) { tg.Address = "root@" + sshtest.ClosedPort(t) }),
		at(srv.target("tarpit", "quick"), func(tg *target) { tg.Address, tg.Timeout = "root@"+sshtest.Tarpit(t), "2s" }),
		at(srv.target("changed", "quick"), func(tg *target) { tg.KnownHosts = changedKH }),
		at(srv.target("unknown", "quick"), func(tg *target) { tg.KnownHosts = filepath.Join(dir, "absent_known_hosts") }),
		at(srv.target("denied", "quick"), func(tg *target) { tg.Identity = unauthorized.Path }),
		at(srv.target("hang", "hang"), func(tg *target) { tg.CommandTimeout = "1s" }),
		at(srv.target("hang-all", "hang-all"), func(tg *target) { tg.Timeout = "2s" }),
		at(srv.target("cut", "cut"), func(tg *target) { tg.Address, tg.KnownHosts = "root@"+proxy.Addr, proxyKH }),
		srv.target("flood", "flood"),
		srv.target("good2", "quick"),
	}
	cfg, _ := writeConfig(t, dir, 0, targets, faultProfiles)

	// The connection of target cut is dropped while its command runs.
	pgrep := testutil.Tool(t, "pgrep")
	cutDone := make(chan struct{})
	go func() {
		defer close(cutDone)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if exec.Command(pgrep, "-f", "sleep 2741.3").Run() == nil {
				proxy.Drop()
				return
			}
		}
	}()
	start := time.Now()
	lines, errOut, code := snapshotRun(t, nil, cfg)
	took := time.Since(start)
	<-cutDone
	if code != 1 || !strings.Contains(errOut, "hardtrail: 7 of 11 targets failed to capture") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
	if took > 10*time.Second {
		t.Errorf("the run took %s: a fault held up the fleet", took)
	}
	fp := srv.fingerprint()
	for _, tt := range []struct {
		target string
		stage  string // empty: captured
		want   []string
	}{
		{"good1", "", nil},
		{"good2", "", nil},
		{"refused", "dial", []string{"connection refused", "check the address"}},
		{"tarpit", "timeout", []string{"SSH handshake", "2s"}},
		{"changed", "hostkey", []string{"does not match", fp, gossh.FingerprintSHA256(stranger.Public), "hardtrail hosts add changed --fingerprint " + fp}},
		{"unknown", "hostkey", []string{"not known", fp, "hardtrail hosts add unknown --fingerprint " + fp}},
		{"denied", "auth", []string{"refused every key", gossh.FingerprintSHA256(unauthorized.Public), "authorized_keys"}},
		{"hang", "", nil},
		{"hang-all", "timeout", []string{"2s"}},
		{"cut", "command", []string{"cut", "session ended"}},
		{"flood", "", nil},
	} {
		l, ok := lines[tt.target]
		switch {
		case !ok:
			t.Errorf("%s: no line", tt.target)
		case tt.stage == "" && (l.Error != "" || l.ID == ""):
			t.Errorf("%s: not captured: %+v", tt.target, l)
		case tt.stage != "" && l.Stage != tt.stage:
			t.Errorf("%s: stage %q, want %q: %s", tt.target, l.Stage, tt.stage, l.Error)
		case tt.stage != "" && l.ID != "":
			t.Errorf("%s: failed and stored as %s", tt.target, l.ID)
		}
		for _, w := range append(tt.want, tt.target) {
			if tt.stage != "" && !strings.Contains(l.Error, w) {
				t.Errorf("%s: error lacks %q:\n%s", tt.target, w, l.Error)
			}
		}
	}
	// A command past its command_timeout is an artifact marked unavailable; the rest of the
	// target is captured. (The collector words the reason with the source's own timeout, not
	// the target's command_timeout that stopped it; what it took is recorded right.)
	hang := manifestEntries(manifest(t, cfg, "hang"))
	if e := hang["hang"]; !strings.HasPrefix(e.Unavailable, "timed out") || e.DurationMS < 900 || e.DurationMS > 5000 {
		t.Errorf("hung command: %+v", e)
	}
	if e := hang["echo"]; e.Unavailable != "" || content(t, cfg, "hang", "echo") != "after\n" {
		t.Errorf("command after the hung one: %+v", e)
	}
	// A flood is cut at the source's max_bytes and recorded as truncated.
	flood := manifestEntries(manifest(t, cfg, "flood"))
	if e := flood["flood"]; !e.Truncated || e.Size != 4096 || e.Unavailable != "" {
		t.Errorf("flood: %+v", e)
	}
	if got := content(t, cfg, "flood", "flood"); len(got) != 4096 || !strings.HasPrefix(got, "hardtrail-flood\nhardtrail-flood\n") {
		t.Errorf("flood content: %d bytes starting %.40q", len(got), got)
	}
	if got := content(t, cfg, "flood", "echo"); got != "after\n" {
		t.Errorf("after the flood: %q", got)
	}
	if e := flood["echo"]; e.Truncated {
		t.Errorf("echo after the flood: %+v", e)
	}
	// Only the captured targets are in the log.
	out, _, _ := htEnv(t, nil, "--config", cfg, "log")
	for _, tt := range targets {
		if want := lines[tt.Name].ID != ""; strings.Contains(out, "  "+tt.Name+"  ") != want {
			t.Errorf("log shows %s: %v, want %v:\n%s", tt.Name, !want, want, out)
		}
	}
	noSurvivor(t, "sleep 2741")
	noSurvivor(t, "yes hardtrail-flood")
	verifyStore(t, cfg)
}

// noSurvivor fails the test when a process whose command line contains pattern is still running
// a moment after the run that started it ended.
func noSurvivor(t *testing.T, pattern string) {
	t.Helper()
	pgrep := testutil.Tool(t, "pgrep")
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, err := exec.Command(pgrep, "-af", pattern).Output()
		if err != nil { // exit 1: no such process
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("still running on the target 3s after the run:\n%s", out)
			return
		}
	}
}

func manifestEntries(m store.Manifest) map[string]store.ArtifactEntry {
	out := map[string]store.ArtifactEntry{}
	for _, e := range m.Artifacts {
		out[e.Name] = e
	}
	return out
}

// hosts add enrols a host key only against the fingerprint given; without one it prints what the
// host presents. Enrolled, the target captures; a target behind a jump host is scanned through it.
func TestFleetHostsAdd(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, sshtest.Options{Config: []string{"LogLevel DEBUG1"}})
	inner := startServer(t, dir, sshtest.Options{})
	kh := filepath.Join(dir, "enrolled", "known_hosts")
	web := srv.target("web", "quick")
	web.KnownHosts = kh
	behind := inner.target("behind", "quick")
	behind.KnownHosts, behind.Jump = kh, "bastion"
	cfg, _ := writeConfig(t, dir, 0, []target{web, srv.target("bastion", "quick"), behind, {Name: "here", Transport: "local"}}, faultProfiles)
	stranger := sshtest.NewKey(t, dir, "stranger", "ed25519", "")
	wrong := gossh.FingerprintSHA256(stranger.Public)
	fp, innerFP := srv.fingerprint(), inner.fingerprint()

	for _, tt := range []struct {
		args   []string
		code   int
		stderr []string
	}{
		{[]string{"web"}, 2, []string{"target web (root@" + srv.Addr + ") presents ssh-ed25519 " + fp,
			"check it with the host's owner", "hardtrail hosts add web --fingerprint " + fp}},
		{[]string{"web", "--fingerprint", wrong}, 1, []string{"presents ssh-ed25519 " + fp + ", not the given " + wrong, "refusing"}},
		{[]string{"nosuch", "--fingerprint", fp}, 2, []string{`unknown target "nosuch"`}},
		{[]string{"here", "--fingerprint", fp}, 2, []string{"target here is local, not ssh"}},
		{[]string{"behind", "--fingerprint", fp}, 1, []string{"presents ssh-ed25519 " + innerFP + ", not the given " + fp}},
	} {
		out, errOut, code := htEnv(t, nil, append([]string{"--config", cfg, "hosts", "add"}, tt.args...)...)
		if code != tt.code {
			t.Errorf("hosts add %v: exit %d, want %d\n%s%s", tt.args, code, tt.code, out, errOut)
		}
		for _, w := range tt.stderr {
			if !strings.Contains(errOut, w) {
				t.Errorf("hosts add %v: stderr lacks %q:\n%s", tt.args, w, errOut)
			}
		}
	}
	if _, err := os.Stat(kh); !os.IsNotExist(err) {
		t.Fatalf("known_hosts written by a refused enrolment: %v", err)
	}
	// Not enrolled: the capture fails at the host key and says how to enrol.
	lines, _, code := snapshotRun(t, nil, cfg, "web")
	if code != 1 || lines["web"].Stage != "hostkey" || !strings.Contains(lines["web"].Error, "hardtrail hosts add web --fingerprint "+fp) {
		t.Fatalf("snapshot before enrolment: exit %d %+v", code, lines["web"])
	}
	for _, tt := range []struct{ target, fp string }{{"web", fp}, {"behind", innerFP}} {
		out, errOut, code := htEnv(t, nil, "--config", cfg, "hosts", "add", tt.target, "--fingerprint", tt.fp)
		if want := fmt.Sprintf("%s: ssh-ed25519 %s added to %s\n", tt.target, tt.fp, kh); code != 0 || out != want {
			t.Errorf("hosts add %s: exit %d\n%q, want %q\n%s", tt.target, code, out, want, errOut)
		}
	}
	// The jump host made the connection for the scan.
	if want := fmt.Sprintf("target 127.0.0.1 port %d", inner.Port); !strings.Contains(srv.Log(), want) {
		t.Errorf("the bastion did not carry the scan: its sshd did not log %q", want)
	}
	// The entries are hashed, and OpenSSH finds them.
	b, err := os.ReadFile(kh)
	if err != nil || bytes.Contains(b, []byte("127.0.0.1")) || bytes.Count(b, []byte("\n")) != 2 {
		t.Errorf("known_hosts (%v):\n%s", err, b)
	}
	if st, err := os.Stat(kh); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode: %v %v", st.Mode(), err)
	}
	found := testutil.Run(t, testutil.Tool(t, "ssh-keygen"), "-F", knownhosts.Normalize(srv.Addr), "-f", kh)
	if !strings.Contains(found, "ssh-ed25519") {
		t.Errorf("ssh-keygen -F does not find web:\n%s", found)
	}
	lines, errOut, code := snapshotRun(t, nil, cfg, "web", "behind")
	if code != 0 || lines["web"].ID == "" || lines["behind"].ID == "" {
		t.Errorf("snapshot after enrolment: exit %d %+v\n%s", code, lines, errOut)
	}
	if m := manifest(t, cfg, "behind"); m.HostKey != innerFP {
		t.Errorf("behind recorded host key %s, want %s", m.HostKey, innerFP)
	}
}

// Progress: when stderr is not a terminal, one summary line; on a terminal (the binary runs under
// script(1), which gives it a pty), a bar redrawn as each target ends, with done and failed
// counts, rate and ETA, cleared before each result line.
func TestFleetProgress(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, sshtest.Options{})
	refused := srv.target("refused", "quick")
	refused.Address = "root@" + sshtest.ClosedPort(t)
	cfg, _ := writeConfig(t, dir, 0, []target{srv.target("good1", "quick"), refused, srv.target("good2", "quick")}, faultProfiles)

	out, errOut, code := htEnv(t, nil, "--config", cfg, "snapshot")
	summary := regexp.MustCompile(`^3 targets: 2 captured, 1 failed in [0-9.]+m?s \([0-9.]+ targets/s\)\nhardtrail: 1 of 3 targets failed to capture\n$`)
	if code != 1 || !summary.MatchString(errOut) {
		t.Errorf("not a terminal: exit %d, stderr %q", code, errOut)
	}
	if got := strings.Count(out, "\n"); got != 3 || !strings.Contains(out, "refused  failed at dial: ") {
		t.Errorf("stdout:\n%s", out)
	}

	script := testutil.Tool(t, "script")
	// script(1) runs its command through a shell: the words are quoted for it.
	line := strings.Join([]string{shellQuote(binary), "--config", shellQuote(cfg), "snapshot"}, " ")
	cmd := exec.Command(script, "--quiet", "--return", "--command", line, "/dev/null")
	cmd.Env = cleanEnv()
	tty, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("under a pty: %v\n%s", err, tty)
	}
	text := strings.ReplaceAll(string(tty), "\r\n", "\n")
	bar := regexp.MustCompile(`\r\[([#.]{30})\] ([0-9])/3 done, ([0-9]) failed, [0-9.]+ targets/s, ETA ([0-9.]+m?s|[0-9]+m[0-9]+s) \r\x1b\[K`)
	bars := bar.FindAllStringSubmatch(text, -1)
	if len(bars) != 3 {
		t.Fatalf("%d progress bars, want one per target:\n%q", len(bars), text)
	}
	for i, b := range bars {
		done := i + 1
		if b[2] != fmt.Sprint(done) || b[1] != strings.Repeat("#", 30*done/3)+strings.Repeat(".", 30-30*done/3) {
			t.Errorf("bar %d: %q", i, b[0])
		}
	}
	if last := bars[2]; last[3] != "1" || last[4] != "0s" {
		t.Errorf("last bar: %q", last[0])
	}
	// Each result line starts on a cleared line, and the summary ends the run.
	for _, name := range []string{"good1", "good2", "refused"} {
		if !regexp.MustCompile(`(^|\x1b\[K)[-0-9a-f]+ +` + name + `  `).MatchString(text) {
			t.Errorf("no clean result line for %s:\n%q", name, text)
		}
	}
	if !regexp.MustCompile(`\x1b\[K3 targets: 2 captured, 1 failed in [0-9.]+m?s \([0-9.]+ targets/s\)\nhardtrail: 1 of 3 targets failed to capture\n$`).MatchString(text) {
		t.Errorf("summary on a terminal:\n%q", text)
	}
}

// shellQuote makes s one word for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// stamp is a profile whose one command takes a while and prints when it started and ended on
// the target.
const stamp = `
[[profile]]
name = "stamp"
[[profile.source]]
name = "stamp"
command = ["sh", "-c", "date +%s.%N; sleep 0.8; date +%s.%N"]
`

// [agent] concurrency bounds how many targets are captured at once: measured on the target side,
// from when each target's command ran, the most that overlap is the bound (and with a loose bound,
// more overlap: the measure sees it).
func TestFleetConcurrency(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, sshtest.Options{})
	var targets []target
	for i := range 6 {
		targets = append(targets, srv.target(fmt.Sprintf("t%d", i), "stamp"))
	}
	for _, tt := range []struct {
		concurrency      int
		minMost, maxMost int
	}{{2, 2, 2}, {6, 3, 6}} {
		sub := filepath.Join(dir, fmt.Sprint(tt.concurrency))
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		cfg, _ := writeConfig(t, sub, tt.concurrency, targets, stamp)
		lines, errOut, code := snapshotRun(t, nil, cfg)
		if code != 0 {
			t.Fatalf("concurrency %d: exit %d %+v\n%s", tt.concurrency, code, lines, errOut)
		}
		type event struct {
			at    float64
			delta int
		}
		var events []event
		for _, tg := range targets {
			var start, end float64
			if _, err := fmt.Sscanf(content(t, cfg, tg.Name, "stamp"), "%f\n%f\n", &start, &end); err != nil || end-start < 0.8 {
				t.Fatalf("%s: stamp %v %v: %v", tg.Name, start, end, err)
			}
			events = append(events, event{start, +1}, event{end, -1})
		}
		slices.SortFunc(events, func(a, b event) int {
			if a.at != b.at {
				return cmp.Compare(a.at, b.at)
			}
			return a.delta - b.delta // an end before a start at the same instant
		})
		most, now := 0, 0
		for _, e := range events {
			now += e.delta
			most = max(most, now)
		}
		if most < tt.minMost || most > tt.maxMost {
			t.Errorf("concurrency %d: at most %d targets ran at once, want %d to %d", tt.concurrency, most, tt.minMost, tt.maxMost)
		}
	}
}

// The README's fleet example loads, and each target reaches SSH the way its comments say.
func TestFleetExampleConfig(t *testing.T) {
	c, err := config.Load("../../testdata/fleet/hardtrail.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Agent.Concurrency != 32 || len(c.Targets) != 4 {
		t.Fatalf("concurrency %d, %d targets", c.Agent.Concurrency, len(c.Targets))
	}
	for _, tt := range []struct {
		name, jump     string
		commandTimeout time.Duration
		agent          bool
		pins           int
	}{
		{name: "bastion"},
		{name: "web1", jump: "hardtrail@bastion.example.net:22", commandTimeout: 30 * time.Second},
		{name: "db1", jump: "hardtrail@bastion.example.net:22"},
		{name: "edge1", agent: true, pins: 1},
	} {
		tg, _ := c.Target(tt.name)
		sc, err := fleet.SSHConfig(c, tg)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		jump := ""
		if sc.Jump != nil {
			jump = sc.Jump.Address
			if sc.Jump.Name != "bastion" || len(sc.Jump.IdentityFiles) != 1 || len(sc.Jump.KnownHosts) != 1 {
				t.Errorf("%s: jump %+v", tt.name, sc.Jump)
			}
		}
		if tg.Transport != "ssh" || jump != tt.jump || sc.CommandTimeout != tt.commandTimeout || sc.UseAgent != tt.agent || len(sc.Fingerprints) != tt.pins {
			t.Errorf("%s: transport %s, jump %q, command timeout %s, agent %v, %d pins", tt.name, tg.Transport, jump, sc.CommandTimeout, sc.UseAgent, len(sc.Fingerprints))
		}
	}
}

// SIGINT during a fleet run stops the target being captured (nothing left running on it), marks
// the targets not yet started, and the summary adds up to the whole fleet.
func TestFleetInterrupt(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, sshtest.Options{})
	profile := strings.ReplaceAll(faultProfiles, "2741.1", "2741.4")
	var targets []target
	for i := range 4 {
		targets = append(targets, srv.target(fmt.Sprintf("t%d", i), "hang"))
	}
	cfg, _ := writeConfig(t, dir, 1, targets, profile)
	pgrep := testutil.Tool(t, "pgrep")
	cmd := exec.Command(binary, "--config", cfg, "snapshot")
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); exec.Command(pgrep, "-f", "sleep 2741.4").Run() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the first target's command never ran:\n%s%s", stdout.String(), stderr.String())
		}
	}
	start := time.Now()
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("stopping took %s", d)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit: %v", err)
	}
	out := stdout.String()
	if n := strings.Count(out, "failed at cancelled: "); n != 4 || strings.Count(out, "not started") != 3 {
		t.Errorf("want 4 cancelled targets, 3 of them not started:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^4 targets: 0 captured, 4 failed in `).MatchString(stderr.String()) ||
		!strings.Contains(stderr.String(), "hardtrail: 4 of 4 targets failed to capture") {
		t.Errorf("stderr:\n%s\nstdout:\n%s", stderr.String(), out)
	}
	noSurvivor(t, "sleep 2741.4")
	verifyStore(t, cfg)
}
