package rules

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzArtifacts feeds arbitrary content to every artifact parser, and evaluates the shipped
// packs over facts where every artifact holds that content: nothing may panic.
func FuzzArtifacts(f *testing.F) {
	for _, host := range []string{"web-01", "legacy-01"} {
		for _, name := range []string{"sshd-effective.txt", "iptables.txt", "nftables.txt", "listening.txt", "units.txt", "active.txt", "os-release.txt"} {
			if data, err := os.ReadFile(filepath.Join("..", "testdata", "rules", "hosts", host, name)); err == nil {
				f.Add(string(data))
			}
		}
	}
	f.Add(nativeNft)
	f.Add("table t { {\n x\n}\n")
	f.Add(":\n*filter\n-A\n")
	f.Add("xz-utils\t5.6.1-1\n\t\t\t\n")
	shipped, err := Shipped()
	if err != nil {
		f.Fatal(err)
	}
	names := []string{"sshd/effective", "firewall/iptables", "firewall/ip6tables", "firewall/nftables", "net/listening",
		"services/units", "services/active", "packages/installed", "sysctl/all", "system/os-release",
		"sshd/config/etc/ssh/sshd_config"}
	f.Fuzz(func(t *testing.T, content string) {
		b := []byte(content)
		parseSSHD(b)
		parseIptables(b)
		parseNft(b)
		parseSockets(b)
		parsePackages(b)
		parseSysctl(b)
		parseUnitFiles(b)
		parseUnits(b)
		parseOSRelease(b)
		facts := NewMemFacts("t")
		for _, n := range names {
			facts.Artifacts[n] = Artifact{Name: n, Content: b, Command: []string{"dpkg-query"}, Owner: "root", Mode: 0o644}
		}
		facts.Artifacts["system/os-release"] = Artifact{Name: "system/os-release", Content: []byte("ID=debian\nVERSION_ID=12\n")}
		for _, r := range shipped.Evaluate(context.Background(), facts, now) {
			if strings.HasPrefix(r.Message, "probe "+r.Kind+" failed:") {
				t.Fatalf("%s panicked: %s", r.Rule, r.Message)
			}
		}
	})
}
