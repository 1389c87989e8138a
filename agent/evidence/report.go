package evidence

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hardtrail/hardtrail/agent/incident"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/rules"
)

// maxReportDiffLines bounds each diff shown in report.md; the whole diff is always in diff/.
const maxReportDiffLines = 400

// renderReport writes report.md: what an auditor reads first.
func renderReport(m *Manifest, state *incident.State, files map[string][]byte) []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Incident %s: evidence of remediation\n\n", m.Incident)
	w("| | |\n|---|---|\n")
	w("| Incident | %s |\n", cell(m.Incident))
	if m.Headline != "" {
		w("| Status | **%s** |\n", cell(m.Headline))
	} else {
		w("| Status | **%s** |\n", m.Status)
	}
	if r := m.Record; r != nil {
		for _, e := range r.Entries {
			if e.Kind != store.KindOpen {
				continue
			}
			w("| Title | %s |\n", cell(e.Title))
			for _, kv := range [][2]string{{"Severity", e.Severity}, {"Ticket", e.Ticket}, {"Category", e.Category}} {
				if kv[1] != "" {
					w("| %s | %s |\n", kv[0], cell(kv[1]))
				}
			}
		}
		for _, e := range r.Entries {
			if e.Kind == store.KindClose {
				w("| Closed | %s, approved by %s |\n", stamp(e.At), cell(e.Approver))
			}
		}
		if r.Reopened {
			w("| Reopened | the incident regressed after it was closed |\n")
		}
	}
	var ts []string
	for _, t := range m.Targets {
		ts = append(ts, fmt.Sprintf("%s (%s)", t.Target, t.Status))
	}
	w("| Targets | %s |\n", cell(strings.Join(ts, ", ")))
	w("| Evidence as of | %s |\n", stamp(m.AsOf))
	if len(m.Rules) > 0 {
		w("| Linked rules | %s |\n", cell(strings.Join(m.Rules, ", ")))
	} else {
		w("| Linked rules | none |\n")
	}
	w("| Rules digest | `%s` |\n", m.RulesDigest)
	if m.RulesFrom != "" {
		w("| Rules from | %s |\n", rulesFrom(m.RulesFrom))
	}
	if m.StoreHead != "" {
		w("| Store head | `%s` (check with `hardtrail store verify --head`) |\n", m.StoreHead)
	}
	w("| Tool version | hardtrail %s |\n\n", cell(m.ToolVersion))
	w("This bundle records the configuration of each target before and after the remediation of\n")
	w("incident %s (ISO/IEC 27001:2022 Annex A 5.27). `before/TARGET/ARTIFACT` and\n", m.Incident)
	w("`after/TARGET/ARTIFACT` hold the captured artifacts byte for byte; `diff/` holds the diff of\n")
	w("each changed artifact, and `diff/combined.diff` applied with `patch -p1` inside `before/`\n")
	w("gives `after/`. `results.json` and `results.junit.xml` hold the outcomes of the rules linked\n")
	w("to the incident; `rules/` holds those rules verbatim, and `evidence verify` evaluates them again\n")
	w("over `before/` and `after/`. `snapshots/ID.json` is each snapshot's canonical manifest (its\n")
	w("SHA-256 is its ID) with how it was captured; `records/incident.json` is the incident's record.\n")
	w("`manifest.json` lists the SHA-256 of every file. Check the whole bundle with\n")
	w("`hardtrail evidence verify FILE --pubkey KEY.pub`.\n\n")
	for _, c := range m.RulesChanged {
		w("Linked rule changed since the previous evaluation: %s.\n\n", code(c.String()))
	}
	renderRecord(&b, m)

	w("## Timeline\n\n")
	w("| Time (UTC) | Event | Target | Snapshot | By | Note |\n|---|---|---|---|---|---|\n")
	for _, e := range timeline(m) {
		w("| %s | %s | %s | `%s` | %s | %s |\n", stamp(e.at), e.what, cell(e.target), store.Short(e.snapshot), cell(e.by), cell(e.note))
	}
	w("\n")

	byTarget := map[string]incident.Target{}
	for _, t := range state.Targets {
		byTarget[t.Target] = t
	}
	for _, t := range m.Targets {
		renderTarget(&b, m, t, byTarget[t.Target], files)
	}
	return []byte(b.String())
}

