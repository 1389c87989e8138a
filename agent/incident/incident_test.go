package incident

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/rules"

	_ "github.com/hardtrail/hardtrail/internal/testutil" // the -update flag every test binary takes
)

const weak = "Port 22\nPermitRootLogin yes\nPasswordAuthentication yes\nX11Forwarding yes\nUsePAM yes\n"
const hard = "Port 22\nPermitRootLogin no\nPasswordAuthentication yes\nX11Forwarding yes\nUsePAM yes\n"

type fixture struct {
	t  *testing.T
	st *store.Store
}

func newFixture(t *testing.T) *fixture {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &fixture{t, st}
}

func (f *fixture) snap(target string, arts map[string]string) string {
	f.t.Helper()
	m := &store.Manifest{Target: target, Transport: "local", Started: time.Now(), TakenAt: time.Now(), ToolVersion: "test"}
	var cs [][]byte
	for n, c := range arts {
		m.Artifacts = append(m.Artifacts, store.ArtifactEntry{Name: n, Source: n})
		cs = append(cs, []byte(c))
	}
	s, err := f.st.Save(context.Background(), m, cs)
	if err != nil {
		f.t.Fatal(err)
	}
	return s.ID
}

func (f *fixture) tag(inc, phase, id string) {
	f.t.Helper()
	if _, err := f.st.Tag(context.Background(), store.Link{Incident: inc, Phase: phase, Snapshot: id, By: "tester"}); err != nil {
		f.t.Fatal(err)
	}
}

func linkedRules(t *testing.T) *rules.Set {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.toml")
	src := `[[rule]]
id = "INC-1-root-login"
title = "root cannot log in"
severity = "high"
controls = ["ISO27001:2022 A.8.5"]
incidents = ["INC-1"]
[rule.file]
path = "sshd/config"
absent = '^PermitRootLogin yes'
`
	if err := writeFile(p, src); err != nil {
		t.Fatal(err)
	}
	s, err := rules.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStatusLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	set := linkedRules(t)
	other := "kernel.x = 1\n"
	f.tag("INC-1", store.Before, f.snap("web1", map[string]string{"sshd/config": weak, "sysctl/all": other}))
	s, err := Analyse(ctx, f.st, "INC-1", set, time.Now())
	if err != nil || s.Status != Open {
		t.Fatalf("before only: %v %v", s.Status, err)
	}
	after := f.snap("web1", map[string]string{"sshd/config": hard, "sysctl/all": other})
	f.tag("INC-1", store.After, after)
	s, _ = Analyse(ctx, f.st, "INC-1", set, time.Now())
	if s.Status != Verified {
		t.Fatalf("after with passing linked rule: %s (%s)", s.Status, s.Targets[0].Cause)
	}
	if s2, _ := Analyse(ctx, f.st, "INC-1", nil, time.Now()); s2.Status != Remediated {
		t.Errorf("after with no linked rules: %s", s2.Status)
	}
	tgt := s.Targets[0]
	if len(tgt.Artifacts) != 1 || tgt.Artifacts[0].Name != "sshd/config" || !tgt.Artifacts[0].Hardened || tgt.Artifacts[0].State != "holding" {
		t.Errorf("artifacts: %+v", tgt.Artifacts)
	}
	if r := tgt.RulesBefore; len(r) != 1 || r[0].Outcome != rules.Fail {
		t.Errorf("linked rule before: %+v", r)
	}
	if r := tgt.RulesAfter; len(r) != 1 || r[0].Outcome != rules.Pass {
		t.Errorf("linked rule after: %+v", r)
	}

	// An unrelated line of the same artifact changes: drifted, not regressed.
	f.snap("web1", map[string]string{"sshd/config": strings.Replace(hard, "X11Forwarding yes", "X11Forwarding no", 1), "sysctl/all": other})
	s, _ = Analyse(ctx, f.st, "INC-1", set, time.Now())
	a := s.Targets[0].Artifacts[0]
	if s.Status != Verified || a.State != "drifted" || len(a.Regression.Drift) != 1 {
		t.Fatalf("benign drift: status %s, artifact %+v", s.Status, a)
	}

	// The hardened line is reverted: regressed, naming that line.
	f.snap("web1", map[string]string{"sshd/config": strings.Replace(weak, "X11Forwarding yes", "X11Forwarding no", 1), "sysctl/all": other})
	s, _ = Analyse(ctx, f.st, "INC-1", set, time.Now())
	a = s.Targets[0].Artifacts[0]
	if s.Status != Regressed || a.State != "regressed" {
		t.Fatalf("revert: status %s, artifact %+v", s.Status, a)
	}
	var back []string
	for _, h := range a.Regression.Hardened {
		for _, l := range h.Back {
			back = append(back, l.Text)
		}
	}
	if len(back) != 1 || back[0] != "PermitRootLogin yes" {
		t.Errorf("reverted lines: %v", back)
	}
	if !strings.Contains(s.Targets[0].Cause, "sshd/config") || !strings.Contains(s.Targets[0].Cause, "INC-1-root-login") {
		t.Errorf("cause: %s", s.Targets[0].Cause)
	}
	// Without rules, the reverted hunk alone is a regression.
	if s2, _ := Analyse(ctx, f.st, "INC-1", nil, time.Now()); s2.Status != Regressed {
		t.Errorf("revert without rules: %s", s2.Status)
	}

	// A new before after the after reopens the incident.
	latest, _ := f.st.Latest(ctx, "web1")
	f.tag("INC-1", store.Before, latest)
	if s, _ = Analyse(ctx, f.st, "INC-1", set, time.Now()); s.Status != Open {
		t.Errorf("reopened: %s", s.Status)
	}
}

