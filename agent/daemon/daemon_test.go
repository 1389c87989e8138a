package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/fleet"
	"github.com/hardtrail/hardtrail/agent/incident"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/collector"
	"github.com/hardtrail/hardtrail/config"
	"github.com/hardtrail/hardtrail/rules"
)

// fixture is a store, a config whose target "web1" captures two files of dir as its sshd
// and firewall artifacts, and a rule linked to incident INC-1.
type fixture struct {
	dir   string
	st    *store.Store
	cfg   *config.Config
	set   *rules.Set
	red   *collector.Redactor
	rules string
}

const (
	weakFW   = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 23 -j ACCEPT\nCOMMIT\n"
	hardFW   = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 23 -j DROP\nCOMMIT\n"
	weakSSHD = "port 22\npasswordauthentication yes\n"
	hardSSHD = "port 22\npasswordauthentication no\n"
)

func newFixture(t *testing.T, extra string) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	f.write("fw", weakFW)
	f.write("sshd", weakSSHD)
	f.rules = filepath.Join(f.dir, "rules.toml")
	testutil.Must(t, os.WriteFile(f.rules, []byte(`[[rule]]
id = "inc1-no-passwords"
title = "SSH does not accept passwords"
severity = "high"
controls = ["ISO27001:2022 A.8.5"]
incidents = ["INC-1"]
[rule.sshd]
option = "passwordauthentication"
equals = "no"

[[rule]]
id = "port-23-closed"
title = "Telnet is dropped"
severity = "critical"
controls = ["ISO27001:2022 A.8.20"]
[rule.firewall]
family = "iptables"
chain = "INPUT"
rule_absent = "--dport 23 -j ACCEPT"
`), 0o600))
	src := fmt.Sprintf(`store = %q
[agent]
interval = "1s"
concurrency = 4
[[target]]
name = "web1"
profiles = ["files"]
timeout = "20s"
%s
[[profile]]
name = "files"
[[profile.source]]
name = "sshd/effective"
command = ["cat", %q]
[[profile.source]]
name = "firewall/iptables"
command = ["cat", %q]
`, filepath.Join(f.dir, "h.db"), extra, filepath.Join(f.dir, "sshd"), filepath.Join(f.dir, "fw"))
	var err error
	if f.cfg, err = config.Parse(filepath.Join(f.dir, "hardtrail.toml"), []byte(src)); err != nil {
		t.Fatal(err)
	}
	if f.set, err = rules.Load(f.rules); err != nil {
		t.Fatal(err)
	}
	if f.st, err = store.Open(t.Context(), f.cfg.Store); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.st.Close() })
	key, err := collector.LoadOrCreateKey(f.cfg.KeyFile(f.cfg.Store))
	if err != nil {
		t.Fatal(err)
	}
	if f.red, err = collector.NewRedactor(key); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) write(name, content string) {
	if err := os.WriteFile(filepath.Join(f.dir, name), []byte(content), 0o600); err != nil {
		panic(err)
	}
}

// snapshot captures web1 the way the snapshot command does and tags it.
func (f *fixture) snapshot(t *testing.T, phase string) string {
	t.Helper()
	sn := &fleet.Snapshotter{Config: f.cfg, Store: f.st, Redactor: f.red}
	res, err := sn.Run(t.Context(), []string{"web1"}, "", nil)
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	if _, err := f.st.Tag(t.Context(), store.Link{Incident: "INC-1", Phase: phase, Snapshot: res[0].Saved.ID, By: "test"}); err != nil {
		t.Fatal(err)
	}
	return res[0].Saved.ID
}

