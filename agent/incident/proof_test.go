package incident

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/fleet"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/rules"
)

func ruleSet(t *testing.T, src string) *rules.Set {
	t.Helper()
	p := filepath.Join(t.TempDir(), "r.toml")
	if err := writeFile(p, src); err != nil {
		t.Fatal(err)
	}
	s, err := rules.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// passesAlways is linked to INC-1 but passes on the weak config too.
const passesAlways = `[[rule]]
id = "INC-1-port"
title = "sshd listens on 22"
severity = "low"
controls = ["ISO27001:2022 A.8.9"]
incidents = ["inc-1"]
[rule.file]
path = "sshd/config"
present = '^Port 22'
`

func TestSameSnapshotBothPhasesRefused(t *testing.T) {
	f := newFixture(t)
	id := f.snap("web1", map[string]string{"sshd/config": hard})
	f.tag("INC-1", store.Before, id)
	_, err := f.st.Tag(t.Context(), store.Link{Incident: "INC-1", Phase: store.After, Snapshot: id, By: "tester"})
	if !errors.Is(err, store.ErrSamePhases) {
		t.Fatalf("tag the before snapshot as after: %v, want ErrSamePhases", err)
	}
}

func TestProofNeedsARuleThatFailedBefore(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	f.tag("INC-1", store.Before, f.snap("web1", map[string]string{"sshd/config": weak}))
	f.tag("INC-1", store.After, f.snap("web1", map[string]string{"sshd/config": hard}))
	s, err := Analyse(ctx, f.st, "INC-1", ruleSet(t, passesAlways), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != Remediated || !strings.Contains(s.Targets[0].Cause, "no linked rule failed before the fix, so the test proves nothing") {
		t.Errorf("status %s, cause %q", s.Status, s.Targets[0].Cause)
	}
	// The same configuration before and after proves nothing, whatever the rules say.
	g := newFixture(t)
	g.tag("INC-1", store.Before, g.snap("web1", map[string]string{"sshd/config": weak}))
	g.tag("INC-1", store.After, g.snap("web1", map[string]string{"sshd/config": weak, "x": ""}))
	g.snap("web1", map[string]string{"sshd/config": weak})
	s, _ = Analyse(ctx, g.st, "INC-1", nil, time.Now())
	if s.Status != Remediated || !strings.Contains(s.Targets[0].Cause, "no rule is linked") {
		t.Errorf("no rules: %s %q", s.Status, s.Targets[0].Cause)
	}
}

func TestLinkedRulesComeFromTheStore(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	set := linkedRules(t)
	b := f.snap("web1", map[string]string{"sshd/config": weak})
	a := f.snap("web1", map[string]string{"sshd/config": hard})
	f.tag("INC-1", store.Before, b)
	f.tag("INC-1", store.After, a)
	if s, _ := Analyse(ctx, f.st, "INC-1", nil, time.Now()); s.Status != Remediated {
		t.Fatalf("before any evaluation, without rules: %s", s.Status)
	}
	snap, _ := f.st.Get(ctx, a)
	if _, err := fleet.Check(ctx, f.st, snap, set, time.Now()); err != nil {
		t.Fatal(err)
	}
	with, _ := Analyse(ctx, f.st, "INC-1", set, time.Now())
	without, _ := Analyse(ctx, f.st, "INC-1", nil, time.Now())
	other, _ := Analyse(ctx, f.st, "INC-1", ruleSet(t, passesAlways), time.Now())
	for _, s := range []*State{with, without, other} {
		if s.Status != Verified || s.Rules.From != FromStore || s.Rules.SetDigest != set.Digest() {
			t.Errorf("status %s from %s (%s), want verified from the store", s.Status, s.Rules.From, s.Targets[0].Cause)
		}
	}
	if len(other.Rules.Given) == 0 {
		t.Error("rules given that differ from the store's are not reported")
	}
	// A changed linked rule, once evaluated, is visible with old and new digest.
	changed := ruleSet(t, strings.Replace(string(set.Texts()[0].Data), "root cannot log in", "root may not log in", 1))
	if _, err := fleet.Check(ctx, f.st, snap, changed, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	s, _ := Analyse(ctx, f.st, "INC-1", nil, time.Now())
	if len(s.Rules.Changed) != 1 || s.Rules.Changed[0].Old == "" || s.Rules.Changed[0].New == "" || s.Rules.Changed[0].Old == s.Rules.Changed[0].New {
		t.Errorf("changed rules: %+v", s.Rules.Changed)
	}
	if len(s.Rules.Files) != 1 || !strings.Contains(string(s.Rules.Files[0].Text), "root may not log in") {
		t.Errorf("linked files: %+v", s.Rules.Files)
	}
}

func TestRecordCloseVoidAndCase(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	set := linkedRules(t)
	if _, err := f.st.AddRecord(ctx, store.Record{Incident: "INC-1", Kind: store.KindOpen, Title: "root login", By: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.AddRecord(ctx, store.Record{Incident: "inc-1", Kind: store.KindNote, Text: "x", By: "alice"}); !errors.Is(err, store.ErrCaseClash) {
		t.Errorf("note on inc-1: %v, want ErrCaseClash", err)
	}
	if _, err := f.st.Tag(ctx, store.Link{Incident: "inc-1", Phase: store.Before, Snapshot: f.snap("web1", map[string]string{"sshd/config": weak}), By: "x"}); !errors.Is(err, store.ErrCaseClash) {
		t.Errorf("tag inc-1: %v, want ErrCaseClash", err)
	}
	f.tag("INC-1", store.Before, f.snap("web1", map[string]string{"sshd/config": weak}))
	wrong := f.snap("web1", map[string]string{"sshd/config": weak + "# x\n"})
	l, err := f.st.Tag(ctx, store.Link{Incident: "INC-1", Phase: store.After, Snapshot: wrong, By: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.AddRecord(ctx, store.Record{Incident: "INC-1", Kind: store.KindVoid, Link: l.ID, Text: "tagged the wrong snapshot", By: "bob"}); err != nil {
		t.Fatal(err)
	}
	f.tag("INC-1", store.After, f.snap("web1", map[string]string{"sshd/config": hard}))
	s, err := Analyse(ctx, f.st, "inc-1", set, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := s.Voided(l.ID); !ok || v.Reason != "tagged the wrong snapshot" || v.By != "bob" || len(s.Links) != 3 {
		t.Errorf("void: %+v %v, %d links", v, ok, len(s.Links))
	}
	if s.Status != Verified || s.Incident != "INC-1" || s.Title() != "root login" {
		t.Fatalf("status %s (%s), incident %s", s.Status, s.Targets[0].Cause, s.Incident)
	}
	if _, err := f.st.AddRecord(ctx, store.Record{Incident: "INC-1", Kind: store.KindClose, Approver: "carol", Status: string(s.Status), By: "carol"}); err != nil {
		t.Fatal(err)
	}
	f.snap("web1", map[string]string{"sshd/config": weak})
	s, _ = Analyse(ctx, f.st, "INC-1", set, time.Now())
	if s.Status != Regressed || s.Closed == nil || !s.Reopened {
		t.Errorf("closed then regressed: status %s, closed %v, reopened %v", s.Status, s.Closed != nil, s.Reopened)
	}
	rep, err := f.st.Verify(ctx)
	if err != nil || len(rep.Problems) != 0 || rep.Records["incident_records"] != 3 {
		t.Errorf("store verify: %+v %v", rep, err)
	}
}

func TestHistoryEpisodes(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	set := linkedRules(t)
	f.tag("INC-1", store.Before, f.snap("web1", map[string]string{"sshd/config": weak}))
	f.tag("INC-1", store.After, f.snap("web1", map[string]string{"sshd/config": hard}))
	for range 3 {
		f.snap("web1", map[string]string{"sshd/config": weak})
		f.snap("web1", map[string]string{"sshd/config": hard})
	}
	s, err := Analyse(ctx, f.st, "INC-1", set, time.Now())
	if err != nil || s.Status != Verified {
		t.Fatalf("%v %v", s.Status, err)
	}
	hs, err := s.Histories(ctx, f.st, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h := hs[0]
	if len(h.Episodes) != 3 || h.Snapshots != 7 {
		t.Fatalf("episodes %d, snapshots %d", len(h.Episodes), h.Snapshots)
	}
	for _, e := range h.Episodes {
		if e.Restored == nil || e.RestoredBy == "" || len(e.Reverted) != 2 || !strings.Contains(e.Reverted[0], "PermitRootLogin yes") || len(e.RulesFailed) != 1 {
			t.Errorf("episode %+v", e)
		}
	}
	if hl := Headline(s.Status, hs); !strings.HasPrefix(hl, "verified now; regressed 3 times since the fix, ") || !strings.Contains(hl, "last restored ") {
		t.Errorf("headline %q", hl)
	}
}

func TestHeadline(t *testing.T) {
	at := time.Date(2026, 12, 1, 20, 31, 5, 0, time.UTC)
	ep := func(d time.Duration, restored bool) Episode {
		e := Episode{FirstSeen: at.Add(-d), Duration: d}
		if restored {
			e.Restored = &at
		}
		return e
	}
	for _, tc := range []struct {
		status Status
		hs     []*History
		want   string
	}{
		{Open, []*History{nil}, "open: no target has a fix (before and after) to hold yet"},
		{Verified, []*History{{}}, "verified now; never regressed since the fix"},
		{Verified, []*History{{Episodes: []Episode{ep(20*time.Second, true), ep(20*time.Second, true), ep(time.Second, true)}, Regressed: 41 * time.Second}},
			"verified now; regressed 3 times since the fix, 41 s in total; last restored 2026-12-01 20:31Z"},
		{Regressed, []*History{nil, {Episodes: []Episode{ep(0, false)}}}, "regressed now; regressed once since the fix, 0 s in total; still regressed"},
	} {
		if got := Headline(tc.status, tc.hs); got != tc.want {
			t.Errorf("Headline = %q, want %q", got, tc.want)
		}
	}
}
