// Package trends computes the incident trend report of ISO 27001 Annex A 5.27: incidents per
// month and category, time to remediate and verify, regressions, and recurring weaknesses.
package trends

import (
	"math"
	"sort"
	"time"
)

// Uncategorised is the category of an incident whose record names none.
const Uncategorised = "uncategorised"

// Incident is one incident's history, as the report needs it.
type Incident struct {
	ID string
	// Category is the attack vector or kind the incident record names ("" for none).
	Category string
	Opened   time.Time
	// Remediated is when every target had first reached remediated or verified; Verified when
	// every target had first been verified. Zero when that has not happened.
	Remediated, Verified time.Time
	Targets              []string
	Regressions          []Regression
	// Weaknesses are the rules that failed on the incident's before snapshots: what the
	// incident was about.
	Weaknesses []Failure
}

// Regression is one return of an incident to regressed on a target.
type Regression struct {
	At     time.Time
	Target string
	// Rules are the linked rules that failed then, with the controls they evidence; Artifacts
	// the hardened artifacts that differed from the after snapshot.
	Rules     []Failure
	Artifacts []string
}

// Failure is a rule that failed on a target.
type Failure struct {
	Rule     string
	Target   string
	Controls []string
}

// Window is the span the report covers: incidents opened in [Since, Until).
type Window struct{ Since, Until time.Time }

// Report is the trend report. Its JSON field names are stable.
type Report struct {
	Since     time.Time `json:"since"`
	Until     time.Time `json:"until"`
	Incidents int       `json:"incidents"`
	// Months has every month of the window, oldest first, with zero counts too.
	Months     []Month  `json:"months"`
	Categories []Count  `json:"categories"`
	Remediate  Duration `json:"time_to_remediate"`
	Verify     Duration `json:"time_to_verify"`
	// Open counts the incidents not yet verified.
	NotVerified int `json:"not_verified"`

	Regressions           int     `json:"regressions"`
	RegressionsByIncident []Count `json:"regressions_by_incident"`
	RegressionsByControl  []Count `json:"regressions_by_control"`
	RegressionsByTarget   []Count `json:"regressions_by_target"`
	RegressionsByArtifact []Count `json:"regressions_by_artifact"`
	// Recurring lists the rules that failed in two or more incidents, or on two or more
	// targets, before a fix or as a regression.
	Recurring []Recurring `json:"recurring"`
}

// Month is one calendar month (UTC) of the window.
type Month struct {
	Month      string         `json:"month"` // YYYY-MM
	Opened     int            `json:"opened"`
	ByCategory map[string]int `json:"by_category"`
	// Verify is the time to verify of the incidents opened that month and verified.
	Verify      Duration `json:"time_to_verify"`
	Regressions int      `json:"regressions"` // regressions that happened that month
}

// Count is a key and how often it occurs.
type Count struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// Duration summarises a set of durations: how many, their median and 90th percentile.
type Duration struct {
	Count  int           `json:"count"`
	Median time.Duration `json:"median_ns"`
	P90    time.Duration `json:"p90_ns"`
}

// Recurring is a weakness that comes back.
type Recurring struct {
	Rule      string   `json:"rule"`
	Controls  []string `json:"controls"`
	Incidents []string `json:"incidents"`
	Targets   []string `json:"targets"`
	// Failures counts every failure: before a fix and as a regression.
	Failures    int `json:"failures"`
	Regressions int `json:"regressions"`
}