func TestSeveralTargetsWorstWins(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	for _, tg := range []string{"web1", "web2"} {
		f.tag("INC-2", store.Before, f.snap(tg, map[string]string{"sshd/config": weak}))
		f.tag("INC-2", store.After, f.snap(tg, map[string]string{"sshd/config": hard}))
	}
	f.snap("web2", map[string]string{"sshd/config": weak})
	s, err := Analyse(ctx, f.st, "INC-2", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != Regressed || s.Targets[0].Status != Remediated || s.Targets[1].Status != Regressed {
		t.Errorf("status %s, targets %s %s", s.Status, s.Targets[0].Status, s.Targets[1].Status)
	}
	if _, err := Analyse(ctx, f.st, "INC-404", nil, time.Now()); err == nil || !strings.Contains(err.Error(), "unknown incident INC-404") {
		t.Errorf("unknown incident: %v", err)
	}
	if _, err := Analyse(ctx, f.st, "not valid", nil, time.Now()); err == nil {
		t.Error("invalid incident ID accepted")
	}
}

func TestAddedAndRemovedArtifacts(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	f.tag("INC-3", store.Before, f.snap("web1", map[string]string{"sshd/config/d/10-weak.conf": "PermitRootLogin yes\n"}))
	f.tag("INC-3", store.After, f.snap("web1", map[string]string{"sshd/config/d/50-hard.conf": "PasswordAuthentication no\n"}))
	s, _ := Analyse(ctx, f.st, "INC-3", nil, time.Now())
	if s.Status != Remediated {
		t.Fatalf("status %s: %+v", s.Status, s.Targets[0].Artifacts)
	}
	// The removed weak file comes back: regressed.
	f.snap("web1", map[string]string{"sshd/config/d/10-weak.conf": "PermitRootLogin yes\n", "sshd/config/d/50-hard.conf": "PasswordAuthentication no\n"})
	s, _ = Analyse(ctx, f.st, "INC-3", nil, time.Now())
	if s.Status != Regressed {
		t.Fatalf("removed file back: %s %+v", s.Status, s.Targets[0].Artifacts)
	}
}
