package evidence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/hardtrail/hardtrail/agent/incident"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/diff"
	"github.com/hardtrail/hardtrail/internal/buildinfo"
	"github.com/hardtrail/hardtrail/rules"
)

// ErrNoAfter is returned by Build when no target of the incident has both a before and an
// after snapshot, so there is no remediation to give evidence of.
var ErrNoAfter = errors.New("no target has both a before and an after snapshot")

// Bundle is an evidence bundle built in memory, ready to be written.
type Bundle struct {
	Manifest Manifest
	// files holds every file but the manifest and its signature, by path under the top
	// directory.
	files map[string][]byte
	// mtime is the time every entry of the archive carries: the newest after snapshot's.
	mtime time.Time
}

// File returns the content of a file of the bundle by its path under the top directory.
func (b *Bundle) File(p string) ([]byte, bool) {
	c, ok := b.files[p]
	return c, ok
}

// Build gathers an incident's evidence from the store: incident.Analyse gives the targets, the
// newest before and after links, what the remediation changed, whether it holds on the newest
// snapshot, and the outcomes of the linked rules (those the store keeps; set only while it keeps
// none); the history since the fix comes from every stored snapshot and held span. Every target
// with both phases gets before/TARGET/ARTIFACT and after/TARGET/ARTIFACT files (an unavailable
// artifact, or a command that failed with no output, is listed in the manifest with its reason,
// not written) and a diff per changed text artifact, all joined in diff/combined.diff; the
// snapshots' canonical manifests go to snapshots/, the linked rule files to rules/, the incident
// record and operator signatures to records/. The manifest names the store's head digest. Build
// reads the store and writes nothing but the record of that head (see store.Head).
func Build(ctx context.Context, st *store.Store, id string, set *rules.Set) (*Bundle, error) {
	if err := store.CheckIncidentID(id); err != nil {
		return nil, err
	}
	id, err := st.CanonicalIncident(ctx, id)
	if err != nil {
		return nil, err
	}
	asOf, err := latestTime(ctx, st, id)
	if err != nil {
		return nil, err
	}
	state, err := incident.Analyse(ctx, st, id, set, asOf)
	if err != nil {
		return nil, err
	}
	id = state.Incident
	linked := state.LinkedSet()
	if linked == nil {
		if linked, err = rules.Merge(); err != nil {
			return nil, err
		}
	}
	hs, err := state.Histories(ctx, st, asOf)
	if err != nil {
		return nil, err
	}
	head, err := st.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("incident %s: %w", id, err)
	}
	b := &Bundle{files: map[string][]byte{}}
	m := &b.Manifest
	*m = Manifest{
		Format: Format, Incident: id, Status: state.Status, AsOf: asOf.UTC(),
		ToolVersion: buildinfo.Version, RulesDigest: linked.Digest(), Rules: []string{},
		Headline: incident.Headline(state.Status, hs), RulesFrom: state.Rules.From, RulesChanged: state.Rules.Changed,
		StoreHead: head.Digest,
	}
	for _, r := range linked.Rules() {
		m.Rules = append(m.Rules, r.ID)
	}
	snaps := map[string]*store.Snapshot{}
	get := func(sid string) (*store.Snapshot, error) {
		if s, ok := snaps[sid]; ok {
			return s, nil
		}
		s, err := st.Get(ctx, sid)
		if err != nil {
			return nil, fmt.Errorf("incident %s: %w", id, err)
		}
		snaps[sid] = s
		return s, nil
	}
	for _, l := range state.Links {
		s, err := get(l.Snapshot)
		if err != nil {
			return nil, err
		}
		ml := Link{ID: l.ID, Target: l.Target, Phase: l.Phase, Snapshot: l.Snapshot,
			TakenAt: s.Manifest.TakenAt.UTC(), By: l.By, At: l.At.UTC(), Note: l.Note, Who: l.Who}
		if v, ok := state.Voided(l.ID); ok {
			ml.Voided = v
		}
		if l.Signature != "" {
			ml.Signature = b.addSigned(l.ID, l.SignedBytes(), l.Signature)
		}
		m.Links = append(m.Links, ml)
	}
	var reports []rules.Report
	var combined bytes.Buffer
	for ti, ts := range state.Targets {
		t := Target{Target: ts.Target, Status: ts.Status, Cause: ts.Cause}
		ref := func(sid string) (*SnapshotRef, *store.Snapshot, error) {
			s, err := get(sid)
			if err != nil {
				return nil, nil, err
			}
			r := &SnapshotRef{ID: s.ID, Seq: s.Manifest.Seq, TakenAt: s.Manifest.TakenAt.UTC(), Note: s.Manifest.Note}
			r.Manifest, r.Provenance, err = b.addSnapshot(ctx, st, s)
			return r, s, err
		}
		var before, after *store.Snapshot
		if ts.Before != nil {
			if t.Before, before, err = ref(ts.Before.Snapshot); err != nil {
				return nil, err
			}
		}
		if ts.After != nil {
			if t.After, after, err = ref(ts.After.Snapshot); err != nil {
				return nil, err
			}
		}
		if t.Newest, _, err = ref(ts.Latest); err != nil {
			return nil, err
		}
		t.Results = results(ts)
		t.History = hs[ti]
		if t.History != nil {
			for _, e := range t.History.Episodes {
				for _, sid := range []string{e.Snapshot, e.RestoredBy} {
					if sid == "" {
						continue
					}
					s, err := get(sid)
					if err != nil {
						return nil, err
					}
					if _, _, err := b.addSnapshot(ctx, st, s); err != nil {
						return nil, err
					}
				}
			}
		}
		for _, p := range []struct {
			phase string
			snap  *SnapshotRef
			res   []rules.Result
		}{{"before", t.Before, ts.RulesBefore}, {"after", t.After, ts.RulesAfter}, {"newest", t.Newest, ts.RulesLatest}} {
			if p.snap == nil {
				continue
			}
			res := p.res
			if res == nil {
				res = []rules.Result{}
			}
			reports = append(reports, rules.NewReport(res, t.Target+":"+p.phase, p.snap.ID, linked.Digest(), asOf))
		}
		if before != nil && after != nil {
			t.Exported = true
			if err := b.addTarget(ctx, st, &t, ts, before, after, &combined); err != nil {
				return nil, fmt.Errorf("incident %s, target %s: %w", id, ts.Target, err)
			}
			if at := after.Manifest.TakenAt.UTC().Truncate(time.Second); at.After(b.mtime) {
				b.mtime = at
			}
		}
		m.Targets = append(m.Targets, t)
	}
	if b.mtime.IsZero() {
		return nil, noAfter(state)
	}
	if err := b.addRules(m, state); err != nil {
		return nil, fmt.Errorf("incident %s: %w", id, err)
	}
	if err := b.addRecord(ctx, st, m, state); err != nil {
		return nil, fmt.Errorf("incident %s: %w", id, err)
	}
	b.files[CombinedDiff] = combined.Bytes()
	var buf bytes.Buffer
	if err := rules.WriteJSON(&buf, reports...); err != nil {
		return nil, err
	}
	b.files[ResultsJSON] = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := rules.WriteJUnit(&buf, reports...); err != nil {
		return nil, err
	}
	b.files[ResultsJUnit] = bytes.Clone(buf.Bytes())
	b.files[ReportName] = renderReport(m, state, b.files)
	// Files made from the others (renderings, attestations) are added here, in one place.
	if err := b.addAuditorFiles(ctx, st); err != nil {
		return nil, err
	}
	if err := checkPaths(b.files); err != nil {
		return nil, fmt.Errorf("incident %s: %w", id, err)
	}
	m.Files = fileList(b.files)
	return b, nil
}