// Summarise returns the count, median and 90th percentile (nearest rank) of ds. The median
// of an even count is the mean of the two middle values.
func Summarise(ds []time.Duration) Duration {
	if len(ds) == 0 {
		return Duration{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	rank := int(math.Ceil(0.9*float64(n))) - 1
	return Duration{Count: n, Median: med, P90: s[rank]}
}

func monthOf(t time.Time) string { return t.UTC().Format("2006-01") }

// Compute builds the report of the incidents opened within w.
func Compute(incs []Incident, w Window) *Report {
	r := &Report{Since: w.Since.UTC(), Until: w.Until.UTC()}
	months := map[string]*Month{}
	for m := time.Date(w.Since.Year(), w.Since.Month(), 1, 0, 0, 0, 0, time.UTC); m.Before(w.Until); m = m.AddDate(0, 1, 0) {
		r.Months = append(r.Months, Month{Month: monthOf(m), ByCategory: map[string]int{}})
	}
	for i := range r.Months {
		months[r.Months[i].Month] = &r.Months[i]
	}
	cats := map[string]int{}
	var rem, ver []time.Duration
	verByMonth := map[string][]time.Duration{}
	byInc, byCtl, byTgt, byArt := map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	type occ struct {
		controls           map[string]bool
		incidents, targets map[string]bool
		failures, regs     int
	}
	rec := map[string]*occ{}
	note := func(f Failure, inc string, regression bool) {
		o := rec[f.Rule]
		if o == nil {
			o = &occ{controls: map[string]bool{}, incidents: map[string]bool{}, targets: map[string]bool{}}
			rec[f.Rule] = o
		}
		for _, c := range f.Controls {
			o.controls[c] = true
		}
		o.incidents[inc] = true
		o.targets[f.Target] = true
		o.failures++
		if regression {
			o.regs++
		}
	}
	for _, inc := range incs {
		if inc.Opened.Before(w.Since) || !inc.Opened.Before(w.Until) {
			continue
		}
		r.Incidents++
		cat := inc.Category
		if cat == "" {
			cat = Uncategorised
		}
		cats[cat]++
		m := months[monthOf(inc.Opened)]
		m.Opened++
		m.ByCategory[cat]++
		if !inc.Remediated.IsZero() {
			rem = append(rem, inc.Remediated.Sub(inc.Opened))
		}
		if inc.Verified.IsZero() {
			r.NotVerified++
		} else {
			d := inc.Verified.Sub(inc.Opened)
			ver = append(ver, d)
			verByMonth[m.Month] = append(verByMonth[m.Month], d)
		}
		for _, f := range inc.Weaknesses {
			note(f, inc.ID, false)
		}
		for _, g := range inc.Regressions {
			r.Regressions++
			byInc[inc.ID]++
			byTgt[g.Target]++
			if gm, ok := months[monthOf(g.At)]; ok {
				gm.Regressions++
			}
			ctls := map[string]bool{}
			for _, f := range g.Rules {
				for _, c := range f.Controls {
					ctls[c] = true
				}
				note(f, inc.ID, true)
			}
			for c := range ctls {
				byCtl[c]++
			}
			for _, a := range g.Artifacts {
				byArt[g.Target+":"+a]++
			}
		}
	}
	r.Categories = counts(cats)
	r.Remediate, r.Verify = Summarise(rem), Summarise(ver)
	for i := range r.Months {
		r.Months[i].Verify = Summarise(verByMonth[r.Months[i].Month])
	}
	r.RegressionsByIncident, r.RegressionsByControl = counts(byInc), counts(byCtl)
	r.RegressionsByTarget, r.RegressionsByArtifact = counts(byTgt), counts(byArt)
	for rule, o := range rec {
		if len(o.incidents) < 2 && len(o.targets) < 2 {
			continue
		}
		r.Recurring = append(r.Recurring, Recurring{Rule: rule, Controls: keys(o.controls), Incidents: keys(o.incidents),
			Targets: keys(o.targets), Failures: o.failures, Regressions: o.regs})
	}
	sort.Slice(r.Recurring, func(i, j int) bool {
		a, b := r.Recurring[i], r.Recurring[j]
		if len(a.Incidents) != len(b.Incidents) {
			return len(a.Incidents) > len(b.Incidents)
		}
		if a.Failures != b.Failures {
			return a.Failures > b.Failures
		}
		return a.Rule < b.Rule
	})
	if r.Recurring == nil {
		r.Recurring = []Recurring{}
	}
	return r
}

// counts sorts a histogram by count, most first, then by key.
func counts(m map[string]int) []Count {
	out := make([]Count, 0, len(m))
	for k, n := range m {
		out = append(out, Count{k, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key < out[j].Key
	})
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
