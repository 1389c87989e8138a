// Package incident computes an incident's state from the store: per target, the before and
// after snapshots, what the remediation changed, whether the newest snapshot still holds it,
// the rules linked to the incident and whether they prove the fix.
package incident

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hardtrail/hardtrail/agent/fleet"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/diff"
	"github.com/hardtrail/hardtrail/rules"
)

// Status of an incident on a target.
type Status string

// Statuses, from the contract: exactly one holds per incident and target.
const (
	// Open: a before snapshot, no after yet (or a newer before than the newest after).
	Open Status = "open"
	// Remediated: an after snapshot is stored, but the evidence does not prove the fix (the
	// cause says what is missing).
	Remediated Status = "remediated"
	// Verified: proven. The hardened artifacts differ between before and after, a linked
	// rule fails (or errs) on before and passes on after, every linked rule that applies
	// passes on the newest snapshot, and nothing hardened is reverted.
	Verified Status = "verified"
	// Regressed: a hardened change was reverted, or a linked rule fails on the newest snapshot.
	Regressed Status = "regressed"
)

// Statuses lists every status in the order of the contract.
var Statuses = []Status{Open, Remediated, Verified, Regressed}

// rank orders statuses from best to worst, for an incident spanning several targets.
func rank(s Status) int {
	return map[Status]int{Verified: 0, Remediated: 1, Open: 2, Regressed: 3}[s]
}

// Artifact is one artifact's part in the incident on one target.
type Artifact struct {
	Name string `json:"name"`
	// Hardened is true when the remediation changed it (before and after differ).
	Hardened bool `json:"hardened"`
	// Added and Removed count the lines the remediation changed.
	Added   int `json:"added"`
	Removed int `json:"removed"`
	// State against the newest snapshot: holding, drifted, regressed, or not-captured.
	State string `json:"state"`
	// Regression holds the reverted lines and the drift when State is drifted or regressed.
	Regression *diff.Report `json:"regression,omitempty"`
	Note       string       `json:"note,omitempty"`
}

// Artifact states beside those of diff.Report.
const (
	NotCaptured = "not-captured"
	Binary      = "binary"
)

// Target is the incident's state on one target.
type Target struct {
	Target string      `json:"target"`
	Status Status      `json:"status"`
	Cause  string      `json:"cause"`
	Before *store.Link `json:"before,omitempty"`
	After  *store.Link `json:"after,omitempty"`
	// Latest is the newest snapshot of the target, against which regression is judged.
	Latest    string     `json:"latest"`
	Artifacts []Artifact `json:"artifacts"`
	// Rules linked to the incident, evaluated on the before, after and newest snapshots.
	RulesBefore []rules.Result `json:"rules_before,omitempty"`
	RulesAfter  []rules.Result `json:"rules_after,omitempty"`
	RulesLatest []rules.Result `json:"rules_latest,omitempty"`
}

// State is an incident's state over all its targets.
type State struct {
	Incident string `json:"incident"`
	Status   Status `json:"status"`
	// Links are every link of the incident, voided ones included (Voids says which).
	Links   []store.Link `json:"links"`
	Voids   []Void       `json:"voids,omitempty"`
	Targets []Target     `json:"targets"`
	// Records are the incident's own records (open, notes, close, voids) in order.
	Records []store.Record `json:"records,omitempty"`
	// Closed is the newest close record; Reopened is true when the incident was closed but is
	// no longer verified (a regression reopens it).
	Closed   *store.Record `json:"closed,omitempty"`
	Reopened bool          `json:"reopened,omitempty"`
	Rules    RulesInfo     `json:"rules"`

	linked *rules.Set
}

// LinkedSet is the set of the rules linked to the incident that the state was judged by (nil
// when none is).
func (s *State) LinkedSet() *rules.Set { return s.linked }

// Histories computes the history of every target with a before and an after (nil entries
// for the others), in the order of s.Targets.
func (s *State) Histories(ctx context.Context, st *store.Store, now time.Time) ([]*History, error) {
	out := make([]*History, len(s.Targets))
	for i, t := range s.Targets {
		h, err := TargetHistory(ctx, st, s, t.Target, s.linked, now)
		if err != nil {
			return nil, fmt.Errorf("incident %s, target %s: history: %w", s.Incident, t.Target, err)
		}
		out[i] = h
	}
	return out, nil
}