// noAfter says what a target lacks when none has both phases: the advice depends on which
// phase is missing.
func noAfter(s *incident.State) error {
	var noBefore, none []string
	for _, t := range s.Targets {
		switch {
		case t.After != nil && t.Before == nil:
			noBefore = append(noBefore, t.Target)
		case t.After == nil:
			none = append(none, t.Target)
		}
	}
	switch {
	case len(noBefore) > 0:
		return fmt.Errorf("incident %s: %w: %s has an after snapshot but no before; tag the snapshot from before the fix with hardtrail tag REF --incident %s --phase before",
			s.Incident, ErrNoAfter, strings.Join(noBefore, ", "), s.Incident)
	case len(none) > 0:
		return fmt.Errorf("incident %s: %w: %s has no after snapshot yet; once fixed, capture with hardtrail snapshot --incident %s --phase after",
			s.Incident, ErrNoAfter, strings.Join(none, ", "), s.Incident)
	}
	return fmt.Errorf("incident %s: %w: no snapshot is tagged with it; tag one with hardtrail tag REF --incident %s --phase before", s.Incident, ErrNoAfter, s.Incident)
}

// latestTime is the time of the newest snapshot or link of the incident: the time the
// evidence speaks of.
func latestTime(ctx context.Context, st *store.Store, id string) (time.Time, error) {
	links, err := st.Links(ctx, id)
	if err != nil {
		return time.Time{}, err
	}
	var t time.Time
	seen := map[string]bool{}
	for _, l := range links {
		if l.At.After(t) {
			t = l.At
		}
		if seen[l.Target] {
			continue
		}
		seen[l.Target] = true
		sid, err := st.Latest(ctx, l.Target)
		if err != nil {
			return t, err
		}
		s, err := st.Get(ctx, sid)
		if err != nil {
			return t, err
		}
		if s.Manifest.TakenAt.After(t) {
			t = s.Manifest.TakenAt
		}
	}
	return t.UTC(), nil
}

