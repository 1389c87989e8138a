// Package oscal writes an incident's evidence as an OSCAL Assessment Results document.
package oscal

import (
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/hardtrail/hardtrail/agent/evidence/view"
	"github.com/hardtrail/hardtrail/rules"
)

// Version is the OSCAL version the documents are written against and validated with.
const Version = "1.0.4"

// NS is the namespace of the properties that OSCAL does not define.
const NS = "urn:hardtrail:oscal"

// namespace is the UUIDv5 namespace of every identifier in the documents: the same evidence
// always gets the same UUIDs, so bundles stay reproducible byte for byte.
var namespace = uuid5([16]byte{}, "hardtrail evidence")

// uuid5 is the RFC 4122 name-based (SHA-1) UUID of name in namespace ns.
func uuid5(ns [16]byte, name string) [16]byte {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return u
}

// UUID is the document UUID for a name (its parts joined by NUL).
func UUID(parts ...string) string {
	u := uuid5(namespace, strings.Join(parts, "\x00"))
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Token turns text into an OSCAL token (a letter or '_', then letters, digits, '.', '-', '_'),
// as control and target IDs must be: "ISO27001:2022 A.8.9" becomes "ISO27001_2022_A.8.9".
func Token(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	t := b.String()
	if t == "" || !(unicode.IsLetter([]rune(t)[0]) || t[0] == '_') {
		t = "_" + t
	}
	return t
}

// value makes text a valid property value: one line, no surrounding space, not empty.
func value(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	return s
}

type prop struct {
	Name  string `json:"name"`
	NS    string `json:"ns,omitempty"`
	Value string `json:"value"`
}

func p(name, v string) prop { return prop{Name: name, NS: NS, Value: value(v)} }

type hash struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"value"`
}

type rlink struct {
	Href      string `json:"href"`
	MediaType string `json:"media-type,omitempty"`
	Hashes    []hash `json:"hashes,omitempty"`
}

type resource struct {
	UUID        string  `json:"uuid"`
	Title       string  `json:"title,omitempty"`
	Description string  `json:"description,omitempty"`
	Props       []prop  `json:"props,omitempty"`
	RLinks      []rlink `json:"rlinks,omitempty"`
}

type party struct {
	UUID string `json:"uuid"`
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
}

type metadata struct {
	Title        string  `json:"title"`
	LastModified string  `json:"last-modified"`
	Version      string  `json:"version"`
	OSCALVersion string  `json:"oscal-version"`
	Props        []prop  `json:"props,omitempty"`
	Parties      []party `json:"parties,omitempty"`
	Remarks      string  `json:"remarks,omitempty"`
}

type actor struct {
	Type      string `json:"type"`
	ActorUUID string `json:"actor-uuid"`
}

type origin struct {
	Actors []actor `json:"actors"`
}

type subjectRef struct {
	SubjectUUID string `json:"subject-uuid"`
	Type        string `json:"type"`
	Title       string `json:"title,omitempty"`
}

type evidenceRef struct {
	Href        string `json:"href,omitempty"`
	Description string `json:"description"`
	Props       []prop `json:"props,omitempty"`
}

type observation struct {
	UUID             string        `json:"uuid"`
	Title            string        `json:"title,omitempty"`
	Description      string        `json:"description"`
	Props            []prop        `json:"props,omitempty"`
	Methods          []string      `json:"methods"`
	Types            []string      `json:"types,omitempty"`
	Origins          []origin      `json:"origins,omitempty"`
	Subjects         []subjectRef  `json:"subjects,omitempty"`
	RelevantEvidence []evidenceRef `json:"relevant-evidence,omitempty"`
	Collected        string        `json:"collected"`
	Remarks          string        `json:"remarks,omitempty"`
}

type status struct {
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

type findingTarget struct {
	Type     string `json:"type"`
	TargetID string `json:"target-id"`
	Title    string `json:"title,omitempty"`
	Status   status `json:"status"`
}

type uuidRef struct {
	ObservationUUID string `json:"observation-uuid,omitempty"`
	RiskUUID        string `json:"risk-uuid,omitempty"`
}

type finding struct {
	UUID                string        `json:"uuid"`
	Title               string        `json:"title"`
	Description         string        `json:"description"`
	Props               []prop        `json:"props,omitempty"`
	Origins             []origin      `json:"origins,omitempty"`
	Target              findingTarget `json:"target"`
	RelatedObservations []uuidRef     `json:"related-observations,omitempty"`
	RelatedRisks        []uuidRef     `json:"related-risks,omitempty"`
	Remarks             string        `json:"remarks,omitempty"`
}

type response struct {
	UUID        string `json:"uuid"`
	Lifecycle   string `json:"lifecycle"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Props       []prop `json:"props,omitempty"`
}

