package evidence

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/hardtrail/hardtrail/agent/fleet"
	"github.com/hardtrail/hardtrail/agent/incident"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/internal/sshsig"
	"github.com/hardtrail/hardtrail/rules"
)

// OperatorSignature is a signed link or incident record of the bundle whose SSHSIG signature
// verified over the bytes signed; Key made it.
type OperatorSignature struct {
	What string // "link ID" or "KIND record ID"
	By   string
	File string
	Key  ssh.PublicKey
}

// checkV2 checks what format 2 adds: snapshot manifests, the rules evaluated again, the
// incident record and operator signatures.
func checkV2(m *Manifest, files map[string][]byte, v *Verified, fail func(string, string, ...any) error) error {
	snaps, err := checkSnapshots(m, files, fail)
	if err != nil {
		return err
	}
	if err := checkRules(m, files, snaps, fail); err != nil {
		return err
	}
	return checkRecords(m, files, v, fail)
}

// checkSnapshots checks every snapshots/ID.json against its name, and that each exported
// artifact is the one its snapshot's manifest names.
func checkSnapshots(m *Manifest, files map[string][]byte, fail func(string, string, ...any) error) (map[string]*store.Manifest, error) {
	snaps := map[string]*store.Manifest{}
	for p, c := range files {
		rest, ok := strings.CutPrefix(p, SnapshotsDir+"/")
		if !ok {
			continue
		}
		id, ok := strings.CutSuffix(rest, ".json")
		if !ok || len(id) != 64 || strings.ToLower(id) != id || strings.Trim(id, "0123456789abcdef") != "" {
			return nil, fail(p, "not a snapshot manifest: its name must be the snapshot ID and .json")
		}
		if h := store.Hash(c); h != id {
			return nil, fail(p, "hashes to %s: it is not the manifest of snapshot %s", h, id)
		}
		var sm store.Manifest
		if err := json.Unmarshal(c, &sm); err != nil {
			return nil, fail(p, "not a snapshot manifest: %v", err)
		}
		snaps[id] = &sm
	}
	for _, t := range m.Targets {
		if t.Exported && (t.Before == nil || t.After == nil) {
			return nil, fail(ManifestName, "target %s is exported without both a before and an after snapshot", t.Target)
		}
		for _, r := range []*SnapshotRef{t.Before, t.After, t.Newest} {
			if r == nil {
				continue
			}
			want := SnapshotsDir + "/" + r.ID + ".json"
			sm, ok := snaps[r.ID]
			switch {
			case r.Manifest != want:
				return nil, fail(ManifestName, "target %s: snapshot %s: manifest %q, want %s", t.Target, store.Short(r.ID), r.Manifest, want)
			case !ok:
				return nil, fail(want, "missing: the manifest lists it for target %s", t.Target)
			case sm.Target != t.Target || sm.Seq != r.Seq || !sm.TakenAt.Equal(r.TakenAt):
				return nil, fail(want, "is snapshot %d of %s taken %s, but the manifest says %d of %s taken %s", sm.Seq, sm.Target, sm.TakenAt, r.Seq, t.Target, r.TakenAt)
			}
		}
		if !t.Exported {
			continue
		}
		for _, side := range []struct {
			dir string
			ref *SnapshotRef
			get func(Artifact) *Version
		}{{BeforeDir, t.Before, func(a Artifact) *Version { return a.Before }}, {AfterDir, t.After, func(a Artifact) *Version { return a.After }}} {
			sm := snaps[side.ref.ID]
			entries := map[string]store.ArtifactEntry{}
			for _, e := range sm.Artifacts {
				entries[e.Name] = e
			}
			for _, a := range t.Artifacts {
				v := side.get(a)
				e, ok := entries[a.Name]
				p := side.dir + "/" + t.Target + "/" + a.Name
				switch {
				case v == nil && !ok:
				case v == nil || !ok:
					return nil, fail(p, "snapshot %s and the manifest disagree on whether the artifact exists", store.Short(side.ref.ID))
				case v.Unavailable != e.Unavailable:
					return nil, fail(p, "snapshot %s says unavailable %q, the manifest %q", store.Short(side.ref.ID), e.Unavailable, v.Unavailable)
				case v.Unavailable == "" && (v.SHA256 != e.SHA256 || v.ExitCode != exitOf(e.ExitCode)):
					return nil, fail(p, "is not the content (or exit code) snapshot %s recorded: the snapshot ID does not cover it", store.Short(side.ref.ID))
				}
			}
			if len(entries) != countSide(t.Artifacts, side.get) {
				return nil, fail(SnapshotsDir+"/"+side.ref.ID+".json", "has %d artifacts, the manifest lists %d for %s", len(entries), countSide(t.Artifacts, side.get), side.dir)
			}
		}
	}
	return snaps, nil
}

func countSide(as []Artifact, get func(Artifact) *Version) int {
	n := 0
	for _, a := range as {
		if get(a) != nil {
			n++
		}
	}
	return n
}

