package collector

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// Every fixture file, redacted as a files source reads it: no secret left, every known
// non-secret line as captured.
func TestRedactFixtures(t *testing.T) {
	fx := testutil.LoadRedactFixtures(t)
	r := testRedactor(t, "k")
	src := &Source{Name: "f", Files: []string{"/x"}}
	if err := src.compile(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range fx.Files() {
		in, err := os.ReadFile(filepath.Join(fx.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := src.finish(r.forSource(src, "/etc/"+name), in)
		fx.CheckStored(t, name, in, out)
		if again, _ := src.finish(r.forSource(src, "/etc/"+name), out); string(again) != string(out) {
			t.Errorf("%s: redaction is not idempotent", name)
		}
		n += len(fx.Secrets[name])
		if testing.Verbose() {
			t.Logf("%s:\n%s", name, out)
		}
	}
	if n < 60 {
		t.Fatalf("only %d fixture secrets", n)
	}
}

// The linux profile's outputs hold no secret, and redaction leaves every line of them as
// normalisation alone would: names such as sysctl's kernel.keys.maxkeys, sshd's
// passwordauthentication and a package called passwd are not settings of secrets. The one
// exception is a sysctl holding a real key.
func TestLinuxOutputsReadAsCaptured(t *testing.T) {
	b, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	p := b["linux"]
	r := testRedactor(t, "k")
	pkgs := "passwd\t1:4.13+dfsg1-1+deb12u1\tamd64\tii\nlibsecret-1-0\t0.20.5-3\tamd64\tii\n" +
		"gnome-keyring\t42.1-1+b2\tamd64\tii\npython3-secretstorage\t3.3.3-1\tall\tii\n" +
		"libpam-pwquality\t1.4.5-1+b1\tamd64\tii\nssh-askpass\t1:1.2.4.1-13\tamd64\tii\nkeyutils\t1.6.3-2\tamd64\tii\n"
	cases := []struct{ source, fixture, content string }{
		{"sshd/effective", "sshd-T.txt", ""},
		{"sysctl/all", "sysctl-a.txt", ""},
		{"net/listening", "ss-tulnp.txt", ""},
		{"services/units", "systemctl-list-unit-files.txt", ""},
		{"services/active", "systemctl-list-units.txt", ""},
		{"firewall/iptables", "iptables-save.txt", ""},
		{"firewall/nftables", "nft-s-list-ruleset.txt", ""},
		{"packages/installed", "", pkgs},
	}
	for _, c := range cases {
		var s *Source
		for i := range p.Sources {
			if p.Sources[i].Name == c.source {
				s = &p.Sources[i]
			}
		}
		in := []byte(c.content)
		if c.fixture != "" {
			in = fixture(t, c.fixture)
		}
		got, _ := s.finish(r, in)
		want := s.apply(in)
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		if len(gl) != len(wl) {
			t.Fatalf("%s: %d lines, want %d", c.source, len(gl), len(wl))
		}
		for i := range gl {
			if gl[i] != wl[i] && !strings.HasPrefix(wl[i], "net.ipv4.tcp_fastopen_key = ") {
				t.Errorf("%s: %q became %q", c.source, wl[i], gl[i])
			}
		}
	}
}
