// Package htmlreport renders an incident's evidence as one self-contained HTML page that
// makes no network request: inline CSS, no script, a Content-Security-Policy that forbids
// everything else.
package htmlreport

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"strings"
	"sync"
	"time"

	"github.com/hardtrail/hardtrail/agent/evidence/view"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/diff"
	"github.com/hardtrail/hardtrail/rules"
)

// CSP is the page's Content-Security-Policy: nothing may load but inline styles and data:
// images, so the page reads the same offline and cannot call out.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

// Name is the report's file name in a bundle.
const Name = "report.html"

// MaxRows bounds the side-by-side rows shown per artifact; the whole diff is in the bundle.
const MaxRows = 2000

//go:embed report.html.tmpl
var reportTmpl string

var funcs = template.FuncMap{
	"stamp": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"short": store.Short,
	"join":  strings.Join,
	"outcome": func(o rules.Outcome) string {
		if o == "" {
			return "–"
		}
		return string(o)
	},
	"dash": func(s string) string {
		if s == "" {
			return "–"
		}
		return s
	},
	"title": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	},
	"csp": func() string { return CSP },
}

// page is parsed on first use, not at the start of every command.
var page = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Funcs(funcs).Parse(reportTmpl))
})

// Diff is one artifact's side-by-side diff.
type Diff struct {
	Artifact  view.Artifact
	Rows      []Row
	Truncated int // rows left out past MaxRows
	Note      string
}

// TargetPage is a target with its diffs.
type TargetPage struct {
	view.Target
	Changed   []view.Artifact
	Unchanged int
	Diffs     []Diff
}

type data struct {
	*view.Evidence
	Regressions int
	Targets     []TargetPage
}

// Options change how the page is rendered. There are none yet: the bundle's page and the
// agent's are the same.
type Options struct{}

// Render writes the report of ev.
func Render(ev *view.Evidence, opt Options) ([]byte, error) {
	d := data{Evidence: ev}
	for _, h := range ev.History {
		if h.To == "regressed" {
			d.Regressions++
		}
	}
	for _, t := range ev.Targets {
		tp := TargetPage{Target: t}
		for _, a := range t.Artifacts {
			if a.Change == "" || a.Change == "unchanged" {
				tp.Unchanged++
				continue
			}
			tp.Changed = append(tp.Changed, a)
			df := Diff{Artifact: a}
			switch {
			case a.Change == "binary":
				df.Note = "Binary content: compared by hash, not diffed."
			case a.Change == "not-captured":
				df.Note = "Not comparable: " + describe(a.Before, "before") + ", " + describe(a.After, "after") + "."
			default:
				var bc, ac []byte
				if a.Before != nil {
					bc = a.Before.Content
				}
				if a.After != nil {
					ac = a.After.Content
				}
				if diff.IsBinary(bc) || diff.IsBinary(ac) {
					df.Note = "Binary content: compared by hash, not diffed."
					break
				}
				df.Rows = SideBySide(bc, ac)
				if len(df.Rows) > MaxRows {
					df.Truncated = len(df.Rows) - MaxRows
					df.Rows = df.Rows[:MaxRows]
				}
			}
			tp.Diffs = append(tp.Diffs, df)
		}
		d.Targets = append(d.Targets, tp)
	}
	var b bytes.Buffer
	if err := page().Execute(&b, d); err != nil {
		return nil, fmt.Errorf("render %s for incident %s: %w", Name, ev.Incident, err)
	}
	return b.Bytes(), nil
}

func describe(v *view.Version, phase string) string {
	switch {
	case v == nil:
		return "absent " + phase
	case v.Unavailable != "":
		return "not captured " + phase + " (" + v.Unavailable + ")"
	}
	return "captured " + phase
}