type risk struct {
	UUID                string     `json:"uuid"`
	Title               string     `json:"title"`
	Description         string     `json:"description"`
	Statement           string     `json:"statement"`
	Props               []prop     `json:"props,omitempty"`
	Status              string     `json:"status"`
	Remediations        []response `json:"remediations,omitempty"`
	RelatedObservations []uuidRef  `json:"related-observations,omitempty"`
}

type controlID struct {
	ControlID string `json:"control-id"`
}

type controlSelection struct {
	Description     string      `json:"description,omitempty"`
	IncludeAll      *struct{}   `json:"include-all,omitempty"`
	IncludeControls []controlID `json:"include-controls,omitempty"`
}

type reviewedControls struct {
	ControlSelections []controlSelection `json:"control-selections"`
}

type inventoryItem struct {
	UUID        string `json:"uuid"`
	Description string `json:"description"`
	Props       []prop `json:"props,omitempty"`
}

type localDefs struct {
	InventoryItems []inventoryItem `json:"inventory-items,omitempty"`
}

type result struct {
	UUID             string           `json:"uuid"`
	Title            string           `json:"title"`
	Description      string           `json:"description"`
	Start            string           `json:"start"`
	End              string           `json:"end,omitempty"`
	Props            []prop           `json:"props,omitempty"`
	LocalDefinitions *localDefs       `json:"local-definitions,omitempty"`
	ReviewedControls reviewedControls `json:"reviewed-controls"`
	Observations     []observation    `json:"observations,omitempty"`
	Risks            []risk           `json:"risks,omitempty"`
	Findings         []finding        `json:"findings,omitempty"`
}

type importAP struct {
	Href    string `json:"href"`
	Remarks string `json:"remarks,omitempty"`
}

type backMatter struct {
	Resources []resource `json:"resources,omitempty"`
}

type assessmentResults struct {
	UUID       string      `json:"uuid"`
	Metadata   metadata    `json:"metadata"`
	ImportAP   importAP    `json:"import-ap"`
	Results    []result    `json:"results"`
	BackMatter *backMatter `json:"back-matter,omitempty"`
}