func (f *fixture) daemon(t *testing.T, load Loader) *Daemon {
	t.Helper()
	if load == nil {
		load = func(context.Context) (*config.Config, *rules.Set, error) { return f.cfg, f.set, nil }
	}
	d, err := New(t.Context(), Options{Store: f.st, Redactor: f.red, Load: load, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func statusOf(s *State, inc, target string) incident.Status {
	for _, i := range s.Incidents {
		if i.Incident == inc && i.Target == target {
			return i.Status
		}
	}
	return ""
}

func driftOf(s *State, target, artifact string) (bool, bool) {
	for _, d := range s.Drift[target] {
		if d.Artifact == artifact {
			return d.Drifted, true
		}
	}
	return false, false
}

func ruleOf(s *State, target, rule string) (RuleResult, bool) {
	for _, r := range s.Targets[target].Rules {
		if r.Rule == rule {
			return r, true
		}
	}
	return RuleResult{}, false
}

// The life of an incident as the daemon sees it, cycle by cycle: verified after the fix,
// regressed when the hardened firewall line is reverted or the linked rule fails, verified
// again when restored; each change stored once as a status event.
func TestIncidentLifecycle(t *testing.T) {
	f := newFixture(t, "")
	f.snapshot(t, store.Before)
	f.write("fw", hardFW)
	f.write("sshd", hardSSHD)
	after := f.snapshot(t, store.After)
	d := f.daemon(t, nil)
	ctx := t.Context()

	type want struct {
		status  incident.Status
		cause   string
		fwDrift bool
		held    bool
	}
	for i, step := range []struct {
		name     string
		fw, sshd string
		want     want
	}{
		{"hardened", hardFW, hardSSHD, want{incident.Verified, "all 1 pass on the newest snapshot", false, true}},
		{"still hardened", hardFW, hardSSHD, want{incident.Verified, "all 1 pass on the newest snapshot", false, true}},
		{"firewall reverted", weakFW, hardSSHD, want{incident.Regressed, "hardened change reverted in [firewall/iptables]", true, false}},
		{"firewall restored, passwords back", hardFW, weakSSHD, want{incident.Regressed, "linked rules failing: [inc1-no-passwords]", false, false}},
		{"restored", hardFW, hardSSHD, want{incident.Verified, "all 1 pass on the newest snapshot", false, false}},
	} {
		f.write("fw", step.fw)
		f.write("sshd", step.sshd)
		rep := d.Cycle(ctx)
		s := d.State()
		if len(rep.Targets) != 1 || rep.Targets[0].Err != nil || rep.Targets[0].Held != step.want.held {
			t.Fatalf("%s: targets %+v", step.name, rep.Targets)
		}
		if len(rep.Incidents) != 1 || rep.Incidents[0].Status != step.want.status || !strings.Contains(rep.Incidents[0].Cause, step.want.cause) {
			t.Errorf("%s: incidents %+v", step.name, rep.Incidents)
		}
		if got := statusOf(s, "INC-1", "web1"); got != step.want.status {
			t.Errorf("%s: state status %s", step.name, got)
		}
		if dr, ok := driftOf(s, "web1", "firewall/iptables"); !ok || dr != step.want.fwDrift {
			t.Errorf("%s: firewall drift %v (present %v)", step.name, dr, ok)
		}
		if dr, ok := driftOf(s, "web1", "sshd/effective"); !ok || dr != (step.sshd != hardSSHD) {
			t.Errorf("%s: sshd drift %v (present %v)", step.name, dr, ok)
		}
		r, ok := ruleOf(s, "web1", "port-23-closed")
		if !ok || r.Success != (step.fw == hardFW) || r.Severity != "critical" {
			t.Errorf("%s: rule port-23-closed %+v %v", step.name, r, ok)
		}
		ts := s.Targets["web1"]
		if !ts.Collected || !ts.Up || ts.Errors != 0 || s.Snapshots["web1"].IsZero() {
			t.Errorf("%s: target state %+v", step.name, ts)
		}
		if i < 2 && rep.Targets[0].Snapshot != after {
			t.Errorf("%s: held %s, not the after snapshot", step.name, rep.Targets[0].Snapshot)
		}
	}
	evs, err := f.st.StatusEvents(ctx, "INC-1")
	if err != nil {
		t.Fatal(err)
	}
	var seq []string
	for _, e := range evs {
		seq = append(seq, e.From+">"+e.Status)
	}
	if got := strings.Join(seq, " "); got != ">verified verified>regressed regressed>verified" {
		t.Errorf("status events: %s", got)
	}
	if evs[1].Cause != "hardened change reverted in [firewall/iptables]" || evs[1].RulesDigest != f.set.Digest() || evs[1].Snapshot == after {
		t.Errorf("regression event %+v", evs[1])
	}
	h, err := f.st.Held(ctx, after)
	if err != nil || h.Count != 2 {
		t.Errorf("after snapshot held %+v %v", h, err)
	}
	if rep, err := f.st.Verify(ctx); err != nil || len(rep.Problems) != 0 {
		t.Errorf("verify %+v %v", rep, err)
	}
}

// A failed collection counts once per failure, keeps the rule results of the newest stored
// snapshot, and marks the target down; findings follow check's meaning.
func TestFailedCollection(t *testing.T) {
	f := newFixture(t, "")
	d := f.daemon(t, nil)
	ctx := t.Context()
	rep := d.Cycle(ctx)
	if fa, fr, rg := rep.Findings(); fa != 0 || fr != 2 || rg != 0 {
		t.Errorf("findings %d %d %d", fa, fr, rg)
	}
	// A command that fails or is missing is data (an exit code, an unavailable artifact); a
	// collection fails when the target cannot be reached or does not answer in time.
	f.cfg.Targets[0].Timeout.Duration = 100 * time.Millisecond
	f.cfg.Profiles[0].Sources[0].Command = []string{"sleep", "10"}
	for range 3 {
		rep = d.Cycle(ctx)
	}
	s := d.State()
	ts := s.Targets["web1"]
	if rep.Targets[0].Err == nil || ts.Up || ts.Errors != 3 || len(ts.Rules) != 2 {
		t.Errorf("after 3 failed collections: %+v, report %+v", ts, rep.Targets[0])
	}
	if fa, _, _ := rep.Findings(); fa != 1 {
		t.Errorf("failed targets %d", fa)
	}
}

// A reload that fails keeps the previous configuration and rules and says so in the state;
// a good one replaces them and drops removed targets.
func TestReload(t *testing.T) {
	f := newFixture(t, "")
	var calls atomic.Int32
	var next atomic.Pointer[config.Config]
	d := f.daemon(t, func(context.Context) (*config.Config, *rules.Set, error) {
		if calls.Add(1) == 2 {
			return nil, nil, errors.New("rules.toml:3:1: rule.idd: unknown key")
		}
		if c := next.Load(); c != nil {
			return c, f.set, nil
		}
		return f.cfg, f.set, nil
	})
	ctx := t.Context()
	if !d.State().Reload.OK {
		t.Fatal("initial load not OK")
	}
	if err := d.Reload(ctx); err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("bad reload: %v", err)
	}
	if d.State().Reload.OK || d.Config() != f.cfg {
		t.Error("a bad reload changed the configuration or left reload OK")
	}
	if rep := d.Cycle(ctx); len(rep.Targets) != 1 || rep.Targets[0].Rules == nil || rep.Targets[0].Rules.Summary.Total != 2 {
		t.Errorf("cycle after a bad reload: %+v", rep.Targets)
	}
	other := *f.cfg
	other.Targets = append([]config.Target{}, f.cfg.Targets...)
	other.Targets[0].Name = "web2"
	next.Store(&other)
	before := d.State().Reload.At
	if err := d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	s := d.State()
	if !s.Reload.OK || !s.Reload.At.After(before) {
		t.Errorf("reload state %+v", s.Reload)
	}
	if _, ok := s.Targets["web1"]; ok {
		t.Error("removed target still in the state")
	}
	if _, ok := s.Targets["web2"]; !ok {
		t.Error("added target not in the state")
	}
}

// A target that hangs delays neither the other targets, nor later cycles, nor the metrics;
// stopping the daemon ends it.
func TestHungTarget(t *testing.T) {
	f := newFixture(t, `
[[target]]
name = "hung"
profiles = ["hang"]
timeout = "60s"
[[profile]]
name = "hang"
[[profile.source]]
name = "cmd/sleep"
command = ["sleep", "120"]
`)
	d := f.daemon(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	h := handler(t, d.State)
	deadline := time.Now().Add(15 * time.Second)
	var held int
	for time.Now().Before(deadline) {
		start := time.Now()
		code, body := scrape(t, h)
		if el := time.Since(start); code != 200 || el > time.Second {
			t.Fatalf("scrape: %d after %s", code, el)
		}
		if id, err := f.st.Latest(t.Context(), "web1"); err == nil {
			if hd, err := f.st.Held(t.Context(), id); err == nil {
				held = hd.Count
			}
		}
		if held >= 3 {
			if !strings.Contains(body, `hardtrail_target_up{target="web1"} 1`) || strings.Contains(body, `hardtrail_target_up{target="hung"}`) {
				t.Errorf("metrics while hung:\n%s", ours(body))
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if held < 3 {
		t.Fatalf("web1 was captured unchanged only %d times while the other target hung", held)
	}
	if d.State().Targets["hung"].Collected {
		t.Fatal("the hung target finished")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel while a target hung")
	}
	if rep, err := f.st.Verify(t.Context()); err != nil || len(rep.Problems) != 0 {
		t.Errorf("verify %+v %v", rep, err)
	}
	if _, err := f.st.Latest(t.Context(), "hung"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the abandoned capture stored something: %v", err)
	}
}

func TestDrifts(t *testing.T) {
	e := func(name, sha, unavailable string) store.ArtifactEntry {
		return store.ArtifactEntry{Name: name, SHA256: sha, Unavailable: unavailable}
	}
	base := &store.Manifest{Artifacts: []store.ArtifactEntry{e("a", "1", ""), e("b", "2", ""), e("c", "", "not installed"), e("gone", "4", "")}}
	newest := &store.Manifest{Artifacts: []store.ArtifactEntry{e("a", "1", ""), e("b", "3", ""), e("c", "", "permission denied"), e("new", "5", "")}}
	got := fmt.Sprint(Drifts(base, newest))
	if want := "[{a false} {b true} {c true} {gone true} {new true}]"; got != want {
		t.Errorf("Drifts = %s, want %s", got, want)
	}
}
