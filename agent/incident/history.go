package incident

import (
	"context"
	"fmt"
	"time"

	"github.com/hardtrail/hardtrail/agent/fleet"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/diff"
	"github.com/hardtrail/hardtrail/rules"
)

// History is what happened on a target since its first after link: every stored snapshot
// judged against the before and after states, the episodes in which the fix was undone, and
// the spans over which captures found a snapshot unchanged.
type History struct {
	Target string `json:"target"`
	// Since is the first after link's snapshot, from which the history is counted.
	Since     string    `json:"since"`
	SinceAt   time.Time `json:"since_at"`
	Snapshots int       `json:"snapshots"`
	Episodes  []Episode `json:"episodes"`
	Held      []Span    `json:"held"`
	// Regressed is the time spent regressed over all episodes (an open episode counts up to
	// the last time it was seen).
	Regressed time.Duration `json:"regressed_ns"`
}

// Episode is one regression: first seen in a snapshot, with the hardened lines it reverted or
// the linked rules it failed, and when and by which snapshot the fix was restored (none while
// it lasts).
type Episode struct {
	FirstSeen   time.Time     `json:"first_seen"`
	Snapshot    string        `json:"snapshot"`
	LastSeen    time.Time     `json:"last_seen"`
	Reverted    []string      `json:"reverted,omitempty"`
	RulesFailed []string      `json:"rules_failed,omitempty"`
	Restored    *time.Time    `json:"restored,omitempty"`
	RestoredBy  string        `json:"restored_by,omitempty"`
	Duration    time.Duration `json:"duration_ns"`
}

// Span says that snapshot was held unchanged from its capture Since to Until, by Count
// further captures at most MaxGap apart.
type Span struct {
	Snapshot string        `json:"snapshot"`
	Since    time.Time     `json:"since"`
	Until    time.Time     `json:"until"`
	Count    int           `json:"count"`
	MaxGap   time.Duration `json:"max_gap_ns"`
}

// TargetHistory computes the history of one target of the incident from every stored
// snapshot and held span since the first (not voided) after link of s. linked are the
// incident's linked rules (nil for none). It returns nil when the target has no before and
// after.
func TargetHistory(ctx context.Context, st *store.Store, s *State, target string, linked *rules.Set, now time.Time) (*History, error) {
	var ts *Target
	for i := range s.Targets {
		if s.Targets[i].Target == target {
			ts = &s.Targets[i]
		}
	}
	if ts == nil || ts.Before == nil || ts.After == nil {
		return nil, nil
	}
	var first *store.Link
	for i := range s.Links {
		l := &s.Links[i]
		if _, void := s.Voided(l.ID); void || l.Target != target || l.Phase != store.After {
			continue
		}
		first = l
		break
	}
	b, err := st.Get(ctx, ts.Before.Snapshot)
	if err != nil {
		return nil, err
	}
	a, err := st.Get(ctx, ts.After.Snapshot)
	if err != nil {
		return nil, err
	}
	fs, err := st.Get(ctx, first.Snapshot)
	if err != nil {
		return nil, err
	}
	h := &History{Target: target, Since: fs.ID, SinceAt: fs.Manifest.TakenAt.UTC(), Episodes: []Episode{}, Held: []Span{}}
	snaps, err := st.Snapshots(ctx, target, fs.Manifest.Seq)
	if err != nil {
		return nil, err
	}
	held, err := st.HeldSpans(ctx, target)
	if err != nil {
		return nil, err
	}
	var hashes []string
	for _, sn := range snaps {
		for _, e := range sn.Manifest.Artifacts {
			hashes = append(hashes, e.SHA256)
		}
	}
	if err := st.Prefetch(ctx, hashes); err != nil {
		return nil, err
	}
	// A snapshot that captured what an earlier one did (the same facts) is judged as that one
	// was: most of a target's snapshots repeat the one before.
	judged := map[string]verdict{}
	var open *Episode
	for _, sn := range snaps { // oldest first
		h.Snapshots++
		key := fleet.FactsKey(&sn.Manifest)
		v, ok := judged[key]
		if !ok {
			if v, err = judgeSnapshot(ctx, st, b, a, sn, linked, now); err != nil {
				return nil, err
			}
			judged[key] = v
		}
		reverted, failed := v.reverted, v.failed
		at := sn.Manifest.TakenAt.UTC()
		seen := at
		if hs, ok := held[sn.ID]; ok {
			h.Held = append(h.Held, Span{Snapshot: sn.ID, Since: hs.Since.UTC(), Until: hs.Until.UTC(), Count: hs.Count, MaxGap: hs.MaxGap})
			seen = hs.Until.UTC()
		}
		bad := len(reverted) > 0 || len(failed) > 0
		switch {
		case bad && open == nil:
			open = &Episode{FirstSeen: at, Snapshot: sn.ID, LastSeen: seen, Reverted: reverted, RulesFailed: failed}
		case bad:
			open.LastSeen = seen
		case open != nil:
			r := at
			open.Restored, open.RestoredBy, open.Duration = &r, sn.ID, at.Sub(open.FirstSeen)
			h.Episodes = append(h.Episodes, *open)
			h.Regressed += open.Duration
			open = nil
		}
	}
	if open != nil {
		open.Duration = open.LastSeen.Sub(open.FirstSeen)
		h.Episodes = append(h.Episodes, *open)
		h.Regressed += open.Duration
	}
	return h, nil
}