// checkRules loads rules/, checks that it gives the linked rules of the manifest, evaluates
// them over before/ and after/ of each exported target as of the manifest's time, and compares
// the outcomes with results.json and the manifest.
func checkRules(m *Manifest, files map[string][]byte, snaps map[string]*store.Manifest, fail func(string, string, ...any) error) error {
	listed := map[string]bool{}
	var texts []rules.File
	for _, rf := range m.RuleFiles {
		c, ok := files[rf.Path]
		if !strings.HasPrefix(rf.Path, RulesDir+"/") || !ok || listed[rf.Path] {
			return fail(ManifestName, "rule file %q is not in %s/, missing, or listed twice", rf.Path, RulesDir)
		}
		listed[rf.Path] = true
		texts = append(texts, rules.File{Name: rf.Path, Data: c})
	}
	for p := range files {
		if strings.HasPrefix(p, RulesDir+"/") && !listed[p] {
			return fail(p, "not a rule file the manifest lists")
		}
	}
	var set *rules.Set
	var err error
	if len(texts) == 0 {
		set, err = rules.Merge()
	} else {
		set, err = rules.CheckFiles(texts...)
	}
	if err != nil {
		return fail(RulesDir, "the rule files do not load: %v", err)
	}
	linked := incident.Linked(set, m.Incident)
	if linked.Digest() != m.RulesDigest {
		return fail(RulesDir, "the rules linked to %s in these files have digest %s, but the manifest's rules digest is %s", m.Incident, linked.Digest(), m.RulesDigest)
	}
	var doc struct {
		Reports []rules.Report `json:"reports"`
	}
	if err := json.Unmarshal(files[ResultsJSON], &doc); err != nil {
		return fail(ResultsJSON, "not valid results: %v", err)
	}
	reports := map[string]rules.Report{}
	for _, r := range doc.Reports {
		reports[r.Target] = r
	}
	for _, t := range m.Targets {
		if !t.Exported {
			continue
		}
		for _, side := range []struct {
			phase, dir string
			ref        *SnapshotRef
			get        func(RuleOutcome) rules.Outcome
		}{{"before", BeforeDir, t.Before, func(o RuleOutcome) rules.Outcome { return o.Before }},
			{"after", AfterDir, t.After, func(o RuleOutcome) rules.Outcome { return o.After }}} {
			sm := snaps[side.ref.ID]
			f, err := fleet.FactsOf(sm, func(e store.ArtifactEntry) ([]byte, error) {
				return files[side.dir+"/"+t.Target+"/"+e.Name], nil // a failed empty capture has no file
			})
			if err != nil {
				return fail(side.dir+"/"+t.Target, "%v", err)
			}
			got := map[string]rules.Outcome{}
			for _, r := range linked.Evaluate(context.Background(), f, m.AsOf) {
				got[r.Rule] = r.Outcome
			}
			key := t.Target + ":" + side.phase
			rep, ok := reports[key]
			if !ok {
				return fail(ResultsJSON, "has no report for %s", key)
			}
			claimed := map[string]rules.Outcome{}
			for _, r := range rep.Results {
				claimed[r.Rule] = r.Outcome
			}
			for _, id := range sortedKeys(got, claimed) {
				if got[id] != claimed[id] {
					return fail(ResultsJSON, "rule %s on %s: results.json says %q, but evaluating %s/ over %s/%s gives %q",
						id, key, claimed[id], RulesDir, side.dir, t.Target, got[id])
				}
			}
			for _, o := range t.Results.Rules {
				if side.get(o) != got[o.Rule] {
					return fail(ManifestName, "rule %s on %s: the manifest says %q, but evaluating %s/ over %s/%s gives %q",
						o.Rule, key, side.get(o), RulesDir, side.dir, t.Target, got[o.Rule])
				}
			}
		}
	}
	return nil
}

func sortedKeys(ms ...map[string]rules.Outcome) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range ms {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// checkRecords checks records/: the incident record against the manifest, and every
// operator signature over the bytes it signed, which must be the link or record the manifest
// lists.
func checkRecords(m *Manifest, files map[string][]byte, v *Verified, fail func(string, string, ...any) error) error {
	claimed := map[string]bool{}
	if m.Record != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.Encode(m.Record)
		if !bytes.Equal(files[IncidentRecord], buf.Bytes()) {
			return fail(IncidentRecord, "differs from the incident record in the manifest")
		}
		var evs []StatusEvent
		if err := json.Unmarshal(files[StatusEvents], &evs); err != nil || len(evs) != m.Record.StatusEvents {
			return fail(StatusEvents, "missing, or not the %d status events the manifest counts", m.Record.StatusEvents)
		}
		claimed[IncidentRecord], claimed[StatusEvents] = true, true
	}
	check := func(what, by, sigFile, id string, signed []byte) error {
		want := RecordsDir + "/" + id + ".sig"
		if sigFile != want {
			return fail(ManifestName, "%s: signature %q, want %s", what, sigFile, want)
		}
		msgFile := RecordsDir + "/" + id + ".json"
		msg, sig := files[msgFile], files[sigFile]
		switch {
		case sig == nil:
			return fail(sigFile, "missing: the manifest says %s is signed", what)
		case !bytes.Equal(msg, signed):
			return fail(msgFile, "is not the %s the manifest lists", what)
		}
		key, err := sshsig.Verify(sig, msg, sshsig.Namespace)
		if err != nil {
			return fail(sigFile, "%s: %v", what, err)
		}
		claimed[msgFile], claimed[sigFile] = true, true
		v.Operators = append(v.Operators, OperatorSignature{What: what, By: by, File: sigFile, Key: key})
		return nil
	}
	for _, l := range m.Links {
		if l.Signature == "" {
			continue
		}
		sl := store.Link{Incident: m.Incident, Target: l.Target, Phase: l.Phase, Snapshot: l.Snapshot, By: l.By, Who: l.Who, At: l.At, Note: l.Note}
		if err := check("link "+store.Short(l.ID), l.By, l.Signature, l.ID, sl.SignedBytes()); err != nil {
			return err
		}
	}
	if m.Record != nil {
		for _, e := range m.Record.Entries {
			if e.SignatureFile == "" {
				continue
			}
			if err := check(e.Kind+" record "+store.Short(e.ID), e.By, e.SignatureFile, e.ID, e.Record.SignedBytes()); err != nil {
				return err
			}
		}
	}
	for p := range files {
		if strings.HasPrefix(p, RecordsDir+"/") && !claimed[p] {
			return fail(p, "not a record or signature the manifest lists")
		}
	}
	return nil
}