type event struct {
	at                         time.Time
	order                      int
	what, target, snapshot, by string
	note                       string
}

// timeline lists the captures of the snapshots the incident links, each link and its void, each
// regression and restoration since the fix, and the newest snapshot of each target, in time
// order.
func timeline(m *Manifest) []event {
	var es []event
	captured := map[string]bool{}
	for _, l := range m.Links {
		if !captured[l.Snapshot] {
			captured[l.Snapshot] = true
			es = append(es, event{at: l.TakenAt, what: "snapshot captured", target: l.Target, snapshot: l.Snapshot})
		}
		what := "tagged " + l.Phase
		if l.Signature != "" {
			what += " (signed)"
		}
		es = append(es, event{at: l.At, order: 1, what: what, target: l.Target, snapshot: l.Snapshot, by: store.Who(l.By, l.Who), note: l.Note})
		if v := l.Voided; v != nil {
			es = append(es, event{at: v.At, order: 2, what: "link " + store.Short(l.ID) + " voided", target: l.Target, snapshot: l.Snapshot, by: store.Who(v.By, v.Who), note: v.Reason})
		}
	}
	for _, ts := range m.Targets {
		if ts.History == nil {
			continue
		}
		for _, e := range ts.History.Episodes {
			es = append(es, event{at: e.FirstSeen, what: "regressed", target: ts.Target, snapshot: e.Snapshot})
			if e.Restored != nil {
				es = append(es, event{at: *e.Restored, what: "restored", target: ts.Target, snapshot: e.RestoredBy})
			}
		}
	}
	for _, t := range m.Targets {
		if t.Newest != nil && !captured[t.Newest.ID] {
			captured[t.Newest.ID] = true
			es = append(es, event{at: t.Newest.TakenAt, what: "newest snapshot captured", target: t.Target, snapshot: t.Newest.ID, note: t.Newest.Note})
		}
	}
	sort.SliceStable(es, func(i, j int) bool {
		if !es[i].at.Equal(es[j].at) {
			return es[i].at.Before(es[j].at)
		}
		return es[i].order < es[j].order
	})
	return es
}

func renderTarget(b *strings.Builder, m *Manifest, t Target, ts incident.Target, files map[string][]byte) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("## Target %s: %s\n\n", t.Target, t.Status)
	w("%s.\n\n", sentence(t.Cause))
	w("| Phase | Snapshot | Captured (UTC) |\n|---|---|---|\n")
	for _, p := range []struct {
		name string
		ref  *SnapshotRef
	}{{"before", t.Before}, {"after", t.After}, {"newest", t.Newest}} {
		if p.ref == nil {
			w("| %s | none | |\n", p.name)
			continue
		}
		w("| %s | `%s` | %s |\n", p.name, p.ref.ID, stamp(p.ref.TakenAt))
	}
	w("\n")
	renderProvenance(b, t)
	if !t.Exported {
		w("Not exported: the target needs both a before and an after snapshot.\n\n")
		renderRules(b, m, t, ts)
		return
	}

	w("### What changed\n\n")
	var changed []Artifact
	unchanged := 0
	for _, a := range t.Artifacts {
		if a.Change == Unchanged || a.Change == "" {
			unchanged++
			continue
		}
		changed = append(changed, a)
	}
	if len(changed) == 0 {
		noun := "artifacts"
		if unchanged == 1 {
			noun = "artifact"
		}
		w("Nothing: the before and after snapshots hold the same %d %s.\n\n", unchanged, noun)
	} else {
		w("%d of %d artifacts changed; the others are the same before and after.\n\n", len(changed), len(changed)+unchanged)
		w("| Artifact | Change | Lines | On the newest snapshot |\n|---|---|---|---|\n")
		for _, a := range changed {
			lines := ""
			if a.Diff != "" {
				lines = fmt.Sprintf("+%d −%d", a.Added, a.Removed)
			}
			w("| %s | %s | %s | %s |\n", tcode(a.Name), a.Change, lines, orDash(a.State))
		}
		w("\n")
		for _, a := range changed {
			w("#### %s\n\n", code(a.Name))
			switch {
			case a.Change == NotCaptured:
				w("%s\n\n", notCaptured(a))
			case a.Change == Binary:
				w("Binary content, reported by hash and not diffed: before %s, after %s.\n\n", describe(a.Before), describe(a.After))
			}
			if a.Diff == "" {
				continue
			}
			d := files[a.Diff]
			w("`%s`:\n\n", a.Diff)
			if n := bytes.Count(d, []byte("\n")); n > maxReportDiffLines {
				cut := d
				for i := 0; i < maxReportDiffLines; i++ {
					j := bytes.IndexByte(cut, '\n')
					cut = cut[j+1:]
				}
				w("%s", fenced("diff", d[:len(d)-len(cut)]))
				w("The diff has %d lines; the first %d are shown. The whole diff is `%s`.\n\n", n, maxReportDiffLines, a.Diff)
				continue
			}
			w("%s\n", fenced("diff", d))
		}
	}

	var missing []string
	for _, a := range t.Artifacts {
		if a.Change == Unchanged && a.Before != nil && a.Before.Unavailable+a.Before.Failed != "" {
			missing = append(missing, code(a.Name)+" ("+a.Before.Unavailable+a.Before.Failed+")")
		}
	}
	if len(missing) > 0 {
		w("Not captured before nor after: %s.\n\n", strings.Join(missing, ", "))
	}

	w("### Regression state\n\n")
	renderRegression(b, t, ts)
	renderHistory(b, t)
	renderRules(b, m, t, ts)
}

