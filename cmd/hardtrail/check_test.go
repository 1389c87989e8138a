package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hardtrail/hardtrail/rules"
)

// checkData is the directory of the rule files the check tests use.
var checkData = filepath.Join("..", "..", "testdata", "check")

func ruleFile(name string) string { return filepath.Join(checkData, name) }

// htEnv is ht with extra environment variables and a working directory ("" for the current one).
func htDir(t testing.TB, env []string, dir string, args ...string) (string, string, int) {
	t.Helper()
	return htRun(t, env, dir, args...)
}

// resultsDoc is the JSON check prints.
type resultsDoc struct {
	Format  string         `json:"format"`
	Reports []rules.Report `json:"reports"`
}

func parseResults(t testing.TB, out string) resultsDoc {
	t.Helper()
	var doc resultsDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("check JSON: %v\n%s", err, out)
	}
	if doc.Format != rules.ResultsFormat {
		t.Fatalf("format %q", doc.Format)
	}
	return doc
}

// checkJSON runs check with --format json and returns the document and the exit code; any
// exit code other than 0 and 1 fails the test.
func checkJSON(t testing.TB, env []string, args ...string) (resultsDoc, int) {
	t.Helper()
	out, errOut, code := htDir(t, env, "", append(args, "--format", "json")...)
	if code != 0 && code != 1 {
		t.Fatalf("hardtrail %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return parseResults(t, out), code
}

// wantCode is the exit code check must give for the reports.
func wantCode(reps []rules.Report) int {
	for _, r := range reps {
		if r.Summary.Fail+r.Summary.Error > 0 {
			return 1
		}
	}
	return 0
}

// outcomes maps rule ID to outcome.
func outcomes(r rules.Report) map[string]rules.Outcome {
	m := map[string]rules.Outcome{}
	for _, res := range r.Results {
		m[res.Rule] = res.Outcome
	}
	return m
}

// appEnv is a config whose target local captures one file, app.conf in a temporary directory,
// as the artifact app/conf.
type appEnv struct {
	dir, conf, store, config string
}

func newAppEnv(t *testing.T, content string, extra string) *appEnv {
	t.Helper()
	dir := t.TempDir()
	e := &appEnv{dir: dir, conf: filepath.Join(dir, "app.conf"), store: filepath.Join(dir, "h.db"), config: filepath.Join(dir, "hardtrail.toml")}
	e.write(t, content)
	cfg := fmt.Sprintf(`store = %q
%s
[[target]]
name = "local"
profiles = ["app"]

[[profile]]
name = "app"
[[profile.source]]
name = "app/conf"
files = [%q]
`, e.store, extra, e.conf)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *appEnv) write(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(e.conf, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The shipped packs on this machine: the exit code follows the outcomes, JSON, JUnit and text
// agree, and every evaluation is stored with its snapshot.
func TestCheckLiveShippedPacks(t *testing.T) {
	store := filepath.Join(t.TempDir(), "h.db")
	lint := mustHT(t, "rules", "lint", "builtin")
	m := regexp.MustCompile(`^ok: (\d+) rules, 0 waivers in 4 files \(digest (sha256:[0-9a-f]{64})\)\n$`).FindStringSubmatch(lint)
	if m == nil {
		t.Fatalf("rules lint builtin: %q", lint)
	}
	shipped, err := rules.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	if m[1] != fmt.Sprint(shipped.Len()) || m[2] != shipped.Digest() {
		t.Errorf("lint says %s rules, %s; the packs hold %d, %s", m[1], m[2], shipped.Len(), shipped.Digest())
	}

	doc, code := checkJSON(t, nil, "--store", store, "check")
	if len(doc.Reports) != 1 {
		t.Fatalf("%d reports", len(doc.Reports))
	}
	rep := doc.Reports[0]
	if rep.Target != "local" || len(rep.Snapshot) != 64 || rep.RulesDigest != shipped.Digest() || len(rep.Results) != shipped.Len() || rep.Summary != rules.Summarize(rep.Results) {
		t.Errorf("report: target %s, snapshot %q, digest %s, %d results, summary %+v", rep.Target, rep.Snapshot, rep.RulesDigest, len(rep.Results), rep.Summary)
	}
	if code != wantCode(doc.Reports) {
		t.Errorf("exit %d with %s", code, rep.Summary)
	}
	t.Logf("this machine: %s", rep.Summary)

	// JUnit of the same snapshot, re-evaluated from the store.
	out, errOut, code := ht(t, "--store", store, "check", "--snapshot", rep.Snapshot[:12], "--format", "junit")
	if code != wantCode(doc.Reports) {
		t.Errorf("junit: exit %d: %s", code, errOut)
	}
	var suites struct {
		XMLName  xml.Name `xml:"testsuites"`
		Tests    int      `xml:"tests,attr"`
		Failures int      `xml:"failures,attr"`
		Errors   int      `xml:"errors,attr"`
		Skipped  int      `xml:"skipped,attr"`
		Suites   []struct {
			Name       string `xml:"name,attr"`
			Properties []struct {
				Name  string `xml:"name,attr"`
				Value string `xml:"value,attr"`
			} `xml:"properties>property"`
			Cases []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
				Error   *struct{} `xml:"error"`
				Skipped *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	dec := xml.NewDecoder(strings.NewReader(out))
	dec.Strict = true
	if err := dec.Decode(&suites); err != nil {
		t.Fatalf("JUnit does not parse: %v\n%s", err, out)
	}
	s := rep.Summary
	if suites.Tests != s.Total || suites.Failures != s.Fail || suites.Errors != s.Error || suites.Skipped != s.Skip+s.Waived || len(suites.Suites) != 1 {
		t.Errorf("JUnit counts %d/%d/%d/%d, JSON %s", suites.Tests, suites.Failures, suites.Errors, suites.Skipped, s)
	}
	suite := suites.Suites[0]
	props := map[string]string{}
	for _, p := range suite.Properties {
		props[p.Name] = p.Value
	}
	if suite.Name != "local" || props["snapshot"] != rep.Snapshot || props["rules_digest"] != shipped.Digest() || len(suite.Cases) != len(rep.Results) {
		t.Errorf("suite %s, properties %v, %d cases", suite.Name, props, len(suite.Cases))
	}
	for i, c := range suite.Cases {
		res := rep.Results[i]
		if !strings.HasPrefix(c.Name, res.Rule+": ") || (c.Failure != nil) != (res.Outcome == rules.Fail) || (c.Error != nil) != (res.Outcome == rules.Error) {
			t.Errorf("case %s for %s %s", c.Name, res.Rule, res.Outcome)
		}
	}

	// Text names the snapshot and ends with the summary.
	out, _, _ = ht(t, "--store", store, "check", "--snapshot", "local")
	if !strings.HasPrefix(out, "local (snapshot "+rep.Snapshot+")\n") || !strings.HasSuffix(out, "local: "+s.String()+"\n") {
		t.Errorf("text:\n%s", out)
	}

	// Results are stored per snapshot and rule set: three evaluations of one snapshot by the
	// shipped packs are one report; another rule set adds one.
	verified := func() int {
		var v struct {
			Results  int
			Problems []any
		}
		if err := json.Unmarshal([]byte(mustHT(t, "--store", store, "store", "verify", "--format", "json")), &v); err != nil || len(v.Problems) > 0 {
			t.Fatalf("store verify: %v %v", err, v.Problems)
		}
		return v.Results
	}
	if n := verified(); n != 1 {
		t.Errorf("store holds %d results, want 1", n)
	}
	ht(t, "--store", store, "check", "--snapshot", "local", "--rules", ruleFile("app.toml"))
	if n := verified(); n != 2 {
		t.Errorf("store holds %d results, want 2", n)
	}
}

// Rules evaluated on a stored snapshot give the same results as on a fresh one of an unchanged
// host. The one artifact that changes on an unchanged host is net/listening: other tests open
// and close listening sockets while this one runs, so a port rule may differ between the two
// snapshots, and only when their net/listening differs.
func TestCheckStoredMatchesFresh(t *testing.T) {
	store := filepath.Join(t.TempDir(), "h.db")
	old := snapshotJSON(t, "--store", store, "snapshot")[0].ID
	fresh, code := checkJSON(t, nil, "--store", store, "check")
	if code != wantCode(fresh.Reports) {
		t.Errorf("fresh check: exit %d", code)
	}
	newID := fresh.Reports[0].Snapshot
	if newID == old {
		t.Fatal("check did not capture a new snapshot")
	}
	// The fresh snapshot evaluated again from the store: the very same results.
	again, _ := checkJSON(t, nil, "--store", store, "check", "--snapshot", newID)
	if d := cmp.Diff(fresh.Reports[0].Results, again.Reports[0].Results); d != "" {
		t.Errorf("the fresh snapshot re-evaluated from the store differs (-fresh +stored):\n%s", d)
	}
	// The older snapshot: the same results, but for rules over artifacts that changed.
	stored, _ := checkJSON(t, nil, "--store", store, "check", "--snapshot", old)
	changed := func(artifact string) bool {
		a, _, _ := ht(t, "--store", store, "show", old, artifact)
		b, _, _ := ht(t, "--store", store, "show", newID, artifact)
		return a != b
	}
	volatile := map[string]string{"port": "net/listening"}
	sr := stored.Reports[0].Results
	fr := fresh.Reports[0].Results
	if len(sr) != len(fr) {
		t.Fatalf("%d results stored, %d fresh", len(sr), len(fr))
	}
	for i := range sr {
		a, b := sr[i], fr[i]
		if a.Rule != b.Rule {
			t.Fatalf("result %d: rule %s stored, %s fresh", i, a.Rule, b.Rule)
		}
		if a.Outcome == b.Outcome && a.Message == b.Message {
			continue
		}
		if art, ok := volatile[a.Kind]; ok && changed(art) {
			t.Logf("%s differs (%s, %s), and so does %s between the snapshots", a.Rule, a.Outcome, b.Outcome, art)
			continue
		}
		t.Errorf("%s: stored %s (%s), fresh %s (%s)", a.Rule, a.Outcome, a.Message, b.Outcome, b.Message)
	}
}

func TestCheckOutcomesAndExitCodes(t *testing.T) {
	e := newAppEnv(t, "secure = yes\ndebug = on\n", "")
	app, audit, waivers := ruleFile("app.toml"), ruleFile("audit.toml"), ruleFile("waivers.toml")
	for _, tc := range []struct {
		name     string
		rules    []string
		code     int
		outcomes map[string]rules.Outcome
		stderr   string
	}{
		{"a rule fails", []string{app}, 1,
			map[string]rules.Outcome{"app-secure": rules.Pass, "app-no-debug": rules.Fail}, "hardtrail: 1 rule failed (local)\n"},
		{"an artifact is not captured", []string{app, audit}, 1,
			map[string]rules.Outcome{"app-secure": rules.Pass, "app-no-debug": rules.Fail, "audit-running": rules.Error}, "hardtrail: 1 rule failed, 1 rule erred (local)\n"},
		{"waivers after the packs", []string{app, audit, waivers}, 0,
			map[string]rules.Outcome{"app-secure": rules.Pass, "app-no-debug": rules.Waived, "audit-running": rules.Waived}, ""},
		{"waivers before the packs", []string{waivers, audit, app}, 0,
			map[string]rules.Outcome{"app-secure": rules.Pass, "app-no-debug": rules.Waived, "audit-running": rules.Waived}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--config", e.config, "check"}
			for _, r := range tc.rules {
				args = append(args, "--rules", r)
			}
			out, errOut, code := htDir(t, nil, "", append(args, "--format", "json")...)
			const unknown = "hardtrail: warning: ../../testdata/check/app.toml:3: rule \"app-secure\" names incident INC-1, which the store does not know"
			if !strings.HasPrefix(errOut, unknown) {
				t.Errorf("no warning of the unknown incident INC-1: %q", errOut)
			}
			_, errOut, _ = strings.Cut(errOut, "\n")
			if code != tc.code || errOut != tc.stderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, errOut, tc.code, tc.stderr)
			}
			doc := parseResults(t, out)
			if d := cmp.Diff(tc.outcomes, outcomes(doc.Reports[0])); d != "" {
				t.Errorf("outcomes (-want +got):\n%s", d)
			}
		})
	}
	// The message of an uncaptured artifact, and a waiver in the text output.
	out, _, _ := ht(t, "--config", e.config, "check", "--rules", app, "--rules", audit, "--rules", waivers)
	for _, want := range []string{
		"  WAIVED  medium  audit-running  waived until 2099-01-01 by ciso@example.com: auditd is replaced by the central collector (artifact audit/status was not captured)\n",
		"local: 3 rules: 1 pass, 0 fail, 0 error, 0 skip, 2 waived\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	// A failed rule's remediation, under its line of the text output.
	e.write(t, "secure = no\n")
	out, _, code := ht(t, "--config", e.config, "check", "--rules", app)
	if want := "  FAIL  high    app-secure    no line matches /^secure = yes$/ in app/conf\n" +
		"                              remediation: Set secure = yes in the app's config.\n"; code != 1 || !strings.Contains(out, want) {
		t.Errorf("exit %d, want 1; text lacks %q:\n%s", code, want, out)
	}
	// Fixed: every rule passes.
	e.write(t, "secure = yes\n")
	if out, errOut, code := ht(t, "--config", e.config, "check", "--rules", app); code != 0 || !strings.Contains(out, "local: 2 rules: 2 pass") {
		t.Errorf("fixed: exit %d\n%s%s", code, out, errOut)
	}

	snap := snapshotJSON(t, "--config", e.config, "snapshot")[0].ID
	empty := filepath.Join(e.dir, "empty.toml")
	if err := os.WriteFile(empty, []byte("# the rules go here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"--rules", ruleFile("bad-syntax.toml")}, 2, "hardtrail: " + ruleFile("bad-syntax.toml") + `:3:22: rule "app-secure-2": rule.title: strings cannot contain newlines` + "\n"},
		{[]string{"--rules", waivers}, 2, "hardtrail: " + waivers + `:3:1: waiver for rule "app-no-debug": waiver.rule: no rule with this ID is loaded (load the waiver together with the rules it waives)` + "\n" +
			waivers + `:10:1: waiver for rule "audit-running": waiver.rule: no rule with this ID is loaded (load the waiver together with the rules it waives)` + "\n"},
		{[]string{"--rules", filepath.Join(e.dir, "none.toml")}, 2, "no such file or directory"},
		{[]string{"--rules", ""}, 2, `empty rules source`},
		{[]string{"--rules", empty}, 2, "hardtrail: no rules to evaluate: the rule files " + empty + ` hold no [[rule]] table, so a check would prove nothing (give --rules with a rule file or directory, or "builtin" for the shipped packs)`},
		{[]string{"--rules", "https://127.0.0.1:1/pack.tar.gz"}, 2, "hardtrail: rules source https://127.0.0.1:1/pack.tar.gz: https sources need ?checksum=sha256:HEX"},
		{[]string{"--rules", "s3::https://bucket/pack.tar.gz"}, 2, `getter "s3" is not allowed`},
		{[]string{"--snapshot", "deadbeef", "--rules", app}, 2, `no snapshot matches "deadbeef"`},
		{[]string{"local", "--snapshot", snap, "--rules", app}, 2, "give either TARGETs to capture or --snapshot REFs to evaluate, not both"},
		{[]string{"nosuchtarget", "--rules", app}, 2, `unknown target "nosuchtarget"`},
		{[]string{"--format", "xml", "--rules", app}, 2, `--format "xml": want one of: text, json, junit`},
		{[]string{"--snapshot", snap[:8], "--rules", app}, 0, ""},
		{[]string{"--snapshot", snap, "--snapshot", "local", "--rules", app, "--format", "junit"}, 0, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := ht(t, append([]string{"--config", e.config, "check"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("exit %d, want %d; stderr %q lacks %q\n%s", code, tc.code, errOut, tc.stderr, out)
			}
		})
	}
	if n := strings.Count(mustHT(t, "--config", e.config, "log"), "\n"); n != 8 {
		t.Errorf("%d snapshots, want 8: the seven captures above and the snapshot; the runs of the table capture nothing", n)
	}
}

// A target that cannot be captured is reported, in every format, and the exit code is 1.
func TestCheckCaptureFailure(t *testing.T) {
	e := newAppEnv(t, "secure = yes\n", "")
	cfg, _ := os.ReadFile(e.config)
	testutil.Must(t, os.WriteFile(e.config, append(cfg, "[[target]]\nname = \"gone\"\naddress = \"root@127.0.0.1:1\"\ntimeout = \"5s\"\n"...), 0o600))
	out, errOut, code := ht(t, "--config", e.config, "check", "--rules", ruleFile("app.toml"), "--format", "json")
	if code != 1 || !strings.HasSuffix(errOut, "hardtrail: 1 target failed to capture (gone)\n") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	doc := parseResults(t, out)
	if len(doc.Reports) != 2 || doc.Reports[0].Target != "local" || doc.Reports[0].Summary.Pass != 2 {
		t.Fatalf("reports: %+v", doc.Reports)
	}
	gone := doc.Reports[1]
	if gone.Target != "gone" || gone.Snapshot != "" || len(gone.Results) != 1 || gone.Results[0].Rule != CaptureRule || gone.Results[0].Outcome != rules.Error ||
		!strings.HasPrefix(gone.Results[0].Message, "capture failed at ") {
		t.Errorf("failed target: %+v", gone)
	}
	out, _, _ = ht(t, "--config", e.config, "check", "--rules", ruleFile("app.toml"), "--format", "junit")
	if !strings.Contains(out, `<testcase classname="hardtrail.capture" name="capture: The target is captured" time="0">`) || !strings.Contains(out, `<error message="capture failed at `) {
		t.Errorf("junit:\n%s", out)
	}
}

// The config's rules, relative to the config file, stand in for --rules; without either, the
// shipped packs are evaluated.
func TestCheckConfigRules(t *testing.T) {
	e := newAppEnv(t, "secure = yes\ndebug = on\n", `rules = ["rules"]`)
	if err := os.Mkdir(filepath.Join(e.dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"app.toml", "audit.toml", "waivers.toml"} {
		if err := os.WriteFile(filepath.Join(e.dir, "rules", f), must(os.ReadFile(ruleFile(f))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	doc, code := checkJSON(t, nil, "--config", e.config, "check")
	if code != 0 || len(doc.Reports[0].Results) != 3 || doc.Reports[0].Summary.Waived != 2 {
		t.Errorf("config rules: exit %d, %s", code, doc.Reports[0].Summary)
	}
	// Run from another directory: the paths are the config's.
	if _, errOut, code := htDir(t, nil, t.TempDir(), "--config", e.config, "check"); code != 0 {
		t.Errorf("from another directory: exit %d: %s", code, errOut)
	}
	// --rules replaces the config's rules; builtin is the shipped packs.
	shipped, _ := rules.Shipped()
	doc, _ = checkJSON(t, nil, "--config", e.config, "check", "--rules", "builtin")
	if doc.Reports[0].RulesDigest != shipped.Digest() {
		t.Errorf("--rules builtin: digest %s", doc.Reports[0].RulesDigest)
	}
	testutil.Must(t, os.WriteFile(e.config, bytes.Replace(must(os.ReadFile(e.config)), []byte(`rules = ["rules"]`), nil, 1), 0o600))
	doc, _ = checkJSON(t, nil, "--config", e.config, "check")
	if doc.Reports[0].RulesDigest != shipped.Digest() {
		t.Errorf("no rules anywhere: digest %s, want the shipped packs' %s", doc.Reports[0].RulesDigest, shipped.Digest())
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestRulesLint(t *testing.T) {
	app, audit, waivers := ruleFile("app.toml"), ruleFile("audit.toml"), ruleFile("waivers.toml")
	digest := func(paths ...string) string {
		var srcs []rules.Source
		for _, p := range paths {
			if p == "builtin" {
				srcs = append(srcs, rules.ShippedSource())
			} else {
				srcs = append(srcs, rules.Source{Path: p})
			}
		}
		s, err := rules.LoadSources(srcs...)
		if err != nil {
			t.Fatal(err)
		}
		return s.Digest()
	}
	noRule := `: waiver for rule "%s": waiver.rule: no rule with this ID is loaded (load the waiver together with the rules it waives)`
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{app, audit, waivers}, 0, "ok: 3 rules, 2 waivers in 3 files (digest " + digest(app, audit, waivers) + ")\n"},
		{[]string{audit}, 0, "ok: 1 rule, 0 waivers in 1 file (digest " + digest(audit) + ")\n"},
		{[]string{"builtin", app, audit, waivers}, 0, fmt.Sprintf("ok: %d rules, 2 waivers in 7 files (digest %s)\n", must(rules.Shipped()).Len()+3, digest("builtin", app, audit, waivers))},
		{[]string{ruleFile("bad-syntax.toml")}, 2, ruleFile("bad-syntax.toml") + `:3:22: rule "app-secure-2": rule.title: strings cannot contain newlines` + "\n"},
		{[]string{ruleFile("bad-probe-key.toml")}, 2, ruleFile("bad-probe-key.toml") + `:8:1: rule "app-mode": rule.file.mode: unknown key (check its spelling and the table it is in)` + "\n"},
		{[]string{app, ruleFile("bad-duplicate.toml")}, 2, ruleFile("bad-duplicate.toml") + `:1:1: rule "app-secure": rule.id: duplicate rule ID (first defined at ` + app + ":3)\n"},
		{[]string{"builtin", waivers}, 2, waivers + ":3:1" + fmt.Sprintf(noRule, "app-no-debug") + "\n" + waivers + ":10:1" + fmt.Sprintf(noRule, "audit-running") + "\n"},
		// Every problem of a directory, parse errors first, then what spans files.
		{[]string{checkData}, 2, ruleFile("bad-probe-key.toml") + `:8:1: rule "app-mode": rule.file.mode: unknown key (check its spelling and the table it is in)` + "\n" +
			ruleFile("bad-syntax.toml") + `:3:22: rule "app-secure-2": rule.title: strings cannot contain newlines` + "\n" +
			ruleFile("bad-duplicate.toml") + `:1:1: rule "app-secure": rule.id: duplicate rule ID (first defined at ` + app + ":3)\n" +
			ruleFile("bad-waiver-unknown.toml") + ":1:1" + fmt.Sprintf(noRule, "app-no-debgu") + "\n"},
		{[]string{filepath.Join(checkData, "none.toml")}, 2, "rules: stat " + filepath.Join(checkData, "none.toml") + ": no such file or directory\n"},
		{[]string{"https://example.com/pack.tar.gz?checksum=sha256:00"}, 2, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := ht(t, append([]string{"rules", "lint"}, tc.args...)...)
			if code != tc.code || out != tc.out {
				t.Errorf("exit %d, want %d; output:\n%s\nwant:\n%s\nstderr: %s", code, tc.code, out, tc.out, errOut)
			}
		})
	}
	if _, errOut, _ := ht(t, "rules", "lint", "https://example.com/pack.tar.gz?checksum=sha256:00"); errOut != "hardtrail: rules lint reads local files only, and https://example.com/pack.tar.gz?... is a remote source: fetch it with hardtrail rules fetch SOURCE DIR, then lint DIR\n" {
		t.Errorf("remote: %q", errOut)
	}
	// JSON names each problem's parts.
	out, _, _ := ht(t, "rules", "lint", ruleFile("bad-probe-key.toml"), "--format", "json")
	var doc packSummary
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.OK || len(doc.Problems) != 1 {
		t.Fatalf("%v: %s", err, out)
	}
	want := lintProblem{File: ruleFile("bad-probe-key.toml"), Line: 8, Col: 1, Rule: "app-mode", Key: "rule.file.mode",
		Message: "unknown key (check its spelling and the table it is in)",
		Text:    ruleFile("bad-probe-key.toml") + `:8:1: rule "app-mode": rule.file.mode: unknown key (check its spelling and the table it is in)`}
	if d := cmp.Diff(want, doc.Problems[0]); d != "" {
		t.Errorf("JSON problem (-want +got):\n%s", d)
	}
}

// An incident's linked rule shows its outcome on the before and after snapshots: the file the
// profile captures is edited between them.
func TestIncidentShowsLinkedRules(t *testing.T) {
	app, _ := filepath.Abs(ruleFile("app.toml"))
	e := newAppEnv(t, "secure = no\n", fmt.Sprintf("rules = [%q]", app))
	mustHT(t, "--config", e.config, "snapshot", "--incident", "INC-1", "--phase", "before", "--by", "test")
	if _, _, code := ht(t, "--config", e.config, "check", "--snapshot", "INC-1:before"); code != 1 {
		t.Errorf("before: exit %d", code)
	}
	e.write(t, "secure = yes\n")
	mustHT(t, "--config", e.config, "snapshot", "--incident", "INC-1", "--phase", "after", "--by", "test")
	out := mustHT(t, "--config", e.config, "incident", "show", "INC-1")
	for _, want := range []string{
		"incident INC-1: verified now; never regressed since the fix\n",
		"  linked rules (before / after / newest):\n    app-secure: fail / pass / pass  The app runs in secure mode\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("incident show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "app-no-debug") {
		t.Errorf("a rule not linked to the incident is shown:\n%s", out)
	}
	var st struct {
		Status  string
		Targets []struct {
			RulesBefore []rules.Result `json:"rules_before"`
			RulesAfter  []rules.Result `json:"rules_after"`
		}
	}
	if err := json.Unmarshal([]byte(mustHT(t, "--config", e.config, "incident", "show", "INC-1", "--format", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Status != "verified" || len(st.Targets) != 1 || len(st.Targets[0].RulesBefore) != 1 || st.Targets[0].RulesBefore[0].Outcome != rules.Fail || st.Targets[0].RulesAfter[0].Outcome != rules.Pass {
		t.Errorf("incident JSON: %+v", st)
	}
	// The remediation comes undone: the newest snapshot fails the linked rule.
	e.write(t, "secure = no\n")
	if _, _, code := ht(t, "--config", e.config, "check"); code != 1 {
		t.Errorf("regressed check: exit %d", code)
	}
	out = mustHT(t, "--config", e.config, "incident", "show", "INC-1")
	if !strings.Contains(out, "incident INC-1: regressed now") || !strings.Contains(out, "app-secure: fail / pass / fail") {
		t.Errorf("after the regression:\n%s", out)
	}
}
