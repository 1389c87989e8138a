package rules

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// TestLoadInvalid maps each testdata/rules/invalid-*.toml to the exact error it must give.
func TestLoadInvalid(t *testing.T) {
	dir := filepath.Join("..", "testdata", "rules")
	want := map[string]string{
		"invalid-unknown-key.toml":             `FILE:8:1: rule "sshd-root-login": rule.sshd.equal: unknown key (check its spelling and the table it is in)`,
		"invalid-unknown-probe.toml":           `FILE:6:1: rule "telnet-closed": rule.socket: unknown key (a rule has the keys id, title, severity, controls, description, remediation, incidents, targets, os, and one probe table: [rule.command], [rule.file], [rule.firewall], [rule.package], [rule.port], [rule.service], [rule.sshd], [rule.sysctl])`,
		"invalid-wrong-type.toml":              `FILE:16:8: rule "telnet-closed": rule[2].port.port: expected an integer, got a string`,
		"invalid-severity-type.toml":           `FILE:4:12: rule "telnet-closed": rule[1].severity: expected a string, got an integer`,
		"invalid-syntax.toml":                  `FILE:3:33: rule "telnet-closed": rule.title: strings cannot contain newlines`,
		"invalid-missing-title.toml":           `FILE:1:1: rule "telnet-closed": rule.title: missing (every rule needs a title)`,
		"invalid-missing-controls.toml":        `FILE:1:1: rule "telnet-closed": rule.controls: missing (name the controls the rule evidences, such as "ISO27001:2022 A.8.9")`,
		"invalid-missing-probe-field.toml":     "FILE:7:1: rule \"sshd-root-login\": rule.sshd.option: missing (a keyword as `sshd -T` prints it, such as \"permitrootlogin\")",
		"invalid-duplicate-id.toml":            `FILE:10:1: rule "telnet-closed": rule.id: duplicate rule ID (first defined at FILE:1)`,
		"invalid-no-probe.toml":                `FILE:1:1: rule "telnet-closed": rule: no probe table (add exactly one of [rule.command], [rule.file], [rule.firewall], [rule.package], [rule.port], [rule.service], [rule.sshd], [rule.sysctl])`,
		"invalid-two-probes.toml":              `FILE:11:1: rule "telnet-off": rule.service: more than one probe table ([rule.port] and [rule.service]); a rule has exactly one`,
		"invalid-regex.toml":                   "FILE:8:1: rule \"sshd-banner\": rule.sshd.matches: invalid regular expression: error parsing regexp: missing closing ): `^/etc/(issue`",
		"invalid-severity.toml":                `FILE:4:1: rule "telnet-closed": rule.severity: unknown severity "severe" (one of info, low, medium, high, critical)`,
		"invalid-incident.toml":                `FILE:6:1: rule "telnet-closed": rule.incidents: invalid incident ID "2026/17" (a letter, then up to 63 letters, digits, '.', '_' or '-')`,
		"invalid-version.toml":                 `FILE:9:1: rule "openssh-patched": rule.package.min_version: invalid version "1:9.2p1 deb12u3": version string has embedded spaces`,
		"invalid-not-between.toml":             `FILE:8:1: rule "xz-not-backdoored": rule.package.not_between: want two versions [LOW, HIGH], got 1`,
		"invalid-rule-id.toml":                 `FILE:2:1: rule "9-telnet closed": rule.id: invalid rule ID "9-telnet closed" (a letter, then up to 63 letters, digits, '.', '_' or '-')`,
		"invalid-target-glob.toml":             `FILE:6:1: rule "telnet-closed": rule.targets: invalid target glob "web-[0-9": syntax error in pattern`,
		"invalid-os.toml":                      `FILE:6:1: rule "telnet-closed": rule.os: invalid os "Debian 12" (an os-release ID such as "debian", optionally with a VERSION_ID: "ubuntu:24.04")`,
		"invalid-mode.toml":                    `FILE:8:1: rule "sshd-config-mode": rule.file.max_mode: invalid mode "0698" (octal, such as "0644")`,
		"invalid-firewall-chain-and-hook.toml": `FILE:8:1: rule "nft-input-drop": rule.firewall.chain: give either chain (a chain name) or hook (such as "input"), not both or neither`,
		"invalid-waiver-date.toml":             `FILE:15:11: waiver for rule "telnet-closed": waiver[1].expires: invalid date "30.06.2026" (write it as YYYY-MM-DD)`,
		"invalid-many-problems.toml": `FILE:14:12: rule "bad-types": rule[2].severity: expected a string, got an array
FILE:15:12: rule "bad-types": rule[2].controls[2]: expected a string, got an integer
FILE:17:8: rule "bad-types": rule[2].port.port: expected an integer, got a string
FILE:23:1: rule "bad-values": rule.severity: unknown severity "severe" (one of info, low, medium, high, critical)
FILE:27:1: rule "bad-values": rule.sshd.equal: unknown key (check its spelling and the table it is in)
FILE:29:1: rule "no-title": rule.title: missing (every rule needs a title)
FILE:35:10: rule "no-title": rule[4].sysctl.equals: expected a string, a number or a boolean, got an array`,
		"invalid-waiver-missing.toml":      `FILE:10:1: waiver for rule "telnet-closed": waiver.approver: missing (who accepted the risk)`,
		"invalid-waiver-unknown-rule.toml": `FILE:10:1: waiver for rule "telnet-close": waiver.rule: no rule with this ID is loaded (load the waiver together with the rules it waives)`,
	}
	files, err := filepath.Glob(filepath.Join(dir, "invalid-*.toml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid-*.toml in %s: %v", dir, err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		t.Run(base, func(t *testing.T) {
			_, err := Load(f)
			if err == nil {
				t.Fatalf("Load(%s) succeeded", base)
			}
			got := strings.ReplaceAll(err.Error(), f, "FILE")
			w, ok := want[base]
			if !ok {
				t.Fatalf("no expected error for %s; it gives:\n%s", base, got)
			}
			if got != w {
				t.Errorf("Load(%s):\n got: %s\nwant: %s", base, got, w)
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Errorf("error is not a *LoadError: %T", err)
			}
		})
	}
	for name := range want {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("expected file %s is missing", name)
		}
	}
}