func notCaptured(a Artifact) string {
	var parts []string
	for _, s := range []struct {
		phase string
		v     *Version
	}{{"before", a.Before}, {"after", a.After}} {
		switch {
		case s.v == nil:
			parts = append(parts, "absent "+s.phase)
		case s.v.Unavailable != "":
			parts = append(parts, "not captured "+s.phase+" ("+s.v.Unavailable+")")
		case s.v.Failed != "":
			parts = append(parts, "failed "+s.phase+" ("+s.v.Failed+")")
		default:
			parts = append(parts, "captured "+s.phase)
		}
	}
	return "Not comparable: " + strings.Join(parts, ", ") + "."
}

func describe(v *Version) string {
	switch {
	case v == nil:
		return "absent"
	case v.Unavailable != "":
		return "not captured (" + v.Unavailable + ")"
	}
	return fmt.Sprintf("sha256 `%s` (%d bytes)", v.SHA256, v.Size)
}

func renderRegression(b *strings.Builder, t Target, ts incident.Target) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	newest := ""
	if t.Newest != nil {
		newest = store.Short(t.Newest.ID)
	}
	var notable []incident.Artifact
	for _, a := range ts.Artifacts {
		if a.State != "" && a.State != "holding" {
			notable = append(notable, a)
		}
	}
	if len(notable) == 0 {
		w("Every hardened change holds on the newest snapshot `%s`: nothing is reverted there and nothing drifted.\n", newest)
		if h := t.History; h != nil && len(h.Episodes) > 0 {
			w("It did not always hold: see the regression history below.\n")
		}
		w("\n")
		return
	}
	w("Judged on the newest snapshot `%s`:\n\n", newest)
	for _, a := range notable {
		line := fmt.Sprintf("- %s: **%s**", code(a.Name), a.State)
		if a.Note != "" {
			line += " (" + a.Note + ")"
		}
		w("%s\n", line)
		if a.Regression == nil {
			continue
		}
		for _, h := range a.Regression.Hardened {
			for _, l := range h.Back {
				w("  - reverted: removed line is back at line %d: %s\n", l.Line, code(l.Text))
			}
			for _, l := range h.Gone {
				w("  - reverted: added line %d is gone: %s\n", l.Line, code(l.Text))
			}
		}
		for _, d := range a.Regression.Drift {
			for _, l := range d.Removed {
				w("  - drift: line %d removed: %s\n", l.Line, code(l.Text))
			}
			for _, l := range d.Added {
				w("  - drift: line %d added: %s\n", l.Line, code(l.Text))
			}
		}
	}
	w("\n")
}

