package rules

import (
	"github.com/hardtrail/hardtrail/internal/testutil"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A file of waivers for shipped rules loads on top of the shipped packs, whatever the order of
// the sources; a waiver naming no loaded rule, and any other problem, keeps its exact position.
func TestLoadSourcesWaiversOnTopOfPacks(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const waiver = `# Waivers only.

[[waiver]]
rule = "%s"
targets = ["*"]
reason = "host firewall is managed upstream"
approver = "ciso@example.com"
expires = 2099-01-01
`
	good := write("waivers.toml", strings.ReplaceAll(waiver, "%s", "fw-iptables-input-default-drop"))
	typo := write("typo.toml", strings.ReplaceAll(waiver, "%s", "fw-iptables-input-default-dorp"))
	broken := write("broken.toml", "[[waiver]]\nrule = \"fw-iptables-input-default-drop\"\nexpires = 2099-13-01\n")
	empty := write("empty.toml", "# nothing yet\n")

	shipped, err := Shipped()
	if err != nil {
		t.Fatal(err)
	}
	for _, order := range [][]Source{
		{ShippedSource(), {Path: good}, {Path: empty}},
		{{Path: good}, ShippedSource(), {Path: empty}},
	} {
		s, err := LoadSources(order...)
		if err != nil {
			t.Fatal(err)
		}
		if s.Len() != shipped.Len() || len(s.Waivers()) != 1 || s.Digest() == shipped.Digest() {
			t.Errorf("%d rules, %d waivers, digest %s (shipped %s)", s.Len(), len(s.Waivers()), s.Digest(), shipped.Digest())
		}
		files := s.Files()
		if len(files) != len(shipped.Files())+2 || !slices.Contains(files, good) || !slices.Contains(files, empty) || !slices.Contains(files, "packs/sshd.toml") {
			t.Errorf("files: %q", files)
		}
		f := NewMemFacts("web-01")
		for _, r := range s.Evaluate(t.Context(), f, time.Now()) {
			if r.Rule == "fw-iptables-input-default-drop" && (r.Outcome != Waived || r.Waiver.Source != good+":3") {
				t.Errorf("waived rule: %+v", r)
			}
		}
	}
	// Loading the waivers alone names the missing rule, with the hint to load them together.
	if _, err := LoadSources(Source{Path: good}); err == nil || err.Error() != good+`:3:1: waiver for rule "fw-iptables-input-default-drop": waiver.rule: no rule with this ID is loaded (load the waiver together with the rules it waives)` {
		t.Errorf("waivers alone: %v", err)
	}
	_, err = LoadSources(ShippedSource(), Source{Path: typo}, Source{Path: broken})
	want := []string{
		broken + `:3:11: waiver for rule "fw-iptables-input-default-drop": waiver.expires: invalid datetime: "2099-13-01"`,
		typo + `:3:1: waiver for rule "fw-iptables-input-default-dorp": waiver.rule: no rule with this ID is loaded (load the waiver together with the rules it waives)`,
	}
	if err == nil {
		t.Fatal("bad waivers loaded")
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("errors:\n%s", err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("error %d:\n got: %s\nwant: %s", i, got[i], want[i])
		}
	}
}

// Load, LoadFS and Shipped are LoadSources underneath: same rules, same digest, same names.
func TestLoadSourcesMatchesLoad(t *testing.T) {
	a, err := Shipped()
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadFS(Packs())
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest() != b.Digest() || a.Len() != b.Len() {
		t.Errorf("Shipped %s (%d) and LoadFS(Packs()) %s (%d)", a.Digest(), a.Len(), b.Digest(), b.Len())
	}
	if got := a.Files(); len(got) != 4 || got[0] != "packs/firewall.toml" {
		t.Errorf("shipped files %q", got)
	}
	if got := b.Files(); got[0] != "firewall.toml" {
		t.Errorf("LoadFS files %q", got)
	}
	if f := a.Filter(func(*Rule) bool { return false }).Files(); len(f) != 4 {
		t.Errorf("a filtered set forgot its files: %q", f)
	}
	m, err := Merge(a, b.Filter(func(*Rule) bool { return false }))
	if err != nil || len(m.Files()) != 8 {
		t.Errorf("merge: %v, files %q", err, m.Files())
	}
	if _, err := LoadSources(Source{Path: filepath.Join(t.TempDir(), "none")}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing path: %v", err)
	}
	if _, err := LoadSources(Source{Path: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "no rule files (*.toml) in the directory") {
		t.Errorf("empty directory: %v", err)
	}
}

// CheckPack lets a pack's waivers name rules from elsewhere and reports everything else.
func TestCheckPack(t *testing.T) {
	dir := t.TempDir()
	testutil.Must(t, os.WriteFile(filepath.Join(dir, "waivers.toml"), []byte(`[[waiver]]
rule = "fw-iptables-input-default-drop"
targets = ["*"]
reason = "host firewall is managed upstream"
approver = "ciso@example.com"
expires = 2099-01-01
`), 0o644))
	s, foreign, err := CheckPack(Source{Path: dir})
	if err != nil || s.Len() != 0 || len(s.Waivers()) != 0 || foreign != 1 || len(s.Files()) != 1 {
		t.Errorf("waivers for rules elsewhere: %v, %d foreign, %+v", err, foreign, s)
	}
	shipped, _ := Shipped()
	ws := filepath.Join(dir, "waivers.toml")
	s, foreign, err = CheckPack(ShippedSource(), Source{Path: ws})
	if err != nil || foreign != 0 || len(s.Waivers()) != 1 || s.Len() != shipped.Len() {
		t.Errorf("pack with its rules: %v, %d foreign", err, foreign)
	}
	if l, err := LoadSources(ShippedSource(), Source{Path: ws}); err != nil || l.Digest() != s.Digest() {
		t.Errorf("CheckPack and LoadSources disagree on a whole set: %v", err)
	}
	bad := filepath.Join(dir, "bad.toml")
	testutil.Must(t, os.WriteFile(bad, []byte("[[rule]]\nid = \"x\"\ntitle = \"x\"\nseverity = \"severe\"\ncontrols = [\"c\"]\n[rule.port]\nport = 23\nstate = \"closed\"\n"), 0o644))
	_, _, err = CheckPack(Source{Path: dir})
	if err == nil || err.Error() != bad+`:4:1: rule "x": rule.severity: unknown severity "severe" (one of info, low, medium, high, critical)` {
		t.Errorf("bad rule: %v", err)
	}
}