// verdict is what a snapshot undoes of a fix: the hardened lines it reverts, the linked rules
// it fails.
type verdict struct{ reverted, failed []string }

// judgeSnapshot lists what snapshot sn reverts of the fix from b to a (the hardened lines back
// or gone) and the linked rules that fail on it.
func judgeSnapshot(ctx context.Context, st *store.Store, b, a, sn *store.Snapshot, linked *rules.Set, now time.Time) (v verdict, err error) {
	arts, err := compare(ctx, st, b, a, sn)
	if err != nil {
		return v, fmt.Errorf("snapshot %s: %w", store.Short(sn.ID), err)
	}
	for _, art := range arts {
		if art.State != string(diff.Regressed) {
			continue
		}
		if art.Regression == nil {
			v.reverted = append(v.reverted, art.Name+": "+art.Note)
			continue
		}
		for _, hk := range art.Regression.Hardened {
			for _, l := range hk.Back {
				v.reverted = append(v.reverted, fmt.Sprintf("%s: line %d is back: %s", art.Name, l.Line, l.Text))
			}
			for _, l := range hk.Gone {
				v.reverted = append(v.reverted, fmt.Sprintf("%s: line %d is gone: %s", art.Name, l.Line, l.Text))
			}
		}
	}
	if linked != nil && linked.Len() > 0 {
		f, err := fleet.Facts(ctx, st, sn)
		if err != nil {
			return v, err
		}
		for _, r := range linked.Evaluate(ctx, f, now) {
			if r.Outcome == rules.Fail {
				v.failed = append(v.failed, r.Rule)
			}
		}
	}
	return v, nil
}

// Headline sums up a status with its history, so that "verified" is never said without it:
// "verified now; regressed 3 times since the fix, 41 s in total; last restored 2026-12-01 20:31Z".
func Headline(status Status, hs []*History) string {
	n, have := 0, 0
	var total time.Duration
	var last *time.Time
	ongoing := false
	for _, h := range hs {
		if h == nil {
			continue
		}
		have++
		n += len(h.Episodes)
		total += h.Regressed
		for _, e := range h.Episodes {
			if e.Restored == nil {
				ongoing = true
				continue
			}
			if last == nil || e.Restored.After(*last) {
				last = e.Restored
			}
		}
	}
	if have == 0 {
		return string(status) + ": no target has a fix (before and after) to hold yet"
	}
	out := string(status) + " now"
	switch n {
	case 0:
		return out + "; never regressed since the fix"
	case 1:
		out += "; regressed once since the fix"
	default:
		out += fmt.Sprintf("; regressed %d times since the fix", n)
	}
	out += ", " + Seconds(total) + " in total"
	if ongoing {
		out += "; still regressed"
	}
	if last != nil {
		out += "; last restored " + last.UTC().Format("2006-01-02 15:04Z")
	}
	return out
}

// Seconds writes a duration in whole seconds (at least 1 s when not zero), or minutes and
// hours when long.
func Seconds(d time.Duration) string {
	s := int64((d + time.Second/2) / time.Second)
	if d > 0 && s == 0 {
		s = 1
	}
	switch {
	case s < 120:
		return fmt.Sprintf("%d s", s)
	case s < 7200:
		return fmt.Sprintf("%d min", s/60)
	}
	return fmt.Sprintf("%d h", s/3600)
}
