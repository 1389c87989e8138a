package evidence

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/hardtrail/hardtrail/agent/evidence/htmlreport"
	"github.com/hardtrail/hardtrail/agent/evidence/intoto"
	"github.com/hardtrail/hardtrail/agent/evidence/oscal"
	"github.com/hardtrail/hardtrail/agent/evidence/tsa"
	"github.com/hardtrail/hardtrail/agent/evidence/view"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/rules"
)

// The files of a bundle for auditors. report.html and oscal/ are listed in the manifest like
// every other file; the attestation and the timestamp speak of the manifest itself, so they
// stand beside it, as its signature does.
const (
	HTMLReportName  = htmlreport.Name
	OSCALName       = oscal.Path
	AttestationName = "attestation.intoto.json"
	TimestampName   = ManifestName + ".tsr"
)

// outsideManifest reports whether a bundle file is one the manifest cannot list.
func outsideManifest(p string) bool {
	return p == ManifestName || p == SignatureName || p == AttestationName || p == TimestampName
}

// view is the bundle as the auditor outputs see it: the manifest and files, with each
// snapshot's collection details and, for a bundle without regression history, the status
// events read from the store.
func (b *Bundle) view(ctx context.Context, st *store.Store) (*view.Evidence, error) {
	m := &b.Manifest
	ev := &view.Evidence{Incident: m.Incident, Status: string(m.Status), Headline: m.Headline, AsOf: m.AsOf,
		ToolVersion: m.ToolVersion, RulesDigest: m.RulesDigest, Rules: m.Rules, SignedBy: m.SignedBy, StoreHead: m.StoreHead}
	if r := m.Record; r != nil {
		ev.Title = r.Title
		for _, e := range r.Entries {
			if e.Category != "" && ev.Category == "" {
				ev.Category = e.Category
			}
		}
	}
	episodes := false
	for _, t := range m.Targets {
		if t.History == nil {
			continue
		}
		episodes = true
		for _, e := range t.History.Episodes {
			why := "rules failed: " + strings.Join(e.RulesFailed, ", ")
			if len(e.Reverted) > 0 {
				why = "reverted: " + strings.Join(e.Reverted, "; ")
				if len(e.RulesFailed) > 0 {
					why += "; rules failed: " + strings.Join(e.RulesFailed, ", ")
				}
			}
			ev.History = append(ev.History, view.StatusChange{At: e.FirstSeen, Target: t.Target, To: "regressed", Cause: why, Snapshot: e.Snapshot})
			if e.Restored != nil {
				ev.History = append(ev.History, view.StatusChange{At: *e.Restored, Target: t.Target, From: "regressed", To: "restored",
					Cause: "the hardened state is back", Snapshot: e.RestoredBy})
			}
		}
	}
	if !episodes {
		events, err := st.StatusEvents(ctx, m.Incident)
		if err != nil {
			return nil, err
		}
		for _, e := range events {
			ev.History = append(ev.History, view.StatusChange{At: e.At, Target: e.Target, From: e.From, To: e.Status, Cause: e.Cause, Snapshot: e.Snapshot})
		}
	}
	sort.SliceStable(ev.History, func(i, j int) bool { return ev.History[i].At.Before(ev.History[j].At) })
	for _, e := range timeline(m) {
		ev.Timeline = append(ev.Timeline, view.Event{At: e.at, What: e.what, Target: e.target, Snapshot: e.snapshot, By: e.by, Note: e.note})
	}
	newest := newestResults(b.files[ResultsJSON])
	for _, t := range m.Targets {
		vt := view.Target{Name: t.Target, Status: string(t.Status), Cause: t.Cause}
		snaps := map[string]*store.Snapshot{}
		for _, p := range []struct {
			ref *SnapshotRef
			set **view.Snapshot
		}{{t.Before, &vt.Before}, {t.After, &vt.After}, {t.Newest, &vt.Newest}} {
			if p.ref == nil {
				continue
			}
			s, err := st.Get(ctx, p.ref.ID)
			if err != nil {
				return nil, fmt.Errorf("incident %s, target %s: %w", m.Incident, t.Target, err)
			}
			snaps[p.ref.ID] = s
			mf := s.Manifest
			*p.set = &view.Snapshot{ID: s.ID, TakenAt: mf.TakenAt, Hostname: mf.Hostname, Transport: mf.Transport,
				Address: mf.Address, HostKey: mf.HostKey, ToolVersion: mf.ToolVersion}
		}
		for _, a := range t.Artifacts {
			va := view.Artifact{Name: a.Name, Change: a.Change, State: a.State, Note: a.Note, Reverted: a.Reverted,
				DiffPath: a.Diff, Added: a.Added, Removed: a.Removed}
			if t.Before != nil {
				va.Before = b.version(BeforeDir, t.Target, a.Name, a.Before, snaps[t.Before.ID])
			}
			if t.After != nil {
				va.After = b.version(AfterDir, t.Target, a.Name, a.After, snaps[t.After.ID])
			}
			vt.Artifacts = append(vt.Artifacts, va)
		}
		for _, r := range t.Results.Rules {
			vr := view.Rule{ID: r.Rule, Title: r.Title, Severity: string(r.Severity), Before: r.Before, After: r.After, Newest: r.Newest}
			if res, ok := newest[t.Target+"\x00"+r.Rule]; ok {
				vr.Controls, vr.Expected, vr.Actual, vr.Message, vr.Remediation = res.Controls, res.Expected, res.Actual, res.Message, res.Remediation
			}
			vt.Rules = append(vt.Rules, vr)
		}
		ev.Targets = append(ev.Targets, vt)
	}
	for _, f := range fileList(b.files) {
		if f.Path != HTMLReportName && f.Path != OSCALName && !outsideManifest(f.Path) {
			ev.Files = append(ev.Files, view.File{Path: f.Path, SHA256: f.SHA256, Size: f.Size})
		}
	}
	return ev, nil
}