func renderRules(b *strings.Builder, m *Manifest, t Target, ts incident.Target) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("### Rule results\n\n")
	if len(t.Results.Rules) == 0 {
		w("No rule names incident %s, so no test shows the new control works. Add the incident to\n", m.Incident)
		w("the `incidents` list of the rules that check it.\n\n")
		return
	}
	w("The rules linked to the incident, on the before, after and newest snapshots. A rule that\n")
	w("proves the remediation fails before and passes after and on the newest snapshot.\n\n")
	w("| Rule | Severity | Before | After | Newest | Title |\n|---|---|---|---|---|---|\n")
	var odd []string
	for _, r := range t.Results.Rules {
		w("| %s | %s | %s | %s | %s | %s |\n", tcode(r.Rule), r.Severity, orDash(string(r.Before)), orDash(string(r.After)), orDash(string(r.Newest)), cell(r.Title))
		if notApplicable(r) {
			continue
		}
		if r.Before != "" && r.Before != rules.Fail {
			odd = append(odd, fmt.Sprintf("`%s` did not fail before the remediation (%s): it does not show the weakness the incident is about.", r.Rule, r.Before))
		}
		if r.After != "" && r.After != rules.Pass && r.After != rules.Waived {
			odd = append(odd, fmt.Sprintf("`%s` does not pass after the remediation (%s).", r.Rule, r.After))
		}
		if r.Newest != "" && r.Newest != rules.Pass && r.Newest != rules.Waived {
			odd = append(odd, fmt.Sprintf("`%s` does not pass on the newest snapshot (%s).", r.Rule, r.Newest))
		}
	}
	w("\n")
	if len(odd) == 0 {
		w("Every linked rule that applies to the target fails before and passes after and on the newest snapshot.\n\n")
	} else {
		for _, o := range odd {
			w("- %s\n", o)
		}
		w("\n")
	}
	for _, p := range []struct {
		name string
		ref  *SnapshotRef
		res  []rules.Result
	}{{"before", t.Before, ts.RulesBefore}, {"after", t.After, ts.RulesAfter}, {"newest", t.Newest, ts.RulesLatest}} {
		if p.ref == nil {
			continue
		}
		var buf bytes.Buffer
		rules.WriteText(&buf, rules.NewReport(p.res, t.Target+":"+p.name, p.ref.ID, m.RulesDigest, m.AsOf))
		w("%s:\n\n%s\n", strings.ToUpper(p.name[:1])+p.name[1:], fenced("text", buf.Bytes()))
	}
}

