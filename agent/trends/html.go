package trends

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"sync"
	"time"
)

// CSP forbids the page every request: inline styles only.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

//go:embed trends.html.tmpl
var htmlTmpl string

var palette = []string{"#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bc4c00", "#1b7c83", "#6e7781"}

var htmlPage = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("trends").Funcs(template.FuncMap{
		"human": Human,
		"day":   day,
		"f1":    func(v float64) string { return fmt.Sprintf("%.1f", v) },
		"join":  strings.Join,
		"csp":   func() string { return CSP },
		"dur":   durCell,
	}).Parse(htmlTmpl))
})

// Rect is one bar of a chart.
type Rect struct {
	X, Y, W, H float64
	Fill       string
	Title      string
}

// Label is text on a chart.
type Label struct {
	X, Y   float64
	Text   string
	Anchor string
}

// Chart is an inline SVG chart, laid out in Go so the template only draws.
type Chart struct {
	W, H   float64
	Rects  []Rect
	Labels []Label
	Line   string // polyline points
	Dots   []Rect // X, Y of each point
	Legend []Rect // swatches, with Title the name
	Axis   []Label
}

func (r *Report) monthChart() Chart {
	c := Chart{W: 760, H: 260}
	left, top, bottom := 40.0, 16.0, 40.0
	ph := c.H - top - bottom
	maxN := 1
	for _, m := range r.Months {
		maxN = max(maxN, m.Opened)
	}
	cats := r.categoryNames()
	colour := map[string]string{}
	for i, k := range cats {
		colour[k] = palette[i%len(palette)]
		c.Legend = append(c.Legend, Rect{X: left + float64(i%4)*180, Y: c.H - 14 + float64(i/4)*14, W: 10, H: 10, Fill: colour[k], Title: k})
	}
	if len(cats) > 4 {
		c.H += float64((len(cats)-1)/4) * 14
	}
	n := max(1, len(r.Months))
	slot := (c.W - left - 10) / float64(n)
	for i, m := range r.Months {
		x := left + float64(i)*slot + slot*0.15
		y := top + ph
		for _, k := range cats {
			v := m.ByCategory[k]
			if v == 0 {
				continue
			}
			h := ph * float64(v) / float64(maxN)
			y -= h
			c.Rects = append(c.Rects, Rect{X: x, Y: y, W: slot * 0.7, H: h, Fill: colour[k], Title: fmt.Sprintf("%s %s: %d", m.Month, k, v)})
		}
		c.Axis = append(c.Axis, Label{X: x + slot*0.35, Y: top + ph + 14, Text: m.Month[2:], Anchor: "middle"})
		if m.Opened > 0 {
			c.Labels = append(c.Labels, Label{X: x + slot*0.35, Y: y - 3, Text: fmt.Sprint(m.Opened), Anchor: "middle"})
		}
	}
	c.Axis = append(c.Axis, Label{X: left - 6, Y: top + 4, Text: fmt.Sprint(maxN), Anchor: "end"}, Label{X: left - 6, Y: top + ph, Text: "0", Anchor: "end"})
	return c
}

func (r *Report) verifyChart() Chart {
	c := Chart{W: 760, H: 220}
	left, top, bottom := 56.0, 16.0, 28.0
	ph := c.H - top - bottom
	maxH := 1.0
	for _, m := range r.Months {
		if m.Verify.Count > 0 {
			maxH = max(maxH, m.Verify.Median.Hours())
		}
	}
	n := max(1, len(r.Months))
	slot := (c.W - left - 10) / float64(n)
	var pts []string
	for i, m := range r.Months {
		x := left + float64(i)*slot + slot/2
		c.Axis = append(c.Axis, Label{X: x, Y: top + ph + 14, Text: m.Month[2:], Anchor: "middle"})
		if m.Verify.Count == 0 {
			continue
		}
		y := top + ph - ph*m.Verify.Median.Hours()/maxH
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		c.Dots = append(c.Dots, Rect{X: x, Y: y, Title: fmt.Sprintf("%s: median %s over %d incidents", m.Month, Human(m.Verify.Median), m.Verify.Count)})
	}
	c.Line = strings.Join(pts, " ")
	c.Axis = append(c.Axis, Label{X: left - 6, Y: top + 4, Text: Human(time.Duration(maxH * float64(time.Hour))), Anchor: "end"},
		Label{X: left - 6, Y: top + ph, Text: "0", Anchor: "end"})
	return c
}

func barChart(cs []Count, limit int) Chart {
	if len(cs) > limit {
		cs = cs[:limit]
	}
	c := Chart{W: 760, H: float64(len(cs))*22 + 8}
	left := 260.0
	maxN := 1
	for _, x := range cs {
		maxN = max(maxN, x.Count)
	}
	for i, x := range cs {
		y := 4 + float64(i)*22
		w := (c.W - left - 40) * float64(x.Count) / float64(maxN)
		c.Rects = append(c.Rects, Rect{X: left, Y: y, W: w, H: 16, Fill: palette[1], Title: fmt.Sprintf("%s: %d", x.Key, x.Count)})
		c.Axis = append(c.Axis, Label{X: left - 8, Y: y + 12, Text: x.Key, Anchor: "end"})
		c.Labels = append(c.Labels, Label{X: left + w + 6, Y: y + 12, Text: fmt.Sprint(x.Count), Anchor: "start"})
	}
	return c
}

// WriteHTML writes the report as one self-contained page with inline SVG charts.
func (r *Report) WriteHTML(w io.Writer) error {
	return htmlPage().Execute(w, struct {
		*Report
		Through                               time.Time
		Categories                            []string
		MonthChart, VerifyChart, ControlChart Chart
	}{r, r.Until.Add(-time.Nanosecond), r.categoryNames(), r.monthChart(), r.verifyChart(), barChart(r.RegressionsByControl, 20)})
}