// version is an artifact in one phase, with its content and how it was collected.
func (b *Bundle) version(phase, target, name string, v *Version, s *store.Snapshot) *view.Version {
	if v == nil {
		return nil
	}
	out := &view.Version{SHA256: v.SHA256, Size: v.Size, Binary: v.Binary, Unavailable: v.Unavailable}
	if v.Failed != "" {
		out.Unavailable = v.Failed
	}
	if v.captured() {
		out.Path = phase + "/" + target + "/" + name
		out.Content = b.files[out.Path]
	}
	if s != nil {
		if e, ok := s.Entry(name); ok {
			out.Command, out.File, out.ExitCode = e.Command, e.Path, e.ExitCode
		}
	}
	return out
}

// newestResults indexes the results on each target's newest snapshot (TARGET:newest in
// results.json) by target and rule.
func newestResults(raw []byte) map[string]rules.Result {
	var reps []rules.Report
	if err := json.Unmarshal(raw, &reps); err != nil {
		var one struct {
			Reports []rules.Report `json:"reports"`
		}
		if json.Unmarshal(raw, &one) != nil {
			return nil
		}
		reps = one.Reports
	}
	out := map[string]rules.Result{}
	for _, rep := range reps {
		target, ok := strings.CutSuffix(rep.Target, ":newest")
		if !ok {
			continue
		}
		for _, r := range rep.Results {
			out[target+"\x00"+r.Rule] = r
		}
	}
	return out
}

// addAuditorFiles writes report.html and oscal/assessment-results.json into the bundle.
func (b *Bundle) addAuditorFiles(ctx context.Context, st *store.Store) error {
	ev, err := b.view(ctx, st)
	if err != nil {
		return err
	}
	page, err := htmlreport.Render(ev, htmlreport.Options{})
	if err != nil {
		return err
	}
	doc, err := oscal.Build(ev)
	if err != nil {
		return fmt.Errorf("incident %s: %s: %w", ev.Incident, OSCALName, err)
	}
	b.files[HTMLReportName], b.files[OSCALName] = page, doc
	return nil
}

