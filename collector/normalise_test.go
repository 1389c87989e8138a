package collector

import (
	"bytes"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const fixtures = "../testdata/collector"

// golden compares got with testdata/collector/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join(fixtures, "golden", name)
	testutil.Golden(t, p, got)
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNormaliseGolden(t *testing.T) {
	for _, tc := range []struct{ fixture, normaliser string }{
		{"iptables-save.txt", "iptables-save"},
		{"iptables-save-c.txt", "iptables-save"},
		{"iptables-legacy-save.txt", "iptables-save"},
		{"ip6tables-save.txt", "iptables-save"},
		{"nft-list-ruleset.txt", "nft"},
		{"nft-s-list-ruleset.txt", "nft"},
		{"ss-tulnp.txt", "ss"},
		{"ss-tuln-header.txt", "ss"},
		{"sysctl-a.txt", "sysctl"},
		{"systemctl-list-unit-files.txt", "systemctl-unit-files"},
		{"systemctl-list-units.txt", "systemctl-units"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			got := normalisers[tc.normaliser](fixture(t, tc.fixture))
			golden(t, strings.TrimSuffix(tc.fixture, ".txt")+"."+tc.normaliser, got)
		})
	}
}

func TestNormaliseProperties(t *testing.T) {
	ipt := fixture(t, "iptables-legacy-save.txt")
	out := string(NormaliseIptablesSave(ipt))
	if strings.Contains(out, "# Generated") || strings.Contains(out, "# Completed") {
		t.Error("iptables-save: volatile comment kept")
	}
	if regexp.MustCompile(`\[[1-9]\d*:\d+\]`).MatchString(out) {
		t.Error("iptables-save: a non-zero counter kept")
	}
	// Rule order is the ruleset's meaning: it must survive unchanged.
	rules := func(s string) (r []string) {
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "-A ") {
				r = append(r, l)
			}
		}
		return r
	}
	if got, want := rules(out), rules(string(ipt)); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("iptables-save: rules reordered or changed:\n%v\nwant\n%v", got, want)
	}
	ss := string(NormaliseSS(fixture(t, "ss-tulnp.txt")))
	if strings.Contains(ss, "pid=") || strings.Contains(ss, "fd=") {
		t.Errorf("ss: pids kept:\n%s", ss)
	}
	if !strings.Contains(ss, `tcp LISTEN 127.0.0.1:8080 0.0.0.0:* users:(("python3"))`) {
		t.Errorf("ss: unexpected form:\n%s", ss)
	}
	sys := string(NormaliseSysctl(fixture(t, "sysctl-a.txt")))
	for _, k := range []string{"kernel.random.entropy_avail", "fs.inode-nr", "fs.file-nr", "kernel.ns_last_pid"} {
		if strings.Contains(sys, k+" =") {
			t.Errorf("sysctl: volatile %s kept", k)
		}
	}
	if !strings.Contains(sys, "net.ipv4.ip_forward = ") {
		t.Error("sysctl: a stable key was dropped")
	}
}

func TestSourceApplyKeepsNoFinalNewline(t *testing.T) {
	s := Source{Name: "x", Files: []string{"/x"}, Drop: []string{`^#`}}
	if err := s.compile(); err != nil {
		t.Fatal(err)
	}
	if got := string(s.apply([]byte("# c\na\nb"))); got != "a\nb" {
		t.Errorf("got %q", got)
	}
	bin := []byte("#\x00binary")
	if got := s.apply(bin); !bytes.Equal(got, bin) {
		t.Errorf("binary content was rewritten: %q", got)
	}
}

func FuzzNormalise(f *testing.F) {
	for _, n := range []string{"iptables-save.txt", "iptables-legacy-save.txt", "nft-list-ruleset.txt", "ss-tulnp.txt", "systemctl-list-units.txt", "systemctl-list-unit-files.txt"} {
		b, err := os.ReadFile(filepath.Join(fixtures, n))
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a = b\n\x00\n:INPUT ACCEPT [1:2]\n[3:4] -A X"))
	f.Fuzz(func(t *testing.T, in []byte) {
		for name, n := range normalisers {
			out := n(bytes.Clone(in))
			if len(out) > 0 && out[len(out)-1] != '\n' {
				t.Fatalf("%s: output does not end in a newline: %q", name, out)
			}
			switch name {
			case "ss", "systemctl-units":
				// These reduce columns; a second pass may reduce again on odd input.
			default:
				if again := n(bytes.Clone(out)); !bytes.Equal(again, out) {
					t.Fatalf("%s is not idempotent:\n%q\n%q", name, out, again)
				}
			}
		}
	})
}

// collapseSpace is strings.Fields joined with single spaces, whatever the whitespace.
func TestCollapseSpace(t *testing.T) {
	for _, v := range []string{"", " ", "1", " 1 ", "1 2", "1  2", "1\t2", " 4096\t16384 4194304 ", "a\u00a0b", "a\u2003 b", "é  x", "x\n", "\r1 2\v"} {
		if got, want := collapseSpace(v), strings.Join(strings.Fields(v), " "); got != want {
			t.Errorf("collapseSpace(%q) = %q, want %q", v, got, want)
		}
	}
}

func FuzzCollapseSpace(f *testing.F) {
	f.Add(" 4096\t16384  4194304 ")
	f.Fuzz(func(t *testing.T, v string) {
		if got, want := collapseSpace(v), strings.Join(strings.Fields(v), " "); got != want {
			t.Fatalf("collapseSpace(%q) = %q, want %q", v, got, want)
		}
	})
}
