package collector

import (
	"bytes"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Secrets are the secret values in testdata/collector/secrets.txt: none may survive redaction.
var Secrets = []string{
	"s3cr3tCommunity", "RwC0mmunity!", "n0tPublicAtAll", "CorrectHorseBatteryStaple",
	"0KXYlqgD5p9hV3xQn3zq0a2uJ8wqOZ1cYkqjWm3NQfJx9Vt8fH2bR0sY6kL1pA7dE4gU9iN2oM5rT3vB8xC1z",
	"hJ3kL9mN2pQ5rS8tU1vW4xY7zA0bC3dE6fG9hI2jK5l", "Ipsec-PreShared-Key-9000", "hunter2-but-longer",
	"AKIAIOSFODNN7EXAMPLE", "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=",
	"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
	"MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw",
}

func testRedactor(t testing.TB, key string) *Redactor {
	r, err := NewRedactor([]byte(strings.Repeat(key, 32)[:32]))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRedactGolden(t *testing.T) {
	in := fixture(t, "secrets.txt")
	out := testRedactor(t, "k").Redact(in, nil)
	for _, s := range Secrets {
		if !bytes.Contains(in, []byte(s)) {
			t.Fatalf("fixture lacks %q", s)
		}
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("secret %q survived redaction", s)
		}
	}
	for _, keep := range []string{"PasswordAuthentication no", "PermitEmptyPasswords no", "passwordauthentication yes", `ssid="corp"`, "-----BEGIN RSA PRIVATE KEY-----"} {
		if !bytes.Contains(out, []byte(keep)) {
			t.Errorf("redaction removed %q, which is not a secret", keep)
		}
	}
	golden(t, "secrets.redacted", out)
}

func TestRedactKeepsChangeVisible(t *testing.T) {
	r := testRedactor(t, "k")
	a := r.Redact([]byte("psk=first-secret\n"), nil)
	b := r.Redact([]byte("psk=first-secret\n"), nil)
	c := r.Redact([]byte("psk=rotated-secret\n"), nil)
	if !bytes.Equal(a, b) {
		t.Error("same secret, different placeholders")
	}
	if bytes.Equal(a, c) {
		t.Error("rotated secret looks unchanged")
	}
	if other := testRedactor(t, "z").Redact([]byte("psk=first-secret\n"), nil); bytes.Equal(a, other) {
		t.Error("placeholder does not depend on the key")
	}
	// Redacting redacted text changes nothing.
	if again := r.Redact(a, nil); !bytes.Equal(again, a) {
		t.Errorf("not idempotent: %q then %q", a, again)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "store.key")
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadOrCreateKey(p)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) {
			t.Fatal("concurrent first uses created different keys")
		}
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, err %v", st.Mode(), err)
	}
	testutil.Must(t, os.Chmod(p, 0o644))
	if _, err := LoadOrCreateKey(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key accepted: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func FuzzRedact(f *testing.F) {
	f.Add([]byte("psk=abc\n-----BEGIN EC PRIVATE KEY-----\nxx\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte("root:$6$salt$hashhashhash:1\n"))
	r := testRedactor(f, "k")
	f.Fuzz(func(t *testing.T, in []byte) {
		out := r.Redact(in, nil)
		if again := r.Redact(out, nil); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n%q\n%q", out, again)
		}
	})
}