// sentence capitalises the first letter of s and drops a final period.
func sentence(s string) string {
	s = strings.TrimSuffix(s, ".")
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// notApplicable reports whether the rule skipped the target on every snapshot.
func notApplicable(r RuleOutcome) bool {
	for _, o := range []rules.Outcome{r.Before, r.After, r.Newest} {
		if o != "" && o != rules.Skip {
			return false
		}
	}
	return true
}

// stamp writes a time in UTC, to the second.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

// code writes text as a Markdown code span, whatever backticks it holds.
func code(s string) string {
	longest, run := 0, 0
	for _, c := range s {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if longest > 0 || s == "" {
		s = " " + s + " "
	}
	return fence + s + fence
}

// tcode is code for a table cell, where a pipe must be escaped even inside a code span.
func tcode(s string) string { return strings.ReplaceAll(code(s), "|", `\|`) }

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func rulesFrom(from string) string {
	switch from {
	case incident.FromStore:
		return "the store: the newest rule set evaluated on the incident's targets"
	case incident.FromGiven:
		return "the rules given at export (not yet evaluated into the store)"
	}
	return "none: no rule names the incident"
}

// renderRecord writes the incident's own record: notes, closure, voids.
func renderRecord(b *strings.Builder, m *Manifest) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	r := m.Record
	if r == nil {
		return
	}
	w("## Incident record\n\n")
	if r.StatusEvents > 0 {
		w("The agent recorded %d status changes of the incident: `%s`.\n\n", r.StatusEvents, StatusEvents)
	}
	if len(r.Entries) == 0 {
		w("The incident was never opened with `hardtrail incident open`: it has no title, ticket or closure.\n\n")
		return
	}
	w("| Time (UTC) | Record | By | Text | Signed |\n|---|---|---|---|---|\n")
	for _, e := range r.Entries {
		var text string
		switch e.Kind {
		case store.KindOpen:
			text = "opened: " + e.Title
		case store.KindNote:
			text = e.Text
		case store.KindClose:
			text = "closed while " + e.Status + ", approved by " + e.Approver
			if e.Lessons != "" {
				text += "; lessons learned: " + e.Lessons
			}
		case store.KindVoid:
			text = "voided link " + store.Short(e.Link) + ": " + e.Text
		}
		signed := "no"
		if e.SignatureFile != "" {
			signed = "`" + e.SignatureFile + "`"
		}
		w("| %s | %s | %s | %s | %s |\n", stamp(e.At), e.Kind, cell(store.Who(e.By, e.Who)), cell(text), signed)
	}
	w("\n")
}

// renderProvenance writes how the target's exported snapshots were captured.
func renderProvenance(b *strings.Builder, t Target) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	var refs []struct {
		name string
		ref  *SnapshotRef
	}
	for _, p := range []struct {
		name string
		ref  *SnapshotRef
	}{{"before", t.Before}, {"after", t.After}, {"newest", t.Newest}} {
		if p.ref != nil && p.ref.Provenance != nil {
			refs = append(refs, p)
		}
	}
	if len(refs) == 0 {
		return
	}
	w("| Phase | Host | Machine ID | Transport | Host key | Tool | Manifest |\n|---|---|---|---|---|---|---|\n")
	for _, p := range refs {
		v := p.ref.Provenance
		w("| %s | %s | %s | %s | %s | %s | `%s` |\n", p.name, cell(orDash(v.Hostname)), cell(orDash(v.MachineID)), cell(v.Transport+" "+v.Address),
			cell(orDash(v.HostKey)), cell(v.ToolVersion), p.ref.Manifest)
	}
	w("\n")
	for _, p := range refs {
		v := p.ref.Provenance
		for _, c := range v.Commands {
			if c.ExitCode != nil && *c.ExitCode != 0 {
				w("- %s: %s exited %d", p.name, code(strings.Join(c.Argv, " ")), *c.ExitCode)
				if s := firstLine(c.Stderr); s != "" {
					w(": %s", code(s))
				}
				w(" (artifact %s)\n", code(c.Artifact))
			}
		}
		for _, u := range v.Unavailable {
			w("- %s: %s not captured: %s\n", p.name, code(u.Artifact), cell(u.Reason))
		}
	}
	w("\n")
}

// renderHistory writes the regression episodes since the fix and the held spans.
func renderHistory(b *strings.Builder, t Target) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	h := t.History
	if h == nil {
		return
	}
	w("### Regression history since the fix\n\n")
	w("Judged on every stored snapshot of %s since the first after link (`%s`, %s): %d snapshots.\n\n",
		t.Target, store.Short(h.Since), stamp(h.SinceAt), h.Snapshots)
	if len(h.Episodes) == 0 {
		w("No snapshot since the fix reverted a hardened change or failed a linked rule.\n\n")
	} else {
		w("%d regressions, %s in total.\n\n", len(h.Episodes), incident.Seconds(h.Regressed))
		w("| # | First seen (UTC) | Snapshot | Restored (UTC) | By snapshot | Duration | What |\n|---|---|---|---|---|---|---|\n")
		for i, e := range h.Episodes {
			restored, by := "not restored", "–"
			if e.Restored != nil {
				restored, by = stamp(*e.Restored), "`"+store.Short(e.RestoredBy)+"`"
			}
			what := append([]string{}, e.Reverted...)
			for _, r := range e.RulesFailed {
				what = append(what, "rule "+r+" fails")
			}
			for j := range what {
				what[j] = tcode(what[j])
			}
			w("| %d | %s | `%s` | %s | %s | %s | %s |\n", i+1, stamp(e.FirstSeen), store.Short(e.Snapshot), restored, by, incident.Seconds(e.Duration), strings.Join(what, "<br>"))
		}
		w("\n")
	}
	if len(h.Held) > 0 {
		w("Held spans (later captures found the snapshot unchanged):\n\n")
		for _, s := range h.Held {
			w("- `%s` held unchanged from %s to %s, %d captures, at most %s apart\n", store.Short(s.Snapshot), stamp(s.Since), stamp(s.Until), s.Count, incident.Seconds(s.MaxGap))
		}
		w("\n")
	}
}
