package trends

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Formats the report renders as.
var Formats = []string{"md", "html", "csv", "json"}

// Write renders the report in one of Formats.
func (r *Report) Write(w io.Writer, format string) error {
	switch format {
	case "md":
		return r.WriteMarkdown(w)
	case "html":
		return r.WriteHTML(w)
	case "csv":
		return r.WriteCSV(w)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return fmt.Errorf("report format %q: want one of %s", format, strings.Join(Formats, ", "))
}

// Human writes a duration in days and hours, or hours and minutes below a day.
func Human(d time.Duration) string {
	switch {
	case d <= 0:
		return "0m"
	case d >= 24*time.Hour:
		days := int(d / (24 * time.Hour))
		h := int((d % (24 * time.Hour)).Round(time.Hour) / time.Hour)
		if h == 24 {
			days, h = days+1, 0
		}
		return fmt.Sprintf("%dd %dh", days, h)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", int(d/time.Hour), int((d%time.Hour).Round(time.Minute)/time.Minute))
	}
	return fmt.Sprintf("%dm", int(d.Round(time.Minute)/time.Minute))
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02") }

// categories lists the report's categories in order of count.
func (r *Report) categoryNames() []string {
	out := make([]string, len(r.Categories))
	for i, c := range r.Categories {
		out[i] = c.Key
	}
	return out
}

func mdCell(s string) string {
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", `\|`)
}

// WriteMarkdown writes the report as Markdown.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Incident trends %s to %s\n\n", day(r.Since), day(r.Until.Add(-time.Nanosecond)))
	p("ISO/IEC 27001:2022 Annex A 5.27: incident data over the period, to find recurring weaknesses.\n\n")
	p("| | |\n|---|---|\n")
	p("| Incidents opened | %d |\n", r.Incidents)
	p("| Not yet verified | %d |\n", r.NotVerified)
	p("| Time to remediate (median, p90) | %s |\n", durCell(r.Remediate))
	p("| Time to verify (median, p90) | %s |\n", durCell(r.Verify))
	p("| Regressions | %d |\n\n", r.Regressions)
	cats := r.categoryNames()
	p("## Incidents per month\n\n| Month | Opened | Regressions | Time to verify (median) |")
	for _, c := range cats {
		p(" %s |", mdCell(c))
	}
	p("\n|---|---|---|---|%s\n", strings.Repeat("---|", len(cats)))
	for _, m := range r.Months {
		med := "–"
		if m.Verify.Count > 0 {
			med = Human(m.Verify.Median)
		}
		p("| %s | %d | %d | %s |", m.Month, m.Opened, m.Regressions, med)
		for _, c := range cats {
			p(" %d |", m.ByCategory[c])
		}
		p("\n")
	}
	p("\n## Incidents per category\n\n")
	mdCounts(&b, "Category", r.Categories)
	for _, s := range []struct {
		title, key string
		cs         []Count
	}{
		{"Regressions per incident", "Incident", r.RegressionsByIncident},
		{"Regressions per control", "Control", r.RegressionsByControl},
		{"Regressions per target", "Target", r.RegressionsByTarget},
		{"Regressions per artifact", "Target:artifact", r.RegressionsByArtifact},
	} {
		p("## %s\n\n", s.title)
		mdCounts(&b, s.key, s.cs)
	}
	p("## Recurring weaknesses\n\nRules that failed in two or more incidents, or on two or more targets, before a fix or as a regression.\n\n")
	if len(r.Recurring) == 0 {
		p("None.\n")
	} else {
		p("| Rule | Controls | Incidents | Targets | Failures | Of which regressions |\n|---|---|---|---|---|---|\n")
		for _, c := range r.Recurring {
			p("| `%s` | %s | %d (%s) | %d (%s) | %d | %d |\n", c.Rule, mdCell(strings.Join(c.Controls, ", ")),
				len(c.Incidents), mdCell(strings.Join(c.Incidents, ", ")), len(c.Targets), mdCell(strings.Join(c.Targets, ", ")), c.Failures, c.Regressions)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func durCell(d Duration) string {
	if d.Count == 0 {
		return "– (none)"
	}
	return fmt.Sprintf("%s, %s (of %d)", Human(d.Median), Human(d.P90), d.Count)
}

func mdCounts(b *bytes.Buffer, key string, cs []Count) {
	if len(cs) == 0 {
		b.WriteString("None.\n\n")
		return
	}
	fmt.Fprintf(b, "| %s | Count |\n|---|---|\n", key)
	for _, c := range cs {
		fmt.Fprintf(b, "| %s | %d |\n", mdCell(c.Key), c.Count)
	}
	b.WriteString("\n")
}

// WriteCSV writes the report as one long table: section, key, measure, value. Durations are
// in hours with two decimals, so spreadsheets can sum and chart them.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	row := func(rec ...string) { cw.Write(rec) }
	hours := func(d time.Duration) string { return strconv.FormatFloat(d.Hours(), 'f', 2, 64) }
	row("section", "key", "measure", "value")
	row("period", day(r.Since), "since", day(r.Since))
	row("period", day(r.Until), "until", day(r.Until.Add(-time.Nanosecond)))
	row("total", "incidents", "count", strconv.Itoa(r.Incidents))
	row("total", "not_verified", "count", strconv.Itoa(r.NotVerified))
	row("total", "regressions", "count", strconv.Itoa(r.Regressions))
	for _, d := range []struct {
		name string
		d    Duration
	}{{"time_to_remediate", r.Remediate}, {"time_to_verify", r.Verify}} {
		row(d.name, "all", "count", strconv.Itoa(d.d.Count))
		if d.d.Count > 0 {
			row(d.name, "all", "median_hours", hours(d.d.Median))
			row(d.name, "all", "p90_hours", hours(d.d.P90))
		}
	}
	for _, m := range r.Months {
		row("month", m.Month, "opened", strconv.Itoa(m.Opened))
		row("month", m.Month, "regressions", strconv.Itoa(m.Regressions))
		if m.Verify.Count > 0 {
			row("month", m.Month, "time_to_verify_median_hours", hours(m.Verify.Median))
		}
		cats := make([]string, 0, len(m.ByCategory))
		for c := range m.ByCategory {
			cats = append(cats, c)
		}
		sort.Strings(cats)
		for _, c := range cats {
			row("month_category", m.Month+" "+c, "opened", strconv.Itoa(m.ByCategory[c]))
		}
	}
	for _, s := range []struct {
		name string
		cs   []Count
	}{{"category", r.Categories}, {"regressions_by_incident", r.RegressionsByIncident}, {"regressions_by_control", r.RegressionsByControl},
		{"regressions_by_target", r.RegressionsByTarget}, {"regressions_by_artifact", r.RegressionsByArtifact}} {
		for _, c := range s.cs {
			row(s.name, c.Key, "count", strconv.Itoa(c.Count))
		}
	}
	for _, c := range r.Recurring {
		row("recurring", c.Rule, "incidents", strconv.Itoa(len(c.Incidents)))
		row("recurring", c.Rule, "targets", strconv.Itoa(len(c.Targets)))
		row("recurring", c.Rule, "failures", strconv.Itoa(c.Failures))
		row("recurring", c.Rule, "regressions", strconv.Itoa(c.Regressions))
		row("recurring", c.Rule, "controls", strings.Join(c.Controls, "; "))
	}
	cw.Flush()
	return cw.Error()
}