// Attestation is the in-toto statement of the bundle: its subject is manifest.json by
// SHA-256, its predicate the test result of the linked rules on each target's newest
// snapshot (a rule per target: "RULE@TARGET"), with the rule set's digest as configuration.
func (b *Bundle) Attestation(manifest []byte) intoto.Statement {
	var passed, warned, failed []string
	for _, t := range b.Manifest.Targets {
		for _, r := range t.Results.Rules {
			name := r.Rule + "@" + t.Target
			switch r.Newest {
			case rules.Pass:
				passed = append(passed, name)
			case rules.Waived, rules.Skip:
				warned = append(warned, name)
			case rules.Fail, rules.Error:
				failed = append(failed, name)
			}
		}
	}
	for _, l := range [][]string{passed, warned, failed} {
		sort.Strings(l)
	}
	sum := sha256.Sum256(manifest)
	digest := strings.TrimPrefix(b.Manifest.RulesDigest, "sha256:")
	return intoto.NewStatement(
		intoto.NewTestResult(passed, warned, failed, intoto.ResourceDescriptor{Name: "rules", Digest: map[string]string{"sha256": digest}}),
		intoto.ResourceDescriptor{Name: ManifestName, Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}})
}

// Seal adds the files that speak of the manifest as key will sign it: the attestation
// (DSSE, signed with key, unsigned when key is nil) and, when ts is not nil, an RFC 3161
// timestamp over the manifest's SHA-256 obtained from it.
func (b *Bundle) Seal(ctx context.Context, key ed25519.PrivateKey, ts func(ctx context.Context, digest []byte) ([]byte, error)) error {
	manifest := b.ManifestBytes(key)
	keyID := ""
	if key != nil {
		keyID = Fingerprint(key.Public().(ed25519.PublicKey))
	}
	env, err := intoto.Sign(b.Attestation(manifest), key, keyID)
	if err != nil {
		return err
	}
	// Beside the manifest, not in its list: Build listed the files already.
	b.files[AttestationName] = env
	if ts != nil {
		sum := sha256.Sum256(manifest)
		resp, err := ts(ctx, sum[:])
		if err != nil {
			return fmt.Errorf("incident %s: timestamp of %s: %w", b.Manifest.Incident, ManifestName, err)
		}
		b.files[TimestampName] = resp
	}
	return nil
}

// Sealed describes what checkSealed found.
type Sealed struct {
	// Attested is true when the bundle has an attestation over its manifest; AttestationSigned
	// when its signature was checked with the public key.
	Attested, AttestationSigned bool
	Result                      string // the attestation's test result: PASSED, WARNED or FAILED
	// Timestamp is the checked RFC 3161 token, when the bundle has one.
	Timestamp *tsa.Token
}

// Option changes what Verify checks.
type Option func(*options)

type options struct{ tsaRoots *x509.CertPool }

// WithTSARoots makes Verify require that a bundle's timestamp, when it has one, was signed by
// a timestamping certificate that chains to roots. Without it the token is checked over the
// manifest, but who issued it is not.
func WithTSARoots(roots *x509.CertPool) Option { return func(o *options) { o.tsaRoots = roots } }

// checkSealed checks the attestation and the timestamp, when present, against the manifest:
// the attestation's subject must be the manifest's SHA-256 and, with pub, its signature must
// verify; the timestamp must cover the manifest's SHA-256 and, with the TSA roots, chain to them.
func checkSealed(files map[string][]byte, pub ed25519.PublicKey, opts []Option, fail func(string, string, ...any) error) (*Sealed, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	roots := o.tsaRoots
	s := &Sealed{}
	manifest := files[ManifestName]
	sum := sha256.Sum256(manifest)
	if env, ok := files[AttestationName]; ok {
		v, err := intoto.Verify(env, pub)
		if err != nil {
			return nil, fail(AttestationName, "%v", err)
		}
		if d, ok := v.Statement.SubjectDigest(ManifestName); !ok || d != hex.EncodeToString(sum[:]) {
			return nil, fail(AttestationName, "its subject is not this manifest.json (sha256 %s): the attestation belongs to another bundle", hex.EncodeToString(sum[:]))
		}
		s.Attested, s.AttestationSigned, s.Result = true, v.Checked, v.Statement.Predicate.Result
	}
	if resp, ok := files[TimestampName]; ok {
		tok, err := tsa.Verify(resp, sum[:], roots)
		if err != nil {
			return nil, fail(TimestampName, "%v", err)
		}
		s.Timestamp = tok
	}
	return s, nil
}