// Void is a link withdrawn by a void record: the link stays listed, with who voided it and why.
type Void struct {
	Link   string       `json:"link"`
	Reason string       `json:"reason"`
	By     string       `json:"by"`
	Who    *store.Actor `json:"who,omitempty"`
	At     time.Time    `json:"at"`
	Record string       `json:"record"`
}

// Voided returns the void of the link with that ID, if any.
func (s *State) Voided(link string) (*Void, bool) {
	for i := range s.Voids {
		if s.Voids[i].Link == link {
			return &s.Voids[i], true
		}
	}
	return nil, false
}

// Title is the incident's title from its open record, if it was opened.
func (s *State) Title() string {
	for _, r := range s.Records {
		if r.Kind == store.KindOpen {
			return r.Title
		}
	}
	return ""
}

// Analyse computes the incident's state from the store. The rules linked to the incident
// (rules whose incidents list names it, in any case) come from the store: the newest rule set
// evaluated on the incident's targets that links any rule to it. set supplies them only while
// the store holds none, so that the status does not depend on the rules given later.
func Analyse(ctx context.Context, st *store.Store, id string, set *rules.Set, now time.Time) (*State, error) {
	if err := store.CheckIncidentID(id); err != nil {
		return nil, err
	}
	id, err := st.CanonicalIncident(ctx, id)
	if err != nil {
		return nil, err
	}
	all, err := st.Links(ctx, id)
	if err != nil {
		return nil, err
	}
	recs, err := st.Records(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 && len(recs) == 0 {
		return nil, store.NotFoundf("unknown incident %s: no snapshot is tagged with it (tag one with hardtrail tag REF --incident %s --phase before)", id, id)
	}
	s := &State{Incident: id, Links: all, Records: recs}
	voided := map[string]bool{}
	for i, r := range recs {
		switch r.Kind {
		case store.KindVoid:
			s.Voids = append(s.Voids, Void{Link: r.Link, Reason: r.Text, By: r.By, Who: r.Who, At: r.At, Record: r.ID})
			voided[r.Link] = true
		case store.KindClose:
			s.Closed = &recs[i]
		}
	}
	var links []store.Link
	for _, l := range all {
		if !voided[l.ID] {
			links = append(links, l)
		}
	}
	byTarget := map[string][2]*store.Link{}
	var targets []string
	for i := range links {
		l := &links[i]
		pair, seen := byTarget[l.Target]
		if !seen {
			targets = append(targets, l.Target)
		}
		if l.Phase == store.Before {
			pair[0] = l
		} else {
			pair[1] = l
		}
		byTarget[l.Target] = pair
	}
	sort.Strings(targets)
	linked, info, err := LinkedRules(ctx, st, id, targets, set)
	if err != nil {
		return nil, fmt.Errorf("incident %s: %w", id, err)
	}
	s.Rules, s.linked = *info, linked
	for _, t := range targets {
		pair := byTarget[t]
		ts, err := analyseTarget(ctx, st, t, pair[0], pair[1], linked, now)
		if err != nil {
			return nil, fmt.Errorf("incident %s, target %s: %w", id, t, err)
		}
		s.Targets = append(s.Targets, *ts)
	}
	if len(s.Targets) == 0 {
		s.Status = Open
		return s, nil
	}
	s.Status = s.Targets[0].Status
	for _, t := range s.Targets[1:] {
		if rank(t.Status) > rank(s.Status) {
			s.Status = t.Status
		}
	}
	s.Reopened = s.Closed != nil && s.Status != Verified
	return s, nil
}

// Linked returns the rules of set that name the incident (regardless of case), as a set of
// their own.
func Linked(set *rules.Set, id string) *rules.Set {
	if set == nil {
		return nil
	}
	return set.Filter(func(r *rules.Rule) bool {
		return slices.ContainsFunc(r.Incidents, func(i string) bool { return strings.EqualFold(i, id) })
	})
}

func analyseTarget(ctx context.Context, st *store.Store, target string, before, after *store.Link, linked *rules.Set, now time.Time) (*Target, error) {
	ts := &Target{Target: target, Before: before, After: after}
	latest, err := st.Latest(ctx, target)
	if err != nil {
		return nil, err
	}
	ts.Latest = latest
	ids := []string{latest}
	for _, l := range []*store.Link{before, after} {
		if l != nil {
			ids = append(ids, l.Snapshot)
		}
	}
	snaps, err := st.GetMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	var bSnap, aSnap *store.Snapshot
	if before != nil {
		bSnap = snaps[before.Snapshot]
	}
	if after != nil {
		aSnap = snaps[after.Snapshot]
	}
	lSnap := snaps[latest]
	var hashes []string
	for _, sn := range []*store.Snapshot{bSnap, aSnap, lSnap} {
		if sn != nil {
			for _, e := range sn.Manifest.Artifacts {
				hashes = append(hashes, e.SHA256)
			}
		}
	}
	if err := st.Prefetch(ctx, hashes); err != nil {
		return nil, err
	}
	if linked != nil && linked.Len() > 0 {
		eval := func(sn *store.Snapshot) ([]rules.Result, error) {
			if sn == nil {
				return nil, nil
			}
			f, err := fleet.Facts(ctx, st, sn)
			if err != nil {
				return nil, err
			}
			return linked.Evaluate(ctx, f, now), nil
		}
		if ts.RulesBefore, err = eval(bSnap); err != nil {
			return nil, err
		}
		if ts.RulesAfter, err = eval(aSnap); err != nil {
			return nil, err
		}
		// The newest snapshot often captured what the after one did: judged alike.
		if aSnap != nil && lSnap != nil && fleet.FactsKey(&aSnap.Manifest) == fleet.FactsKey(&lSnap.Manifest) {
			ts.RulesLatest = slices.Clone(ts.RulesAfter)
		} else if ts.RulesLatest, err = eval(lSnap); err != nil {
			return nil, err
		}
	}
	switch {
	case after == nil:
		ts.Status, ts.Cause = Open, "no after snapshot yet"
		return ts, nil
	case before != nil && before.Seq > after.Seq:
		ts.Status, ts.Cause = Open, "a before snapshot was tagged after the newest after snapshot"
		return ts, nil
	}
	var reverted []string
	if bSnap != nil {
		arts, err := compare(ctx, st, bSnap, aSnap, lSnap)
		if err != nil {
			return nil, err
		}
		ts.Artifacts = arts
		for _, a := range arts {
			if a.State == string(diff.Regressed) {
				reverted = append(reverted, a.Name)
			}
		}
	}
	ts.Status, ts.Cause = judge(ts, before, after, reverted)
	return ts, nil
}

// judge decides the status of a target with an after snapshot: regressed when a hardened
// change is reverted or a linked rule fails on the newest snapshot; verified only when the
// evidence proves the fix; else remediated, saying what the proof lacks.
func judge(ts *Target, before, after *store.Link, reverted []string) (Status, string) {
	// Rules that do not apply to this target (skip) neither prove nor disprove the fix here.
	var failing, unproven []string
	passing, applicable := 0, 0
	for _, r := range ts.RulesLatest {
		if r.Outcome == rules.Skip {
			continue
		}
		applicable++
		switch r.Outcome {
		case rules.Fail:
			failing = append(failing, r.Rule)
		case rules.Pass, rules.Waived:
			passing++
		default:
			unproven = append(unproven, r.Rule)
		}
	}
	if len(reverted) > 0 || len(failing) > 0 {
		var causes []string
		if len(reverted) > 0 {
			causes = append(causes, fmt.Sprintf("hardened change reverted in %v", reverted))
		}
		if len(failing) > 0 {
			causes = append(causes, fmt.Sprintf("linked rules failing: %v", failing))
		}
		return Regressed, strings.Join(causes, "; ")
	}
	var why []string
	switch {
	case before == nil:
		why = append(why, "no before snapshot is tagged, so nothing shows the weakness the fix removed")
	case before.Snapshot == after.Snapshot:
		why = append(why, "the before and after links name the same snapshot, so nothing was changed")
	case !slices.ContainsFunc(ts.Artifacts, func(a Artifact) bool { return a.Hardened }):
		why = append(why, "the before and after snapshots hold the same configuration, so nothing was changed")
	}
	provers := 0
	failedBefore := 0
	onBefore := map[string]rules.Outcome{}
	for _, r := range ts.RulesBefore {
		onBefore[r.Rule] = r.Outcome
		if r.Outcome == rules.Fail || r.Outcome == rules.Error {
			failedBefore++
		}
	}
	for _, r := range ts.RulesAfter {
		if o := onBefore[r.Rule]; (o == rules.Fail || o == rules.Error) && r.Outcome == rules.Pass {
			provers++
		}
	}
	switch {
	case applicable == 0 && len(ts.RulesLatest) > 0:
		why = append(why, "no linked rule applies to this target, so no test proves the fix here")
	case applicable == 0:
		why = append(why, "no rule is linked to the incident, so no test proves the fix")
	case before == nil:
	case failedBefore == 0:
		why = append(why, "no linked rule failed before the fix, so the test proves nothing")
	case provers == 0:
		why = append(why, "no linked rule that failed before passes after the fix")
	}
	if len(unproven) > 0 {
		why = append(why, fmt.Sprintf("linked rules %v could not be evaluated on the newest snapshot", unproven))
	}
	if len(why) > 0 {
		return Remediated, "not proven: " + strings.Join(why, "; ")
	}
	return Verified, fmt.Sprintf("proven: %d of %d linked rules failed before and pass after, all %d pass on the newest snapshot, nothing hardened is reverted",
		provers, applicable, passing)
}

// compare walks every artifact of the before, after and newest snapshots.
func compare(ctx context.Context, st *store.Store, b, a, l *store.Snapshot) ([]Artifact, error) {
	names := map[string]bool{}
	for _, sn := range []*store.Snapshot{b, a, l} {
		for _, e := range sn.Manifest.Artifacts {
			names[e.Name] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	content := func(sn *store.Snapshot, name string) ([]byte, bool, string, error) {
		e, ok := sn.Entry(name)
		if !ok {
			return nil, true, "", nil // absent: an empty artifact for comparison
		}
		if e.Unavailable != "" {
			return nil, false, e.Unavailable, nil
		}
		c, err := st.Blob(ctx, e.SHA256)
		return c, true, "", err
	}
	var out []Artifact
	for _, n := range sorted {
		// The same content, captured in all three, is untouched by the remediation and
		// unchanged since: nothing to read.
		be, bin := b.Entry(n)
		ae, ain := a.Entry(n)
		le, lin := l.Entry(n)
		if bin && ain && lin && be.Unavailable == "" && ae.Unavailable == "" && le.Unavailable == "" && be.SHA256 == ae.SHA256 && ae.SHA256 == le.SHA256 {
			continue
		}
		bc, bok, bwhy, err := content(b, n)
		if err != nil {
			return nil, err
		}
		ac, aok, awhy, err := content(a, n)
		if err != nil {
			return nil, err
		}
		lc, lok, lwhy, err := content(l, n)
		if err != nil {
			return nil, err
		}
		art := Artifact{Name: n}
		switch {
		case !bok || !aok:
			art.State, art.Note = NotCaptured, "not captured before or after: "+bwhy+awhy
			if bytes.Equal(bc, ac) && bwhy == awhy {
				continue
			}
			out = append(out, art)
			continue
		case !lok:
			art.Hardened = !bytes.Equal(bc, ac)
			art.State, art.Note = NotCaptured, "not captured in the newest snapshot: "+lwhy
			if art.Hardened {
				out = append(out, art)
			}
			continue
		}
		art.Hardened = !bytes.Equal(bc, ac)
		if diff.IsBinary(bc) || diff.IsBinary(ac) || diff.IsBinary(lc) {
			art.State = Binary
			switch {
			case art.Hardened && bytes.Equal(lc, bc):
				art.State, art.Note = string(diff.Regressed), "binary content is back to its before state"
			case !bytes.Equal(lc, ac):
				art.State, art.Note = string(diff.Drifted), "binary content differs from the after state"
			default:
				art.State = string(diff.Holding)
			}
			if art.Hardened || art.State != string(diff.Holding) {
				out = append(out, art)
			}
			continue
		}
		if art.Hardened {
			art.Added, art.Removed = diff.Stat(bc, ac)
		}
		if !art.Hardened && bytes.Equal(ac, lc) {
			continue // untouched by the remediation and unchanged since
		}
		rep := diff.Regression(bc, ac, lc)
		art.State = string(rep.Status)
		if rep.Status != diff.Holding {
			art.Regression = &rep
		}
		out = append(out, art)
	}
	return out, nil
}
