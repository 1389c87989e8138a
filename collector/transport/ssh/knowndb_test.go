package ssh

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// The parsed known_hosts files are shared while they are unchanged, and any change to them
// (a key replaced in place or by rename, a key revoked) is seen by the next dial.
func TestKnownHostsReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "known_hosts")
	const host = "127.0.0.1:2222"
	old, replaced := newPublic(t), newPublic(t)
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	knownKey := func() gossh.PublicKey {
		t.Helper()
		h, err := newHostKeys("t", host, []string{path}, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(h.known) != 1 {
			t.Fatalf("%d keys on record for %s", len(h.known), host)
		}
		return h.known[0].Key
	}
	write(knownhosts.Line([]string{host}, old) + "\n")
	if k := knownKey(); string(k.Marshal()) != string(old.Marshal()) {
		t.Fatal("first load: not the key written")
	}
	a, err := loadKnownHosts([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := loadKnownHosts([]string{path}); b != a {
		t.Error("unchanged files were parsed again")
	}

	// The same size, rewritten in place a moment later.
	time.Sleep(10 * time.Millisecond)
	write(knownhosts.Line([]string{host}, replaced) + "\n")
	if k := knownKey(); string(k.Marshal()) != string(replaced.Marshal()) {
		t.Error("a key replaced in place was not seen")
	}

	// Replaced by rename, as hosts add --replace writes it.
	tmp := filepath.Join(dir, "tmp")
	if err := os.WriteFile(tmp, []byte(knownhosts.Line([]string{host}, old)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if k := knownKey(); string(k.Marshal()) != string(old.Marshal()) {
		t.Error("a file replaced by rename was not seen")
	}

	// Revoked.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("@revoked * " + string(gossh.MarshalAuthorizedKey(old)))
	f.Close()
	h, err := newHostKeys("t", host, []string{path}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if !h.revoked[string(old.Marshal())] {
		t.Error("a key revoked after the first load is not revoked")
	}
}