const validRules = `# Two rules and a waiver.
[[rule]]
id = "sshd-root-login"
title = "Root cannot log in over SSH"
severity = "high"
controls = ["ISO27001:2022 A.8.5", "CIS Debian Linux 12 v1.1.0 5.1.20"]
incidents = ["INC-2026-0042"]
targets = ["web-*"]
os = ["debian", "ubuntu:24.04"]
description = """
Direct root logins leave no trace of who acted."""
remediation = "Set PermitRootLogin no."

[rule.sshd]
option = "permitrootlogin"
equals = "no"

[[rule]]
id = "telnet-closed"
title = "Telnet is not listening"
severity = "critical"
controls = ["ISO27001:2022 A.8.20"]
[rule.port]
port = 23
state = "closed"

[[waiver]]
rule = "telnet-closed"
targets = ["lab-*"]
reason = "serial console server, isolated VLAN"
approver = "ciso@example.com"
expires = 2026-06-30
`

func TestLoadValid(t *testing.T) {
	s, err := LoadFS(fstest.MapFS{"packs/a.toml": {Data: []byte(validRules)}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || len(s.Waivers()) != 1 {
		t.Fatalf("%d rules, %d waivers", s.Len(), len(s.Waivers()))
	}
	r, ok := s.Rule("sshd-root-login")
	if !ok {
		t.Fatal("rule missing")
	}
	if r.Kind != "sshd" || r.Severity != High || r.Source != "packs/a.toml:2" || r.Description != "Direct root logins leave no trace of who acted." ||
		len(r.Controls) != 2 || r.Incidents[0] != "INC-2026-0042" || r.OS[1] != "ubuntu:24.04" {
		t.Errorf("rule: %+v", r)
	}
	w := s.Waivers()[0]
	if w.ExpiresDate() != "2026-06-30" || w.Source != "packs/a.toml:27" {
		t.Errorf("waiver: %+v", w)
	}
	if !strings.HasPrefix(s.Digest(), "sha256:") || len(s.Digest()) != 71 {
		t.Errorf("digest %q", s.Digest())
	}
}

func TestLoadPathsAndDirs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("packs/a.toml", validRules)
	write("packs/sub/b.toml", strings.NewReplacer(`"sshd-root-login"`, `"b-1"`, `"telnet-closed"`, `"b-2"`).Replace(validRules))
	write("packs/.git/x.toml", "garbage")
	write("packs/README.md", "not a rule file")
	s, err := Load(filepath.Join(dir, "packs"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range s.Rules() {
		ids = append(ids, r.ID)
	}
	if got := strings.Join(ids, ","); got != "sshd-root-login,telnet-closed,b-1,b-2" {
		t.Errorf("rules in order %s", got)
	}
	if !strings.HasSuffix(s.Rules()[2].Source, filepath.Join("packs", "sub", "b.toml")+":2") {
		t.Errorf("source %s", s.Rules()[2].Source)
	}

	// The same IDs in two files.
	dup := write("other/c.toml", validRules)
	_, err = Load(filepath.Join(dir, "packs", "a.toml"), dup)
	want := dup + `:2:1: rule "sshd-root-login": rule.id: duplicate rule ID (first defined at ` + filepath.Join(dir, "packs", "a.toml") + `:2)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("duplicate across files: %v\nwant %s", err, want)
	}

	if _, err := Load(filepath.Join(dir, "nothing")); err == nil {
		t.Error("missing path loaded")
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(empty); err == nil || !strings.Contains(err.Error(), "no rule files") {
		t.Errorf("empty dir: %v", err)
	}
}

// TestLoadReportsEveryProblem checks that one load names all problems, each as a LoadError.
func TestLoadReportsEveryProblem(t *testing.T) {
	src := `[[rule]]
id = "a"
title = "A"
severity = "urgent"
controls = ["x"]
[rule.port]
port = 99999
state = "closed"

[[rule]]
id = "b"
severity = "low"
controls = ["x"]
[rule.sysctl]
key = "net.ipv4.ip_forward"
equals = 0
`
	_, err := LoadFS(fstest.MapFS{"f.toml": {Data: []byte(src)}})
	if err == nil {
		t.Fatal("loaded")
	}
	want := []string{
		`f.toml:4:1: rule "a": rule.severity: unknown severity "urgent" (one of info, low, medium, high, critical)`,
		`f.toml:7:1: rule "a": rule.port.port: missing or out of range (1 to 65535)`,
		`f.toml:10:1: rule "b": rule.title: missing (every rule needs a title)`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	var n int
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var le *LoadError
		if errors.As(e, &le) {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d LoadErrors", n)
	}
}

func TestWaiverDates(t *testing.T) {
	for _, expires := range []string{`2026-06-30`, `"2026-06-30"`} {
		src := strings.Replace(validRules, "expires = 2026-06-30", "expires = "+expires, 1)
		s, err := LoadFS(fstest.MapFS{"a.toml": {Data: []byte(src)}})
		if err != nil {
			t.Fatalf("expires = %s: %v", expires, err)
		}
		if got := s.Waivers()[0].Expires; !got.Equal(time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("expires = %s: %v", expires, got)
		}
	}
	for _, bad := range []string{`2026-06-30T10:00:00Z`, `"2026-02-30"`, `"tomorrow"`} {
		src := strings.Replace(validRules, "expires = 2026-06-30", "expires = "+bad, 1)
		if _, err := LoadFS(fstest.MapFS{"a.toml": {Data: []byte(src)}}); err == nil {
			t.Errorf("expires = %s loaded", bad)
		}
	}
}

func TestMerge(t *testing.T) {
	a, err := LoadFS(fstest.MapFS{"a.toml": {Data: []byte(validRules)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Merge(a, a); err == nil || !strings.Contains(err.Error(), "duplicate rule ID") {
		t.Errorf("merging a set with itself: %v", err)
	}
	b := oneRule(t, "", "[rule.port]\nport = 21\nstate = \"closed\"")
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 3 || m.Digest() == a.Digest() {
		t.Errorf("merged %d rules, digest %s", m.Len(), m.Digest())
	}
}

// TestDigest checks that the digest names the rules' content, not where they came from or
// the order they were loaded in, and changes when anything that decides a verdict changes.
func TestDigest(t *testing.T) {
	load := func(files map[string]string) string {
		fsys := fstest.MapFS{}
		for n, d := range files {
			fsys[n] = &fstest.MapFile{Data: []byte(d)}
		}
		s, err := LoadFS(fsys)
		if err != nil {
			t.Fatal(err)
		}
		return s.Digest()
	}
	parts := strings.SplitN(validRules, "[[rule]]\nid = \"telnet-closed\"", 2)
	second := "[[rule]]\nid = \"telnet-closed\"" + parts[1]
	base := load(map[string]string{"a.toml": validRules})
	for name, files := range map[string]map[string]string{
		"renamed file": {"zz/other-name.toml": validRules},
		"split files":  {"b.toml": parts[0], "a.toml": second},
		"comments":     {"a.toml": "# a comment\n" + strings.Replace(validRules, "\n[rule.port]", "  # trailing\n[rule.port]", 1)},
	} {
		if got := load(files); got != base {
			t.Errorf("%s changed the digest", name)
		}
	}
	for name, src := range map[string]string{
		"port":     strings.Replace(validRules, "port = 23", "port = 24", 1),
		"severity": strings.Replace(validRules, `severity = "critical"`, `severity = "high"`, 1),
		"waiver":   strings.Replace(validRules, "2026-06-30", "2026-07-01", 1),
		"targets":  strings.Replace(validRules, `["web-*"]`, `["web-*", "db-*"]`, 1),
	} {
		if got := load(map[string]string{"a.toml": src}); got == base {
			t.Errorf("changing %s kept the digest", name)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add(validRules)
	entries, _ := filepath.Glob(filepath.Join("..", "testdata", "rules", "invalid-*.toml"))
	for _, e := range entries {
		if data, err := os.ReadFile(e); err == nil {
			f.Add(string(data))
		}
	}
	f.Add("[[rule]]\nid = \"x\"\n[rule.firewall]\nfamily = \"nftables\"\nhook = \"input\"\nrule_absent = \"(\"\n")
	// Values of the wrong type, at every depth.
	f.Add("[[rule]]\nid = [1]\ncontrols = [{a = 1}]\n[rule.sshd]\nequals = [[]]\n")
	f.Add("rule = 3\nwaiver = [1, 2]\n")
	f.Add("[[waiver]]\nrule = \"r\"\nexpires = 2026-06-30T10:00:00Z\ntargets = \"*\"\n")
	f.Fuzz(func(t *testing.T, src string) {
		s, err := LoadFS(fstest.MapFS{"f.toml": {Data: []byte(src)}})
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("error is not a LoadError: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "f.toml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// Whatever loads must evaluate without panicking, over empty and real-looking facts.
		res := s.Evaluate(context.Background(), NewMemFacts("t"), now)
		for _, r := range res {
			if r.Outcome != Error && r.Outcome != Skip && r.Outcome != Pass && r.Outcome != Fail && r.Outcome != Waived {
				t.Fatalf("outcome %q", r.Outcome)
			}
			if strings.Contains(r.Message, "probe") && strings.Contains(r.Message, "failed:") {
				t.Fatalf("probe panicked: %s", r.Message)
			}
		}
	})
}

// A file with a value of the wrong type still validates the rest, dates included: the waiver's
// TOML date survives, and only the bad rule is reported.
func TestLoadTypeProblemKeepsTheRest(t *testing.T) {
	src := `[[rule]]
id = "a"
title = "t"
severity = "high"
controls = ["c"]
[rule.sysctl]
key = "k"
equals = "1"

[[rule]]
id = "b"
title = 5
severity = "high"
controls = ["c"]
[rule.sysctl]
key = "k"
equals = "1"

[[waiver]]
rule = "a"
targets = ["*"]
reason = "r"
approver = "x"
expires = 2026-06-30
`
	_, err := LoadFS(fstest.MapFS{"f.toml": {Data: []byte(src)}})
	want := `f.toml:12:9: rule "b": rule[2].title: expected a string, got an integer`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s only", err, want)
	}
}
