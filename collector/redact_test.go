package collector

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/internal/testutil"
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
	os.Chmod(p, 0o644)
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
	// Every redaction fixture, so the fuzzer starts from each format.
	fx := testutil.LoadRedactFixtures(f)
	for _, n := range fx.Files() {
		if b, err := os.ReadFile(filepath.Join(fx.Dir, n)); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	r := testRedactor(f, "k")
	// Every file format, with entropy on and off, and as a device profile reads keys.
	var rs []*Redactor
	for _, f := range RedactFormats {
		for _, opt := range []int{0, 1, 2} {
			c := *r
			c.format, c.entropy, c.separated = f, opt == 1, opt == 2
			rs = append(rs, &c)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, r := range rs {
			out := r.Redact(in, nil)
			if again := r.Redact(out, nil); !bytes.Equal(again, out) {
				t.Fatalf("format %q entropy %v device %v: not idempotent:\n%q\n%q", r.format, r.entropy, r.separated, out, again)
			}
		}
		if _, err := r.Check("/etc/x.conf", in, nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestIsSecretKey(t *testing.T) {
	secret := []string{"password", "PASSWORD", "db_password", "DB_PASSWORD", "passwd", "pass", "SMTP_PASS", "pwd",
		"rootpw", "bindpw", "passphrase", "wpa_passphrase", "secret", "client_secret", "clientSecret",
		"token", "auth_token", "_authToken", "access-token", "api_key", "apiKey", "APIKEY", "x-api-key",
		"psk", "pre-shared-key", "community", "rocommunity", "auth", "credential", "credentials",
		"private_key", "PrivateKey", "requirepass", "masterauth", "aws_secret_access_key",
		"aws_access_key_id", "spring.datasource.password", "AuthLDAPBindPassword", "passwordHash",
		"client-key-data", "net.ipv4.tcp_fastopen_key", "secretkey", "master_password"}
	plain := []string{"PasswordAuthentication", "passwordauthentication", "PermitEmptyPasswords",
		"password_min_length", "PASS_MAX_DAYS", "KbdInteractiveAuthentication", "PubkeyAuthentication",
		"AuthorizedKeysFile", "HostKey", "hostkeyalgorithms", "maxauthtries", "authenticationmethods",
		"ssl_certificate_key", "auth_basic", "auth_basic_user_file", "AuthType", "AuthName",
		"AuthLDAPBindDN", "password_file", "keyfile", "token_url", "secret_name", "key_mgmt",
		"validate_password.length", "default_authentication_plugin", "PrivateTmp", "public-key",
		"author", "keyboard", "bypass", "username", "certificate-authority-data", "rekeylimit",
		"kerberosorlocalpasswd", "gssapicleanupcredentials", "name", "value"}
	for _, k := range secret {
		if !IsSecretKey(k) {
			t.Errorf("IsSecretKey(%q) = false", k)
		}
	}
	for _, k := range plain {
		if IsSecretKey(k) {
			t.Errorf("IsSecretKey(%q) = true", k)
		}
	}
}

func TestRedactArgv(t *testing.T) {
	r := testRedactor(t, "k")
	ph := func(s string) string { return r.Placeholder([]byte(s)) }
	for _, c := range []struct{ in, want []string }{
		{[]string{"mysql", "-uroot", "-pS3cret", "-h", "db"}, []string{"mysql", "-uroot", "-p" + ph("S3cret"), "-h", "db"}},
		{[]string{"snmpwalk", "-v2c", "-c", "Comm1", "10.0.0.1"}, []string{"snmpwalk", "-v2c", "-c", ph("Comm1"), "10.0.0.1"}},
		{[]string{"app", "--password", "pw1", "--token=tk1", "--password-file", "/etc/pw", "--verbose"},
			[]string{"app", "--password", ph("pw1"), "--token=" + ph("tk1"), "--password-file", "/etc/pw", "--verbose"}},
		{[]string{"curl", "-H", "Authorization: Bearer abc.def", "https://u:pw2@h/"},
			[]string{"curl", "-H", "Authorization: Bearer " + ph("abc.def"), "https://u:" + ph("pw2") + "@h/"}},
		{[]string{"ss", "-H", "-tulnp"}, []string{"ss", "-H", "-tulnp"}},
	} {
		got := r.RedactArgv(c.in)
		if strings.Join(got, "\x00") != strings.Join(c.want, "\x00") {
			t.Errorf("RedactArgv(%q) = %q, want %q", c.in, got, c.want)
		}
		if again := r.RedactArgv(got); strings.Join(again, "\x00") != strings.Join(got, "\x00") {
			t.Errorf("not idempotent: %q then %q", got, again)
		}
	}
}

// A long line costs what many short ones do: minified JSON of 4 MB on one line, with a secret
// every 100 bytes, redacts in linear time.
func TestRedactLongLine(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := 0; b.Len() < 4<<20; i++ {
		fmt.Fprintf(&b, `{"name":"DB_PASSWORD","value":"v%08d","password":"p%08d","url":"https://u:w%08d@h/"},`, i, i, i)
	}
	b.WriteString("{}]")
	r := testRedactor(t, "k")
	start := time.Now()
	out := r.Redact([]byte(b.String()), nil)
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("4 MB on one line took %s", d)
	}
	for _, s := range []string{`"v00000007"`, `"p00000007"`, ":w00000007@"} {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("%s survived", s)
		}
	}
}
