package ssh

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func newPublic(t *testing.T) gossh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func authorized(k gossh.PublicKey) string {
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k)))
}

// Enrolment keeps one trusted key of a type for a host: a second one is refused, and --replace
// removes the old entries (only the host's part of a shared line) and nothing else.
func TestEnrolKeepsOneKeyPerType(t *testing.T) {
	const host = "10.0.0.5:2222"
	oldKey, newKey, other := newPublic(t), newPublic(t), newPublic(t)
	ecKey := func() gossh.PublicKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		p, err := gossh.NewPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}()
	hashed := knownhosts.HashHostname(knownhosts.Normalize(host))
	for _, tt := range []struct {
		name     string
		file     []string
		replace  bool
		conflict bool // a *KnownHostConflict
		shared   bool
		keep     []string // lines that must stay as they are
		gone     []string // lines that must go
		want     string   // a line that must be there afterwards
	}{
		{name: "plain entry refused", file: []string{"[10.0.0.5]:2222 " + authorized(oldKey)}, conflict: true},
		{name: "hashed entry refused", file: []string{hashed + " " + authorized(oldKey)}, conflict: true},
		{name: "plain entry replaced", file: []string{"# mine", "[10.0.0.5]:2222 " + authorized(oldKey) + " old", "[other]:2222 " + authorized(other)},
			replace: true, keep: []string{"# mine", "[other]:2222 " + authorized(other)}, gone: []string{"[10.0.0.5]:2222 " + authorized(oldKey) + " old"}},
		{name: "hashed entry replaced", file: []string{hashed + " " + authorized(oldKey)}, replace: true, gone: []string{hashed + " " + authorized(oldKey)}},
		{name: "shared line loses the host only", file: []string{"web,[10.0.0.5]:2222,db " + authorized(oldKey) + " c"}, replace: true,
			gone: []string{"web,[10.0.0.5]:2222,db " + authorized(oldKey) + " c"}, want: "web,db " + authorized(oldKey) + " c"},
		{name: "wildcard line refused even with replace", file: []string{"[10.0.0.*]:2222 " + authorized(oldKey)}, replace: true, conflict: true, shared: true},
		{name: "other type kept", file: []string{"[10.0.0.5]:2222 " + authorized(ecKey)}, keep: []string{"[10.0.0.5]:2222 " + authorized(ecKey)}},
		{name: "markers kept", file: []string{"@revoked [10.0.0.5]:2222 " + authorized(other), "@cert-authority * " + authorized(other)}, replace: true,
			keep: []string{"@revoked [10.0.0.5]:2222 " + authorized(other), "@cert-authority * " + authorized(other)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "known_hosts")
			before := strings.Join(tt.file, "\n") + "\n"
			if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
				t.Fatal(err)
			}
			var err error
			if tt.replace {
				_, err = ReplaceKnownHost(path, "root@"+host, newKey)
			} else {
				_, err = AddKnownHost(path, host, newKey)
			}
			var c *KnownHostConflict
			if errors.As(err, &c) != tt.conflict || (c != nil && c.Shared != tt.shared) {
				t.Fatalf("err = %v (%#v), want conflict %v shared %v", err, c, tt.conflict, tt.shared)
			}
			b, _ := os.ReadFile(path)
			got := string(b)
			if tt.conflict {
				if got != before {
					t.Fatalf("a refused enrolment changed the file:\n%s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			has := func(l string) bool {
				for _, x := range lines {
					if x == l {
						return true
					}
				}
				return false
			}
			for _, l := range tt.keep {
				if !has(l) {
					t.Errorf("line %q was lost:\n%s", l, got)
				}
			}
			for _, l := range tt.gone {
				if has(l) {
					t.Errorf("line %q is still there:\n%s", l, got)
				}
			}
			if tt.want != "" && !has(tt.want) {
				t.Errorf("no line %q:\n%s", tt.want, got)
			}
			// The new key is trusted for the host, and no other key of its type is.
			h, err := newHostKeys("t", host, []string{path}, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			var same int
			for _, k := range h.known {
				if k.Key.Type() == newKey.Type() {
					same++
					if string(k.Key.Marshal()) != string(newKey.Marshal()) {
						t.Errorf("still trusted: %s", gossh.FingerprintSHA256(k.Key))
					}
				}
			}
			if same != 1 {
				t.Errorf("%d trusted %s keys for the host, want 1:\n%s", same, newKey.Type(), got)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
				t.Errorf("mode changed to %o", st.Mode().Perm())
			}
		})
	}
}

// The same key again writes nothing.
func TestEnrolSameKeyTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d", "known_hosts")
	k := newPublic(t)
	if added, err := AddKnownHost(path, "h:22", k); err != nil || !added {
		t.Fatalf("first: %v %v", added, err)
	}
	b1, _ := os.ReadFile(path)
	if added, err := AddKnownHost(path, "h:22", k); err != nil || added {
		t.Fatalf("second: %v %v", added, err)
	}
	if b2, _ := os.ReadFile(path); string(b1) != string(b2) {
		t.Errorf("file changed:\n%s\n%s", b1, b2)
	}
}
