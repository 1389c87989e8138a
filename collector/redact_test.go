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

// One line of each form: «» marks the secret; lines without marks must stay as they are.
func TestRedactForms(t *testing.T) {
	cases := []string{
		"password = «hunter2 with spaces»",
		"PASSWORD=«x9Kd2»",
		"export DB_PASS='«q1w2e3»'",
		`  "password": "«p@ss\"word»",`,
		`{"user": "a", "token": "«t0k»", "n": 1}`,
		"  secret: «abc123»",
		"requirepass «Fo0bar»",
		"#requirepass «Fo0bar»",
		"# requirepass foobared",
		"machine h login u password «pw1»",
		"<password>«pw2»</password>",
		`<user name="a" password="«pw3»" roles="x"/>`,
		`<add key="ApiKey" value="«k3y»" />`,
		`<add key="Environment" value="Production" />`,
		"Server=db;Uid=sa;Pwd=«pw4»;",
		"url = postgres://app:«pw5»@db:5432/app",
		"https://«0123456789abcdef0123456789abcdef»@o1.ingest.sentry.io/42",
		"ssh://git@github.com/org/repo.git",
		"Authorization: Bearer «eyJ»",
		"Authorization: Basic «dXNlcjpwdw==»",
		`    "Authorization": "Token «abc»",`,
		"proxy_set_header Authorization \"Basic «YTpi»\";",
		"curl -H 'X-Api-Key: «k1»' https://h/",
		"password 7 «0822455D0A16»",
		"rocommunity «c0mm» 10.0.0.0/8",
		"com2sec -Cn ctx sec 10.0.0.0/8 «c0mm2»",
		"trap2sink nms «c0mm3» 162",
		"createUser u SHA «authpass1» AES «privpass1»",
		"authCommunity log,execute «c0mm4»",
		"key: |",
		"PasswordAuthentication no",
		"passwordauthentication yes",
		"PASS_MAX_DAYS 99999",
		"HostKey /etc/ssh/ssh_host_ed25519_key",
		"auth required pam_unix.so",
		"password [success=1 default=ignore] pam_unix.so obscure yescrypt",
		"auth SHA256",
		"tls-auth ta.key 0",
		"password = ${DB_PASSWORD}",
		"password: {{ .Values.password }}",
		"ssl_certificate_key /etc/ssl/private/site.key;",
		"token_url = https://sso/token",
		"password_min_length = 12",
		"The author of this file passed the key to a colleague.",
		"pass in quick on em0 proto tcp to port 22",
		"AWS_ACCESS_KEY_ID=«AKIAIOSFODNN7EXAMPLE»",
		"see «AKIAIOSFODNN7EXAMPLE» in the log",
		"GH «ghp_0123456789abcdefghijABCDEFGHIJ012345» leaked",
		"«sk_live_0123456789abcdefABCDEF» and pk_live_0123456789abcdefABCDEF",
		"«xoxb-1234567890-ABCDEFGHIJKL»",
		"«glpat-0123456789abcdefABCD»",
		"https://hooks.slack.com/services/«T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX»",
		"user:«$apr1$abcdefgh$0123456789abcdefghijkl»",
		"root:«$6$saltsalt$0123456789abcdefghijklmnop»:19000:0:99999:7:::",
		"userPassword: {SSHA}«MTIzNDU2Nzg5MGFiY2RlZg==»",
		"the 'password' field is required",
		"password = «$uperman»",
		"private_key = $dir/private/cakey.pem",
		"HandlePowerKey=poweroff",
		"#password_encryption = scram-sha-256",
		"*translations: #override <Key>Escape: quit()",
		"<Password>«pw7»</Password>",
		`api_token = """«line one\nline two»"""`,
		"define( 'DB_PASSWORD', '«wp-pw1»' );",
		"define('AUTH_KEY', '«wp-k3y»');",
		`os.environ["API_TOKEN"] = "«t0k2»"`,
		`  <entry key="db.password">«pw6»</entry>`,
		`  <entry key="db.user">shop</entry>`,
		"CREATE USER 'app'@'%' IDENTIFIED BY '«sq1pw»';",
		"      - POSTGRES_PASSWORD=«pg-pw»",
		`Environment="DB_PASSWORD=«sd-pw»"`,
		"//192.168.1.10/share /mnt/s cifs username=u,password=«cifs-pw»,vers=3.0 0 0",
		"jdbc:mysql://db/app?user=u&password=«jdbc-pw»&ssl=true",
		`  "private_key": "«-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n»",`,
		"private_key = -----BEGIN RSA PRIVATE KEY-----",
		"PRIVATE_KEY='«abc»'",
	}
	r := testRedactor(t, "k")
	for _, c := range cases {
		in, want := c, c
		for {
			i := strings.Index(in, "«")
			if i < 0 {
				break
			}
			j := strings.Index(in, "»")
			secret := in[i+len("«") : j]
			in = in[:i] + secret + in[j+len("»"):]
			k, l := strings.Index(want, "«"), strings.Index(want, "»")
			want = want[:k] + r.Placeholder([]byte(secret)) + want[l+len("»"):]
		}
		if got := string(r.Redact([]byte(in+"\n"), nil)); got != want+"\n" {
			t.Errorf("\n  in:   %s\n  got:  %s  want: %s", in, got, want)
		}
	}
}

func TestRedactMultiLineString(t *testing.T) {
	r := testRedactor(t, "k")
	in := "[app]\napi_token = \"\"\"\nTqL8wR2tV6yB0c\nhJ3kL9mN2pQ5rS\n\"\"\"\nname = \"x\"\n"
	out := string(r.Redact([]byte(in), nil))
	if strings.Contains(out, "TqL8wR2tV6yB0c") || strings.Contains(out, "hJ3kL9mN2pQ5rS") || !strings.Contains(out, "name = \"x\"\n") {
		t.Errorf("got %q", out)
	}
}
