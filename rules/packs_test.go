package rules

import (
	"context"
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

func TestShippedPacksLoad(t *testing.T) {
	names, err := fs.Glob(Packs(), "*.toml")
	if err != nil || len(names) != 4 {
		t.Fatalf("packs: %v %v", names, err)
	}
	minimum := map[string]int{"sshd.toml": 15, "firewall.toml": 6, "legacy-services.toml": 10, "patches.toml": 8}
	for _, n := range names {
		s, err := LoadFS(Packs(), n)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if s.Len() < minimum[n] {
			t.Errorf("%s has %d rules, want at least %d", n, s.Len(), minimum[n])
		}
	}
	s, err := Shipped() // all together: IDs unique across packs
	if err != nil {
		t.Fatal(err)
	}
	annexA := regexp.MustCompile(`^ISO27001:2022 A\.[5-8]\.[0-9]+$`)
	advisory := regexp.MustCompile(`\b(DSA-\d{4}-\d|DLA-\d{4}-\d|USN-\d{4}-\d)\b`)
	for _, r := range s.Rules() {
		iso := false
		for _, c := range r.Controls {
			iso = iso || annexA.MatchString(c)
		}
		if !iso {
			t.Errorf("%s names no ISO 27001:2022 Annex A control: %v", r.ID, r.Controls)
		}
		if strings.HasPrefix(r.ID, "patch-") {
			if len(r.OS) == 0 || !advisory.MatchString(r.Description) {
				t.Errorf("%s: a patch rule must be gated by os and name its advisory (os %v, description %q)", r.ID, r.OS, r.Description)
			}
		}
	}
}

// TestShippedPacksOverFixtures evaluates every shipped rule over a hardened and a weak
// Debian 12 snapshot, and the patch rules over an unpatched Ubuntu 24.04 one.
func TestShippedPacksOverFixtures(t *testing.T) {
	s, err := Shipped()
	if err != nil {
		t.Fatal(err)
	}
	otherOS := []string{"patch-cve-2024-6387-ubuntu2404", "patch-cve-2024-6387-ubuntu2204", "patch-cve-2023-4911-ubuntu2204",
		"patch-cve-2021-3156-debian10", "patch-cve-2021-3156-ubuntu2004", "patch-cve-2021-4034-debian11", "patch-cve-2021-4034-ubuntu2004"}
	for _, tc := range []struct {
		host     string
		only     string // rule ID prefix evaluated; empty for all
		fallback Outcome
		except   map[Outcome][]string
	}{
		{"web-01", "", Pass, map[Outcome][]string{Skip: otherOS}},
		{"legacy-01", "", Fail, map[Outcome][]string{
			Skip: otherOS,
			Pass: {
				"fw-ip6tables-no-accept-all", // no ip6tables table: nothing to accept everything
				"legacy-unit-telnet", "legacy-unit-openbsd-inetd", "legacy-unit-xinetd", "legacy-unit-rsh", "legacy-unit-rlogin",
				"legacy-unit-rexec", "legacy-unit-tftp", "legacy-unit-proftpd", "legacy-unit-ypserv",
				"legacy-package-telnetd", "legacy-package-xinetd",
				"patch-cve-2024-3094-liblzma5", "patch-cve-2024-3094-xz-utils", "patch-cve-2023-48795-debian12",
				"sshd-permit-empty-passwords", "sshd-client-alive-count-max", "sshd-ignore-rhosts", "sshd-hostbased-authentication",
				"sshd-gssapi-authentication", "sshd-max-sessions", "sshd-log-level", "sshd-use-pam",
			},
		}},
		{"ubuntu-noble", "patch-", Skip, map[Outcome][]string{
			Fail: {"patch-cve-2024-6387-ubuntu2404"},
			Pass: {"patch-cve-2024-3094-liblzma5", "patch-cve-2024-3094-xz-utils"},
		}},
	} {
		t.Run(tc.host, func(t *testing.T) {
			want := map[string]Outcome{}
			for o, ids := range tc.except {
				for _, id := range ids {
					if _, ok := s.Rule(id); !ok {
						t.Fatalf("no shipped rule %s", id)
					}
					want[id] = o
				}
			}
			counts := map[Outcome]int{}
			for _, r := range s.Evaluate(context.Background(), loadHost(t, tc.host), now) {
				if !strings.HasPrefix(r.Rule, tc.only) {
					continue
				}
				w, ok := want[r.Rule]
				if !ok {
					w = tc.fallback
				}
				counts[r.Outcome]++
				if r.Outcome != w {
					t.Errorf("%s: %s (%s), want %s", r.Rule, r.Outcome, r.Message, w)
				}
				if r.Outcome == Error {
					t.Errorf("%s erred over a complete snapshot: %s", r.Rule, r.Message)
				}
			}
			t.Logf("%s: %v", tc.host, counts)
		})
	}
}
