package rules

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

const waiverRules = `[[rule]]
id = "telnet-closed"
title = "Telnet is not listening"
severity = "critical"
controls = ["ISO27001:2022 A.8.20"]
remediation = "Disable the telnet service."
[rule.port]
port = 23
state = "closed"

[[rule]]
id = "sshd-root-login"
title = "Root cannot log in over SSH"
severity = "high"
controls = ["ISO27001:2022 A.8.5"]
remediation = """
Set PermitRootLogin no in /etc/ssh/sshd_config
and reload sshd."""
[rule.sshd]
option = "permitrootlogin"
equals = "no"

[[rule]]
id = "auditd-installed"
title = "auditd is installed"
severity = "medium"
controls = ["ISO27001:2022 A.8.15"]
[rule.package]
name = "auditd"
state = "installed"

[[waiver]]
rule = "telnet-closed"
targets = ["legacy-*"]
reason = "serial console server until the 2026 refresh"
approver = "ciso@example.com"
expires = 2026-09-30

[[waiver]]
rule = "sshd-root-login"
targets = ["legacy-01"]
reason = "vendor appliance"
approver = "ciso@example.com"
expires = 2026-01-31

[[waiver]]
rule = "auditd-installed"
targets = ["web-*"]
reason = "not for web"
approver = "ops@example.com"
expires = 2027-01-01
`

func TestWaivers(t *testing.T) {
	s, err := LoadFS(fstest.MapFS{"w.toml": {Data: []byte(waiverRules)}})
	if err != nil {
		t.Fatal(err)
	}
	legacy, web := loadHost(t, "legacy-01"), loadHost(t, "web-01")
	byID := func(rs []Result) map[string]Result {
		m := map[string]Result{}
		for _, r := range rs {
			m[r.Rule] = r
		}
		return m
	}
	res := byID(s.Evaluate(context.Background(), legacy, now))
	if r := res["telnet-closed"]; r.Outcome != Waived || r.Waiver == nil || r.Waiver.Expired || r.Waiver.Covers != Fail || r.Waiver.Expires != "2026-09-30" {
		t.Errorf("active waiver: %+v %+v", r, r.Waiver)
	}
	if r := res["sshd-root-login"]; r.Outcome != Fail || r.Waiver == nil || !r.Waiver.Expired ||
		!strings.HasPrefix(r.Message, "waiver expired on 2026-01-31; permitrootlogin is yes") {
		t.Errorf("expired waiver: %+v", r)
	}
	if r := res["auditd-installed"]; r.Outcome != Fail || r.Waiver != nil {
		t.Errorf("waiver for other targets applied: %+v", r)
	}
	// The waiver stops applying on its expiry date, at midnight UTC.
	lastDay := time.Date(2026, 9, 29, 23, 59, 59, 0, time.UTC)
	if r := byID(s.Evaluate(context.Background(), legacy, lastDay))["telnet-closed"]; r.Outcome != Waived {
		t.Errorf("on the day before expiry: %s", r.Outcome)
	}
	expiry := time.Date(2026, 9, 30, 0, 0, 0, 0, time.UTC)
	if r := byID(s.Evaluate(context.Background(), legacy, expiry))["telnet-closed"]; r.Outcome != Fail || !strings.Contains(r.Message, "waiver expired on 2026-09-30") {
		t.Errorf("on the expiry date: %s %s", r.Outcome, r.Message)
	}
	// A passing rule keeps its outcome and no waiver is shown.
	res = byID(s.Evaluate(context.Background(), web, now))
	if r := res["auditd-installed"]; r.Outcome != Waived {
		t.Errorf("web auditd: %s", r.Outcome)
	}
	if r := res["telnet-closed"]; r.Outcome != Pass || r.Waiver != nil {
		t.Errorf("web telnet: %+v", r)
	}
	// An error can be waived too.
	res = byID(s.Evaluate(context.Background(), NewMemFacts("web-02"), now))
	if r := res["auditd-installed"]; r.Outcome != Waived || r.Waiver.Covers != Error {
		t.Errorf("waived error: %+v", r)
	}
}

func TestEvaluateCanceled(t *testing.T) {
	s, err := LoadFS(fstest.MapFS{"w.toml": {Data: []byte(waiverRules)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, r := range s.Evaluate(ctx, loadHost(t, "web-01"), now) {
		if r.Outcome != Error && r.Outcome != Waived || !strings.Contains(r.Message, "evaluation stopped") {
			t.Errorf("%s: %s %s", r.Rule, r.Outcome, r.Message)
		}
	}
}

func TestResultJSONFields(t *testing.T) {
	r := Result{Rule: "a", Waiver: &WaiverInfo{}}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rule", "title", "severity", "kind", "controls", "incidents", "outcome", "message", "expected", "actual", "waiver"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, data)
		}
	}
	w := m["waiver"].(map[string]any)
	for _, k := range []string{"reason", "approver", "expires", "expired", "covers", "source"} {
		if _, ok := w[k]; !ok {
			t.Errorf("waiver JSON lacks %q", k)
		}
	}
}

// TestRender checks the three renderings against golden files.
func TestRender(t *testing.T) {
	s, err := LoadFS(fstest.MapFS{"w.toml": {Data: []byte(waiverRules)}})
	if err != nil {
		t.Fatal(err)
	}
	var reports []Report
	for _, host := range []string{"web-01", "legacy-01"} {
		f := loadHost(t, host)
		reports = append(reports, NewReport(s.Evaluate(context.Background(), f, now), f.Target(), "4f1c2a9e", s.Digest(), now))
	}
	for _, tc := range []struct {
		file  string
		write func(*bytes.Buffer) error
	}{
		{"report.txt", func(b *bytes.Buffer) error { return WriteText(b, reports...) }},
		{"report.json", func(b *bytes.Buffer) error { return WriteJSON(b, reports...) }},
		{"report.junit.xml", func(b *bytes.Buffer) error { return WriteJUnit(b, reports...) }},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("..", "testdata", "rules", "golden", tc.file)
			testutil.Golden(t, golden, b.Bytes())
		})
	}

	// What CI systems read: the counts and the elements.
	var b bytes.Buffer
	if err := WriteJUnit(&b, reports...); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
				Skipped *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Tests != 6 || len(doc.Suites) != 2 || doc.Suites[1].Name != "legacy-01" ||
		doc.Suites[1].Cases[0].Name != "telnet-closed: Telnet is not listening" || doc.Suites[1].Cases[0].Skipped == nil ||
		doc.Suites[1].Cases[1].Failure == nil {
		t.Errorf("junit: %+v", doc)
	}
}

// TestEvaluateConcurrently evaluates one set over several snapshots at once, as the agent
// does; run with -race.
func TestEvaluateConcurrently(t *testing.T) {
	s, err := Shipped()
	if err != nil {
		t.Fatal(err)
	}
	hosts := []*MemFacts{loadHost(t, "web-01"), loadHost(t, "legacy-01"), loadHost(t, "ubuntu-noble")}
	want := make([]Summary, len(hosts))
	for i, h := range hosts {
		want[i] = Summarize(s.Evaluate(context.Background(), h, now))
	}
	done := make(chan error)
	for i := range 6 {
		go func() {
			got := Summarize(s.Evaluate(context.Background(), hosts[i%3], now))
			if got != want[i%3] {
				done <- fmt.Errorf("%s: %s, want %s", hosts[i%3].Target(), got, want[i%3])
				return
			}
			done <- nil
		}()
	}
	for range 6 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
