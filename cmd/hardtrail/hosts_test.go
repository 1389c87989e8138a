package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/hardtrail/hardtrail/collector/transport/ssh"
	"github.com/hardtrail/hardtrail/collector/transport/ssh/sshtest"
)

// rekey gives a running sshd the host key files of key (copied over its ed25519 host key) and
// makes it reread them (SIGHUP), waiting until it presents the new key.
func rekey(t *testing.T, srv *server, keyPath string) string {
	t.Helper()
	dst := srv.HostKeys["ed25519"].Path
	for _, suffix := range []string{"", ".pub"} {
		b, err := os.ReadFile(keyPath + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pubBytes, _ := os.ReadFile(keyPath + ".pub")
	pub, _, _, _, err := gossh.ParseAuthorizedKey(pubBytes)
	if err != nil {
		t.Fatal(err)
	}
	want := gossh.FingerprintSHA256(pub)
	if err := syscall.Kill(srv.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		k, err := ssh.ScanHostKey(context.Background(), srv.Addr, 2*time.Second)
		if err == nil && gossh.FingerprintSHA256(k) == want {
			return want
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not present the new key %s after SIGHUP (last: %v)", want, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// After a host key change, hosts add refuses the new key unless --replace, which leaves only the
// new key trusted: the server with the old key is refused afterwards.
func TestHostsAddReplace(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, sshtest.Options{})
	kh := filepath.Join(dir, "enrolled", "known_hosts")
	web := srv.target("web", "quick")
	web.KnownHosts = kh
	cfg, _ := writeConfig(t, dir, 0, []target{web}, faultProfiles)
	oldKey := filepath.Join(dir, "old_host_key")
	for _, suffix := range []string{"", ".pub"} {
		b, _ := os.ReadFile(srv.HostKeys["ed25519"].Path + suffix)
		os.WriteFile(oldKey+suffix, b, 0o600)
	}
	oldFP := srv.fingerprint()
	if out, errOut, code := htEnv(t, nil, "--config", cfg, "hosts", "add", "web", "--fingerprint", oldFP); code != 0 {
		t.Fatalf("enrol: exit %d\n%s%s", code, out, errOut)
	}
	// The host is reinstalled: a new ed25519 host key.
	fresh := sshtest.NewKey(t, dir, "new_host_key", "ed25519", "")
	newFP := rekey(t, srv, fresh.Path)
	lines, _, code := snapshotRun(t, nil, cfg, "web")
	if code != 1 || lines["web"].Stage != "hostkey" || !strings.Contains(lines["web"].Error, "hardtrail hosts add web --fingerprint "+newFP+" --replace") {
		t.Fatalf("snapshot after the key change: exit %d %+v", code, lines["web"])
	}
	before, _ := os.ReadFile(kh)
	out, errOut, code := htEnv(t, nil, "--config", cfg, "hosts", "add", "web", "--fingerprint", newFP)
	if code != 1 || !strings.Contains(errOut, "already trusts another ssh-ed25519 key") || !strings.Contains(errOut, oldFP) ||
		!strings.Contains(errOut, "--fingerprint "+newFP+" --replace") {
		t.Fatalf("hosts add without --replace: exit %d\n%s%s", code, out, errOut)
	}
	if after, _ := os.ReadFile(kh); !bytes.Equal(before, after) {
		t.Fatalf("a refused enrolment changed known_hosts:\n%s", after)
	}
	out, errOut, code = htEnv(t, nil, "--config", cfg, "hosts", "add", "web", "--fingerprint", newFP, "--replace")
	if code != 0 || !strings.Contains(out, "removed "+kh+":1 ssh-ed25519 "+oldFP) || !strings.Contains(out, "ssh-ed25519 "+newFP+" added to "+kh) {
		t.Fatalf("hosts add --replace: exit %d\n%s%s", code, out, errOut)
	}
	if b, _ := os.ReadFile(kh); bytes.Count(b, []byte("\n")) != 1 {
		t.Errorf("known_hosts after --replace:\n%s", b)
	}
	if lines, errOut, code := snapshotRun(t, nil, cfg, "web"); code != 0 || lines["web"].ID == "" {
		t.Fatalf("snapshot with the new key: exit %d %+v\n%s", code, lines["web"], errOut)
	}
	// A server presenting the old key is refused now.
	rekey(t, srv, oldKey)
	lines, _, code = snapshotRun(t, nil, cfg, "web")
	if code != 1 || lines["web"].Stage != "hostkey" || !strings.Contains(lines["web"].Error, "does not match") {
		t.Fatalf("snapshot against the old key: exit %d %+v", code, lines["web"])
	}
}