func results(ts incident.Target) Results {
	var r Results
	sum := func(rs []rules.Result, has bool) *rules.Summary {
		if !has {
			return nil
		}
		s := rules.Summarize(rs)
		return &s
	}
	r.Before = sum(ts.RulesBefore, ts.Before != nil)
	r.After = sum(ts.RulesAfter, ts.After != nil)
	r.Newest = sum(ts.RulesLatest, true)
	idx := map[string]int{}
	add := func(rs []rules.Result, set func(*RuleOutcome, rules.Outcome)) {
		for _, res := range rs {
			i, ok := idx[res.Rule]
			if !ok {
				i = len(r.Rules)
				idx[res.Rule] = i
				r.Rules = append(r.Rules, RuleOutcome{Rule: res.Rule, Title: res.Title, Severity: res.Severity})
			}
			set(&r.Rules[i], res.Outcome)
		}
	}
	add(ts.RulesBefore, func(o *RuleOutcome, v rules.Outcome) { o.Before = v })
	add(ts.RulesAfter, func(o *RuleOutcome, v rules.Outcome) { o.After = v })
	add(ts.RulesLatest, func(o *RuleOutcome, v rules.Outcome) { o.Newest = v })
	return r
}

// addTarget writes a target's before/ and after/ files and diffs and lists its artifacts.
func (b *Bundle) addTarget(ctx context.Context, st *store.Store, t *Target, ts incident.Target, before, after *store.Snapshot, combined *bytes.Buffer) error {
	analysed := map[string]incident.Artifact{}
	names := map[string]bool{}
	for _, a := range ts.Artifacts {
		analysed[a.Name] = a
		names[a.Name] = true
	}
	for _, s := range []*store.Snapshot{before, after} {
		for _, e := range s.Manifest.Artifacts {
			names[e.Name] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	version := func(s *store.Snapshot, name string) (*Version, []byte, error) {
		e, ok := s.Entry(name)
		switch {
		case !ok:
			return nil, nil, nil
		case e.Unavailable != "":
			return &Version{Unavailable: e.Unavailable, ExitCode: exitOf(e.ExitCode), Stderr: e.Stderr}, nil, nil
		}
		c, err := st.Blob(ctx, e.SHA256)
		if err != nil {
			return nil, nil, fmt.Errorf("artifact %s of snapshot %s: %w", name, store.Short(s.ID), err)
		}
		v := &Version{SHA256: e.SHA256, Size: int64(len(c)), Binary: diff.IsBinary(c), ExitCode: exitOf(e.ExitCode), Stderr: e.Stderr}
		if v.ExitCode != 0 && len(c) == 0 {
			v.Failed = fmt.Sprintf("%s exited %d with no output", commandName(e.Command), v.ExitCode)
			if line := firstLine(e.Stderr); line != "" {
				v.Failed += ": " + line
			}
		}
		return v, c, nil
	}
	for _, n := range sorted {
		if err := checkName(n); err != nil {
			return err
		}
		art := Artifact{Name: n}
		var bc, ac []byte
		var err error
		if art.Before, bc, err = version(before, n); err != nil {
			return err
		}
		if art.After, ac, err = version(after, n); err != nil {
			return err
		}
		inB := art.Before.captured()
		inA := art.After.captured()
		p := t.Target + "/" + n
		if inB {
			b.files[BeforeDir+"/"+p] = bc
		}
		if inA {
			b.files[AfterDir+"/"+p] = ac
		}
		binary := inB && art.Before.Binary || inA && art.After.Binary
		switch {
		case art.Before == nil && art.After == nil:
			// Only in the newest snapshot: drift after the remediation.
		case !inB && !inA:
			art.Change = Unchanged
			if art.Before == nil || art.After == nil || art.Before.Unavailable+art.Before.Failed != art.After.Unavailable+art.After.Failed {
				art.Change = NotCaptured
			}
		case art.Before != nil && !inB || art.After != nil && !inA:
			art.Change = NotCaptured
		case inB && inA && bytes.Equal(bc, ac):
			art.Change = Unchanged
		case binary:
			art.Change = Binary
		case !inB:
			art.Change = Added
		case !inA:
			art.Change = Removed
		default:
			art.Change = Modified
		}
		if !binary {
			if d := fileDiff(p, bc, ac, inB, inA); d != nil {
				art.Diff = DiffDir + "/" + p + ".diff"
				art.Added, art.Removed = diff.Stat(bc, ac)
				b.files[art.Diff] = d
				combined.Write(d)
			}
		}
		if a, ok := analysed[n]; ok {
			art.State, art.Note = a.State, a.Note
			if a.Regression != nil {
				for _, h := range a.Regression.Hardened {
					for _, l := range h.Back {
						art.Reverted = append(art.Reverted, fmt.Sprintf("line %d is back: %s", l.Line, l.Text))
					}
					for _, l := range h.Gone {
						art.Reverted = append(art.Reverted, fmt.Sprintf("line %d is gone: %s", l.Line, l.Text))
					}
				}
			}
		}
		t.Artifacts = append(t.Artifacts, art)
	}
	return nil
}

// checkName refuses an artifact name that cannot be a path inside the bundle.
func checkName(n string) error {
	if !fs.ValidPath(n) || n == "." {
		return fmt.Errorf("artifact %q cannot be a file in the bundle: its name is not a clean relative path", n)
	}
	for _, c := range n {
		if c < 0x20 || c == 0x7f || c == '\\' || c == '"' {
			return fmt.Errorf("artifact %q cannot be a file in the bundle: its name holds %q", n, c)
		}
	}
	return nil
}

// checkPaths refuses a set of files where one file's path is a directory of another.
func checkPaths(files map[string][]byte) error {
	for p := range files {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := files[d]; ok {
				return fmt.Errorf("bundle paths %s and %s conflict: one is a file inside the other (rename the artifact or target)", d, p)
			}
		}
	}
	return nil
}

func fileList(files map[string][]byte) []File {
	out := make([]File, 0, len(files))
	for p, c := range files {
		out = append(out, File{Path: p, SHA256: store.Hash(c), Size: int64(len(c))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// dirsOf lists every directory the paths need, without the top directory.
func dirsOf(paths []string) []string {
	seen := map[string]bool{}
	for _, p := range paths {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			seen[d] = true
		}
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// exitOf is a recorded exit code, 0 when there is none (a file, or a command that timed out,
// which the artifact's unavailable reason says).
func exitOf(code *int) int {
	if code == nil {
		return 0
	}
	return *code
}