type document struct {
	AssessmentResults assessmentResults `json:"assessment-results"`
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Path is where the document lives in a bundle.
const Path = "oscal/assessment-results.json"

// Build returns the indented JSON of the OSCAL Assessment Results for ev: one result with an
// observation per captured artifact version (its hash and how it was collected, the file in
// the back matter with its SHA-256) and per rule evaluation, a finding per rule, target and
// control it evidences, and the incident as a finding with its remediation as a risk
// response. Every UUID is derived from the content, so the same evidence gives the same bytes.
func Build(ev *view.Evidence) ([]byte, error) {
	id := ev.Incident
	tool := UUID("party", "hardtrail")
	origins := []origin{{Actors: []actor{{Type: "tool", ActorUUID: tool}}}}
	start := ev.AsOf
	for _, t := range ev.Targets {
		for _, s := range []*view.Snapshot{t.Before, t.After, t.Newest} {
			if s != nil && s.TakenAt.Before(start) {
				start = s.TakenAt
			}
		}
	}
	res := result{
		UUID:        UUID("result", id),
		Title:       "Evidence of the remediation of incident " + id,
		Description: "The configuration of each target before and after the remediation of incident " + id + ", the rules linked to it and their outcomes, judged as of " + stamp(ev.AsOf) + " (ISO/IEC 27001:2022 Annex A 5.27).",
		Start:       stamp(start),
		End:         stamp(ev.AsOf),
		Props:       []prop{p("incident", id), p("status", ev.Status), p("rules-digest", ev.RulesDigest)},
	}
	if ev.StoreHead != "" {
		res.Props = append(res.Props, p("store-head", ev.StoreHead))
	}
	var back []resource
	var items []inventoryItem
	controls := map[string]bool{}
	var incidentObs []uuidRef
	for _, t := range ev.Targets {
		subject := UUID("target", t.Name)
		items = append(items, inventoryItem{UUID: subject, Description: "Target " + t.Name + " as hardtrail captures it",
			Props: []prop{p("target", t.Name)}})
		subj := []subjectRef{{SubjectUUID: subject, Type: "inventory-item", Title: t.Name}}
		for _, a := range t.Artifacts {
			for _, ph := range []struct {
				name string
				v    *view.Version
				s    *view.Snapshot
			}{{"before", a.Before, t.Before}, {"after", a.After, t.After}} {
				if ph.v == nil || ph.s == nil {
					continue
				}
				o := observation{
					UUID:        UUID("observation", id, t.Name, a.Name, ph.name),
					Title:       fmt.Sprintf("%s on %s, %s the remediation", a.Name, t.Name, ph.name),
					Description: fmt.Sprintf("Artifact %s of target %s as captured in snapshot %s (%s the remediation).", a.Name, t.Name, ph.s.ID, ph.name),
					Methods:     []string{"EXAMINE"},
					Origins:     origins,
					Subjects:    subj,
					Collected:   stamp(ph.s.TakenAt),
					Props: []prop{p("target", t.Name), p("artifact", a.Name), p("phase", ph.name), p("snapshot", ph.s.ID),
						p("transport", ph.s.Transport), p("change", a.Change)},
				}
				if ph.s.HostKey != "" {
					o.Props = append(o.Props, p("host-key", ph.s.HostKey))
				}
				how := "read by hardtrail"
				switch {
				case len(ph.v.Command) > 0:
					how = "command " + strings.Join(ph.v.Command, " ")
					o.Props = append(o.Props, p("command", strings.Join(ph.v.Command, " ")))
					if c := ph.v.ExitCode; c != nil {
						how += fmt.Sprintf(" exited %d", *c)
						o.Props = append(o.Props, p("exit-code", fmt.Sprint(*c)))
					}
				case ph.v.File != "":
					how = "file " + ph.v.File + " read"
					o.Props = append(o.Props, p("file", ph.v.File))
				}
				if ph.v.Unavailable != "" {
					o.Props = append(o.Props, p("unavailable", ph.v.Unavailable))
					o.Remarks = "Not captured: " + ph.v.Unavailable
				} else {
					res := UUID("resource", id, ph.v.Path)
					o.Props = append(o.Props, p("sha256", ph.v.SHA256), p("size", fmt.Sprint(ph.v.Size)))
					o.RelevantEvidence = []evidenceRef{{Href: "#" + res, Description: fmt.Sprintf("The captured content (%s, over %s), sha256 %s.", how, ph.s.Transport, ph.v.SHA256)}}
					back = append(back, resource{UUID: res, Title: ph.v.Path, Description: fmt.Sprintf("%s of %s, %s the remediation", a.Name, t.Name, ph.name),
						RLinks: []rlink{{Href: "../" + ph.v.Path, MediaType: "text/plain", Hashes: []hash{{Algorithm: "SHA-256", Value: ph.v.SHA256}}}}})
				}
				res.Observations = append(res.Observations, o)
				if a.Change != "unchanged" && a.Change != "" {
					incidentObs = append(incidentObs, uuidRef{ObservationUUID: o.UUID})
				}
			}
		}
		for _, r := range t.Rules {
			obs := observation{
				UUID:        UUID("rule-observation", id, t.Name, r.ID),
				Title:       fmt.Sprintf("Rule %s on %s", r.ID, t.Name),
				Description: fmt.Sprintf("Rule %s (%s) evaluated on the captured artifacts of %s: before %s, after %s, newest %s. Expected %s; found %s.", r.ID, r.Title, t.Name, or(r.Before), or(r.After), or(r.Newest), orNone(r.Expected), orNone(r.Actual)),
				Methods:     []string{"TEST"},
				Origins:     origins,
				Subjects:    subj,
				Collected:   stamp(ev.AsOf),
				Props: []prop{p("rule", r.ID), p("severity", r.Severity), p("outcome-before", string(or(r.Before))),
					p("outcome-after", string(or(r.After))), p("outcome-newest", string(or(r.Newest)))},
			}
			if t.Newest != nil {
				obs.Collected = stamp(t.Newest.TakenAt)
				obs.Props = append(obs.Props, p("snapshot", t.Newest.ID))
			}
			res.Observations = append(res.Observations, obs)
			incidentObs = append(incidentObs, uuidRef{ObservationUUID: obs.UUID})
			state, reason := "not-satisfied", "fail"
			if view.Holds(r.Newest) {
				state, reason = "satisfied", "pass"
			}
			cs := r.Controls
			if len(cs) == 0 {
				cs = []string{"rule " + r.ID}
			}
			for _, c := range cs {
				controls[c] = true
				res.Findings = append(res.Findings, finding{
					UUID:        UUID("finding", id, t.Name, r.ID, c),
					Title:       fmt.Sprintf("%s on %s: %s", c, t.Name, r.Title),
					Description: fmt.Sprintf("Rule %s evidences %s on target %s; on the newest snapshot it was %s.", r.ID, c, t.Name, or(r.Newest)),
					Props:       []prop{p("rule", r.ID), p("control", c), p("target", t.Name)},
					Origins:     origins,
					Target: findingTarget{Type: "objective-id", TargetID: Token(c), Title: c,
						Status: status{State: state, Reason: reason}},
					RelatedObservations: []uuidRef{{ObservationUUID: obs.UUID}},
				})
			}
		}
	}
	// The incident itself: a finding, with its remediation as the response to a risk.
	riskStatus, lifecycle, state := "open", "planned", "not-satisfied"
	switch ev.Status {
	case "verified":
		riskStatus, lifecycle, state = "closed", "completed", "satisfied"
	case "remediated":
		riskStatus, lifecycle = "remediating", "completed"
	case "regressed":
		riskStatus, lifecycle = "open", "completed"
	}
	var changed []string
	for _, t := range ev.Targets {
		for _, a := range t.Artifacts {
			if a.Change != "" && a.Change != "unchanged" {
				changed = append(changed, fmt.Sprintf("%s on %s (%s, +%d -%d)", a.Name, t.Name, a.Change, a.Added, a.Removed))
			}
		}
	}
	remedy := "No artifact changed between the before and after snapshots."
	if len(changed) > 0 {
		remedy = "The remediation changed " + strings.Join(changed, "; ") + ". The diffs are in the bundle's diff/ directory."
	}
	title := ev.Title
	if title == "" {
		title = "Incident " + id
	}
	rk := risk{
		UUID:        UUID("risk", id),
		Title:       title,
		Description: "The weakness behind incident " + id + ".",
		Statement:   fmt.Sprintf("Incident %s is %s.", id, ev.Status),
		Props:       []prop{p("incident", id)},
		Status:      riskStatus,
		Remediations: []response{{UUID: UUID("response", id), Lifecycle: lifecycle, Title: "Remediation of " + id,
			Description: remedy}},
	}
	if ev.Category != "" {
		rk.Props = append(rk.Props, p("category", ev.Category))
	}
	if len(incidentObs) > 0 {
		rk.RelatedObservations = incidentObs
	}
	res.Risks = []risk{rk}
	var causes []string
	for _, t := range ev.Targets {
		causes = append(causes, fmt.Sprintf("%s: %s (%s)", t.Name, t.Status, t.Cause))
	}
	incFinding := finding{
		UUID:        UUID("incident-finding", id),
		Title:       title,
		Description: fmt.Sprintf("Incident %s is %s. %s.", id, ev.Status, strings.Join(causes, "; ")),
		Props:       []prop{p("incident", id), p("status", ev.Status)},
		Origins:     origins,
		Target: findingTarget{Type: "objective-id", TargetID: Token("incident-" + id), Title: "Remediation of incident " + id,
			Status: status{State: state, Reason: Token(ev.Status)}},
		RelatedRisks: []uuidRef{{RiskUUID: rk.UUID}},
	}
	if ev.Category != "" {
		incFinding.Props = append(incFinding.Props, p("category", ev.Category))
	}
	res.Findings = append(res.Findings, incFinding)
	if len(incidentObs) > 0 {
		incFinding.RelatedObservations = incidentObs
		res.Findings[len(res.Findings)-1] = incFinding
	}
	if len(items) > 0 {
		res.LocalDefinitions = &localDefs{InventoryItems: items}
	}
	if len(controls) == 0 {
		res.ReviewedControls = reviewedControls{ControlSelections: []controlSelection{{
			Description: "No rule is linked to the incident, so no control was tested.", IncludeAll: &struct{}{}}}}
	} else {
		cs := make([]string, 0, len(controls))
		for c := range controls {
			cs = append(cs, c)
		}
		sort.Strings(cs)
		sel := controlSelection{Description: "The controls the rules linked to incident " + id + " evidence: " + strings.Join(cs, ", ") + "."}
		for _, c := range cs {
			sel.IncludeControls = append(sel.IncludeControls, controlID{ControlID: Token(c)})
		}
		res.ReviewedControls = reviewedControls{ControlSelections: []controlSelection{sel}}
	}
	doc := document{AssessmentResults: assessmentResults{
		UUID: UUID("assessment-results", id, ev.ManifestSHA256),
		Metadata: metadata{
			Title:        "Incident " + id + ": assessment results",
			LastModified: stamp(ev.AsOf),
			Version:      value(ev.ToolVersion),
			OSCALVersion: Version,
			Props:        []prop{p("incident", id), p("rules-digest", ev.RulesDigest)},
			Parties:      []party{{UUID: tool, Type: "organization", Name: "hardtrail " + value(ev.ToolVersion)}},
			Remarks:      "Written by hardtrail from the evidence bundle of incident " + id + ". Paths are relative to this file inside the bundle.",
		},
		ImportAP: importAP{Href: "../manifest.json",
			Remarks: "There is no separate OSCAL assessment plan: the bundle's manifest lists what was assessed."},
		Results: []result{res},
	}}
	if len(back) > 0 {
		doc.AssessmentResults.BackMatter = &backMatter{Resources: back}
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

func or(o rules.Outcome) rules.Outcome {
	if o == "" {
		return "none"
	}
	return o
}
