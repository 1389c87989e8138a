// Package incident computes an incident's state from its links: per target, the before and
// after snapshots, what the remediation changed, whether the newest snapshot still holds it,
// and the results of the rules linked to the incident.
package incident

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
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
	// Remediated: an after snapshot is stored, and no linked rule proves it yet.
	Remediated Status = "remediated"
	// Verified: after stored, nothing hardened reverted, and every rule linked to the incident
	// that applies to the target (at least one) passes on the newest snapshot.
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
	Incident string       `json:"incident"`
	Status   Status       `json:"status"`
	Links    []store.Link `json:"links"`
	Targets  []Target     `json:"targets"`
}

// Analyse computes the incident's state from the store. set, when not nil, supplies the rules
// linked to the incident (rules whose incidents list names it).
func Analyse(ctx context.Context, st *store.Store, id string, set *rules.Set, now time.Time) (*State, error) {
	if err := store.CheckIncidentID(id); err != nil {
		return nil, err
	}
	links, err := st.Links(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(links) == 0 {
		return nil, store.NotFoundf("unknown incident %s: no snapshot is tagged with it (tag one with hardtrail tag REF --incident %s --phase before)", id, id)
	}
	linked := Linked(set, id)
	s := &State{Incident: id, Links: links}
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
	for _, t := range targets {
		pair := byTarget[t]
		ts, err := analyseTarget(ctx, st, t, pair[0], pair[1], linked, now)
		if err != nil {
			return nil, fmt.Errorf("incident %s, target %s: %w", id, t, err)
		}
		s.Targets = append(s.Targets, *ts)
	}
	s.Status = s.Targets[0].Status
	for _, t := range s.Targets[1:] {
		if rank(t.Status) > rank(s.Status) {
			s.Status = t.Status
		}
	}
	return s, nil
}

// Linked returns the rules of set that name the incident, as a set of their own.
func Linked(set *rules.Set, id string) *rules.Set {
	if set == nil {
		return nil
	}
	return set.Filter(func(r *rules.Rule) bool { return slices.Contains(r.Incidents, id) })
}

func analyseTarget(ctx context.Context, st *store.Store, target string, before, after *store.Link, linked *rules.Set, now time.Time) (*Target, error) {
	ts := &Target{Target: target, Before: before, After: after}
	latest, err := st.Latest(ctx, target)
	if err != nil {
		return nil, err
	}
	ts.Latest = latest
	load := func(id string) (*store.Snapshot, error) {
		if id == "" {
			return nil, nil
		}
		return st.Get(ctx, id)
	}
	var bSnap, aSnap *store.Snapshot
	if before != nil {
		if bSnap, err = load(before.Snapshot); err != nil {
			return nil, err
		}
	}
	if after != nil {
		if aSnap, err = load(after.Snapshot); err != nil {
			return nil, err
		}
	}
	lSnap, err := load(latest)
	if err != nil {
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
		if ts.RulesLatest, err = eval(lSnap); err != nil {
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
	// Rules that do not apply to this target (skip) neither prove nor disprove the fix here.
	var failing []string
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
		}
	}
	switch {
	case len(reverted) > 0 || len(failing) > 0:
		ts.Status = Regressed
		ts.Cause = ""
		if len(reverted) > 0 {
			ts.Cause = fmt.Sprintf("hardened change reverted in %v", reverted)
		}
		if len(failing) > 0 {
			if ts.Cause != "" {
				ts.Cause += "; "
			}
			ts.Cause += fmt.Sprintf("linked rules failing: %v", failing)
		}
	case applicable > 0 && passing == applicable:
		ts.Status, ts.Cause = Verified, fmt.Sprintf("after stored; all %d linked rules pass on the newest snapshot", passing)
	case applicable > 0:
		ts.Status, ts.Cause = Remediated, "after stored; some linked rules could not be evaluated on the newest snapshot"
	default:
		ts.Status, ts.Cause = Remediated, "after stored; no rule is linked to the incident to verify it"
	}
	return ts, nil
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
