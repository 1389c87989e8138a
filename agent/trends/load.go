package trends

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/diff"
	"github.com/hardtrail/hardtrail/rules"
)

// Record gives what an incident's record says: its category and when it was opened (zero
// when the record does not say, or there is none).
type Record func(ctx context.Context, id string) (category string, opened time.Time, err error)

// Load reads every incident's history from the store: its links (the first one opens it,
// unless record gives an earlier open time), its status events (when each target was first
// remediated and verified, each regression), and the stored rule results of its before
// snapshots and of the snapshot each regression was judged on (which linked rules failed).
// A regression's artifacts are those in which the judged snapshot reverts a hardened change
// (diff.Regression). record may be nil.
func Load(ctx context.Context, st *store.Store, record Record) ([]Incident, error) {
	links, err := st.Links(ctx, "")
	if err != nil {
		return nil, err
	}
	events, err := st.StatusEvents(ctx, "")
	if err != nil {
		return nil, err
	}
	l := &loader{st: st, snaps: map[string]*store.Snapshot{}, results: map[string][]rules.Result{}}
	byInc := map[string][]store.Link{}
	var ids []string
	for _, k := range links {
		if _, ok := byInc[k.Incident]; !ok {
			ids = append(ids, k.Incident)
		}
		byInc[k.Incident] = append(byInc[k.Incident], k)
	}
	evByInc := map[string][]store.StatusEvent{}
	for _, e := range events {
		evByInc[e.Incident] = append(evByInc[e.Incident], e)
	}
	slices.Sort(ids)
	out := make([]Incident, 0, len(ids))
	for _, id := range ids {
		inc, err := l.incident(ctx, id, byInc[id], evByInc[id], record)
		if err != nil {
			return nil, fmt.Errorf("incident %s: %w", id, err)
		}
		out = append(out, inc)
	}
	return out, nil
}

type loader struct {
	st      *store.Store
	snaps   map[string]*store.Snapshot
	results map[string][]rules.Result
}

func (l *loader) snapshot(ctx context.Context, id string) (*store.Snapshot, error) {
	if s, ok := l.snaps[id]; ok {
		return s, nil
	}
	s, err := l.st.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	l.snaps[id] = s
	return s, nil
}

// failing returns the rules naming the incident that failed or erred on a snapshot, by the
// newest stored report.
func (l *loader) failing(ctx context.Context, snapshot, incident, target string) ([]Failure, error) {
	res, ok := l.results[snapshot]
	if !ok {
		stored, err := l.st.Results(ctx, snapshot)
		if err != nil {
			return nil, err
		}
		if len(stored) > 0 {
			var rep rules.Report
			if err := json.Unmarshal(stored[0].Report, &rep); err != nil {
				return nil, fmt.Errorf("stored results of snapshot %s: %w", store.Short(snapshot), err)
			}
			res = rep.Results
		}
		l.results[snapshot] = res
	}
	var out []Failure
	for _, r := range res {
		if (r.Outcome == rules.Fail || r.Outcome == rules.Error) && slices.Contains(r.Incidents, incident) {
			out = append(out, Failure{Rule: r.Rule, Target: target, Controls: r.Controls})
		}
	}
	return out, nil
}

func (l *loader) incident(ctx context.Context, id string, links []store.Link, events []store.StatusEvent, record Record) (Incident, error) {
	inc := Incident{ID: id}
	before, after := map[string]string{}, map[string]string{}
	for _, k := range links {
		if inc.Opened.IsZero() || k.At.Before(inc.Opened) {
			inc.Opened = k.At
		}
		if !slices.Contains(inc.Targets, k.Target) {
			inc.Targets = append(inc.Targets, k.Target)
		}
		if k.Phase == store.Before {
			before[k.Target] = k.Snapshot
		} else {
			after[k.Target] = k.Snapshot
		}
	}
	slices.Sort(inc.Targets)
	if record != nil {
		cat, opened, err := record(ctx, id)
		if err != nil {
			return inc, err
		}
		inc.Category = cat
		if !opened.IsZero() && opened.Before(inc.Opened) {
			inc.Opened = opened
		}
	}
	inc.Opened = inc.Opened.UTC()
	remediated, verified := map[string]time.Time{}, map[string]time.Time{}
	for _, e := range events {
		switch e.Status {
		case "verified":
			if _, ok := verified[e.Target]; !ok {
				verified[e.Target] = e.At
			}
			fallthrough
		case "remediated":
			if _, ok := remediated[e.Target]; !ok {
				remediated[e.Target] = e.At
			}
		case "regressed":
			g := Regression{At: e.At.UTC(), Target: e.Target}
			if e.Snapshot != "" {
				var err error
				if g.Rules, err = l.failing(ctx, e.Snapshot, id, e.Target); err != nil {
					return inc, err
				}
				if g.Artifacts, err = l.reverted(ctx, before[e.Target], after[e.Target], e.Snapshot); err != nil {
					return inc, err
				}
			}
			inc.Regressions = append(inc.Regressions, g)
		}
	}
	inc.Remediated, inc.Verified = allReached(inc.Targets, remediated), allReached(inc.Targets, verified)
	for _, t := range inc.Targets {
		if b := before[t]; b != "" {
			fs, err := l.failing(ctx, b, id, t)
			if err != nil {
				return inc, err
			}
			inc.Weaknesses = append(inc.Weaknesses, fs...)
		}
	}
	return inc, nil
}

// allReached is the time by which every target had reached a state, or zero.
func allReached(targets []string, at map[string]time.Time) time.Time {
	var last time.Time
	for _, t := range targets {
		a, ok := at[t]
		if !ok {
			return time.Time{}
		}
		if a.After(last) {
			last = a
		}
	}
	return last.UTC()
}

// reverted lists the artifacts in which snapshot reverts a hardened change: a line the
// remediation (before to after) removed is back, or one it added is gone.
func (l *loader) reverted(ctx context.Context, before, after, snapshot string) ([]string, error) {
	if before == "" || after == "" {
		return nil, nil
	}
	var ss [3]*store.Snapshot
	for i, id := range []string{before, after, snapshot} {
		s, err := l.snapshot(ctx, id)
		if err != nil {
			return nil, err
		}
		ss[i] = s
	}
	var out []string
	for _, a := range ss[1].Manifest.Artifacts {
		b, _ := ss[0].Entry(a.Name)
		n, _ := ss[2].Entry(a.Name)
		if b.SHA256 == a.SHA256 || n.SHA256 == a.SHA256 || a.Unavailable != "" || b.Unavailable != "" || n.Unavailable != "" {
			continue
		}
		var c [3][]byte
		for i, h := range []string{b.SHA256, a.SHA256, n.SHA256} {
			if h == "" {
				continue
			}
			blob, err := l.st.Blob(ctx, h)
			if err != nil {
				return nil, fmt.Errorf("artifact %s: %w", a.Name, err)
			}
			c[i] = blob
		}
		if diff.Regression(c[0], c[1], c[2]).Status == diff.Regressed {
			out = append(out, a.Name)
		}
	}
	return out, nil
}
