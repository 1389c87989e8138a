package daemon

import (
	"bytes"
	"cmp"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/hardtrail/hardtrail/agent/incident"
	"github.com/hardtrail/hardtrail/internal/buildinfo"
)

// family is one metric the README's "Metrics" table documents, or the outcome of the last reload.
type family struct {
	name, help string
	typ        dto.MetricType
	labels     []string // sorted, as the exposition writes them
}

// The families.
var (
	buildInfoFam = family{"hardtrail_build_info", "Build of the hardtrail agent; always 1.", dto.MetricType_GAUGE, []string{"goversion", "revision", "version"}}
	targetUpFam  = family{"hardtrail_target_up", "1 when the last collection of the target succeeded.", dto.MetricType_GAUGE, []string{"target"}}
	snapshotFam  = family{"hardtrail_snapshot_timestamp_seconds", "Time of the newest stored snapshot of the target.", dto.MetricType_GAUGE, []string{"target"}}
	durationFam  = family{"hardtrail_collect_duration_seconds", "Duration of the last collection of the target.", dto.MetricType_GAUGE, []string{"target"}}
	errorsFam    = family{"hardtrail_collect_errors_total", "Failed collections of the target since the agent started.", dto.MetricType_COUNTER, []string{"target"}}
	ruleFam      = family{"hardtrail_rule_success",
		"1 when the rule passes (or is waived) on the target's newest snapshot, 0 when it fails or cannot be evaluated.", dto.MetricType_GAUGE, []string{"rule", "severity", "target"}}
	driftFam = family{"hardtrail_artifact_drift",
		"1 when the artifact in the target's newest snapshot differs from its hardened baseline (the target's most recently tagged after snapshot).", dto.MetricType_GAUGE, []string{"artifact", "target"}}
	incidentFam = family{"hardtrail_incident_status",
		"Remediation status of the incident on the target: exactly one of open, remediated, verified, regressed is 1.", dto.MetricType_GAUGE, []string{"incident", "status", "target"}}
	reloadFam      = family{"hardtrail_reload_success", "1 when the last load of the configuration and rules succeeded.", dto.MetricType_GAUGE, nil}
	reloadTimeFam  = family{"hardtrail_reload_timestamp_seconds", "Time of the last successful load of the configuration and rules.", dto.MetricType_GAUGE, nil}
	leasedFam      = family{"hardtrail_leased_targets", "Targets whose leases this agent holds in the shared store.", dto.MetricType_GAUGE, []string{"agent"}}
	leaseAgentsFam = family{"hardtrail_lease_agents", "Live agents dividing this agent's targets, itself included.", dto.MetricType_GAUGE, nil}
)

// Registry gathers the agent's metrics: the hardtrail_ families, built from the published
// State once per State (a published State never changes) and shared by every scrape of it,
// and the Go runtime and process collectors. It is safe for concurrent use. Handler serves
// its text exposition from bytes encoded once per State (see exposition).
type Registry struct {
	state   func() *State
	runtime *prometheus.Registry

	mu       sync.Mutex
	built    bool
	last     *State
	families []*dto.MetricFamily
	expo     *exposition
}

var _ prometheus.Gatherer = (*Registry)(nil)

// NewRegistry returns a registry of the States that state returns, with the Go runtime and
// process collectors, and nothing else.
func NewRegistry(state func() *State) *Registry {
	rt := prometheus.NewRegistry()
	rt.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Registry{state: state, runtime: rt}
}

// Gather implements prometheus.Gatherer: the families sorted by name, each one's metrics
// sorted by their label values, as a prometheus.Registry gathers them. It reads whatever
// State the function returns and never waits for a collection.
func (r *Registry) Gather() ([]*dto.MetricFamily, error) {
	ours := r.ours(r.state())
	rt, err := r.runtime.Gather()
	all := make([]*dto.MetricFamily, 0, len(ours)+len(rt))
	all = append(append(all, ours...), rt...)
	slices.SortFunc(all, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return all, err
}

// ours returns the hardtrail_ families of s, building them when s is not the State of the
// previous call. The families are shared: nobody may change them.
func (r *Registry) ours(s *State) []*dto.MetricFamily {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.built || s != r.last {
		r.families, r.last, r.built = build(s), s, true
	}
	return r.families
}

// series is one metric of a family being built: its label values in the family's label order.
type series struct {
	values []string
	value  float64
}

// builder makes the metric families of one State, sharing label pairs and values between
// series.
type builder struct {
	pairs map[[2]string]*dto.LabelPair
	out   []*dto.MetricFamily
}

// Shared by every series whose value is 0 or 1, which most are.
var (
	zeroGauge, oneGauge     = &dto.Gauge{Value: ptr(0.0)}, &dto.Gauge{Value: ptr(1.0)}
	zeroCounter, oneCounter = &dto.Counter{Value: ptr(0.0)}, &dto.Counter{Value: ptr(1.0)}
)

func ptr[T any](v T) *T { return &v }

func (b *builder) pair(name, value string) *dto.LabelPair {
	k := [2]string{name, value}
	if p, ok := b.pairs[k]; ok {
		return p
	}
	if !utf8.ValidString(value) {
		value = strings.ToValidUTF8(value, "\uFFFD")
	}
	p := &dto.LabelPair{Name: ptr(name), Value: ptr(value)}
	b.pairs[k] = p
	return p
}

// add appends the family of the series, sorted by their label values.
func (b *builder) add(f family, ss []series) {
	metrics := make([]dto.Metric, len(ss))
	labels := make([]*dto.LabelPair, len(ss)*len(f.labels))
	ms := make([]*dto.Metric, len(ss))
	for i, s := range ss {
		m := &metrics[i]
		m.Label = labels[i*len(f.labels) : (i+1)*len(f.labels) : (i+1)*len(f.labels)]
		for j, name := range f.labels {
			m.Label[j] = b.pair(name, s.values[j])
		}
		switch {
		case f.typ == dto.MetricType_COUNTER && s.value == 0:
			m.Counter = zeroCounter
		case f.typ == dto.MetricType_COUNTER && s.value == 1:
			m.Counter = oneCounter
		case f.typ == dto.MetricType_COUNTER:
			m.Counter = &dto.Counter{Value: ptr(s.value)}
		case s.value == 0:
			m.Gauge = zeroGauge
		case s.value == 1:
			m.Gauge = oneGauge
		default:
			m.Gauge = &dto.Gauge{Value: ptr(s.value)}
		}
		ms[i] = m
	}
	b.out = append(b.out, &dto.MetricFamily{Name: ptr(f.name), Help: ptr(f.help), Type: f.typ.Enum(), Metric: ms})
}

// build makes the hardtrail_ families of s (nil: before the first cycle, the build alone).
func build(s *State) []*dto.MetricFamily {
	b := &builder{pairs: map[[2]string]*dto.LabelPair{}}
	for _, fs := range collect(s) {
		b.add(fs.family, fs.series)
	}
	return b.out
}

// familySeries is one family's series, sorted by their label values.
type familySeries struct {
	family
	series []series
}

// collect returns the hardtrail_ families of s that have series, sorted by name, each one's
// series sorted by their label values: what build makes metric families of and writeText
// writes out.
func collect(s *State) []familySeries {
	var out []familySeries
	add := func(f family, ss []series) {
		if len(ss) > 0 {
			out = append(out, familySeries{f, ss})
		}
	}
	sorted := func(ss []series) []series {
		slices.SortFunc(ss, compareSeries)
		return ss
	}
	add(buildInfoFam, []series{{[]string{buildinfo.GoVersion, buildinfo.Revision, buildinfo.Version}, 1}})
	if s == nil {
		return out
	}
	add(reloadFam, []series{{nil, b2f(s.Reload.OK)}})
	if !s.Reload.At.IsZero() {
		add(reloadTimeFam, []series{{nil, unix(s.Reload)}})
	}
	// Targets in name order make the per-target families sorted as they are built; the rule
	// series are placed by the rank of their rule and severity among the distinct ones, so
	// only those are sorted, not every series.
	names := slices.Sorted(maps.Keys(s.Targets))
	up, duration, errs := make([]series, 0, len(names)), make([]series, 0, len(names)), make([]series, 0, len(names))
	for _, name := range names {
		t, target := s.Targets[name], []string{name}
		errs = append(errs, series{target, float64(t.Errors)})
		if t.Collected {
			up = append(up, series{target, b2f(t.Up)})
			duration = append(duration, series{target, t.Duration.Seconds()})
		}
	}
	add(errorsFam, errs)
	add(targetUpFam, up)
	add(durationFam, duration)
	add(ruleFam, ruleSeries(s, names))
	snaps := make([]series, 0, len(s.Snapshots))
	for name, at := range s.Snapshots {
		snaps = append(snaps, series{[]string{name}, float64(at.UnixNano()) / 1e9})
	}
	add(snapshotFam, sorted(snaps))
	var drift []series
	for name, ds := range s.Drift {
		for _, d := range ds {
			drift = append(drift, series{[]string{d.Artifact, name}, b2f(d.Drifted)})
		}
	}
	add(driftFam, sorted(drift))
	var incidents []series
	for _, is := range s.Incidents {
		for _, st := range incident.Statuses {
			incidents = append(incidents, series{[]string{is.Incident, string(st), is.Target}, b2f(is.Status == st)})
		}
	}
	add(incidentFam, sorted(incidents))
	if l := s.Lease; l != nil {
		add(leasedFam, []series{{[]string{l.Agent}, float64(len(l.Held))}})
		add(leaseAgentsFam, []series{{nil, float64(l.Agents)}})
	}
	slices.SortFunc(out, func(a, b familySeries) int { return strings.Compare(a.name, b.name) })
	return out
}

// ruleSeries is the rule family of s, sorted by rule, severity and target: the rules of the
// collected targets, visited in the order of names (sorted), each placed after the series of
// the rules and severities that sort before its own. All series share one array of label values.
func ruleSeries(s *State, names []string) []series {
	type key struct{ rule, severity string }
	next := map[key]int{} // how many series a key has, then where its next one goes
	n := 0
	for _, name := range names {
		if t := s.Targets[name]; t.Collected {
			for _, r := range t.Rules {
				next[key{r.Rule, r.Severity}]++
			}
			n += len(t.Rules)
		}
	}
	at := 0
	for _, k := range slices.SortedFunc(maps.Keys(next), func(x, y key) int {
		return cmp.Or(strings.Compare(x.rule, y.rule), strings.Compare(x.severity, y.severity))
	}) {
		next[k], at = at, at+next[k]
	}
	out, values := make([]series, n), make([]string, 3*n)
	for _, name := range names {
		if t := s.Targets[name]; t.Collected {
			for _, r := range t.Rules {
				k := key{r.Rule, r.Severity}
				i := next[k]
				next[k]++
				v := values[3*i : 3*i+3 : 3*i+3]
				v[0], v[1], v[2] = r.Rule, r.Severity, name
				out[i] = series{v, b2f(r.Success)}
			}
		}
	}
	return out
}

// writeText writes the families in the text exposition format, byte for byte as expfmt
// writes the metric families build makes of them.
func writeText(w *bytes.Buffer, fams []familySeries) {
	n := 0
	for _, f := range fams {
		n += len(f.help) + 64
		for _, s := range f.series {
			n += len(f.name) + 8 + len(f.labels)*4
			for i, v := range s.values {
				n += len(f.labels[i]) + len(v)
			}
		}
	}
	w.Grow(n)
	var num []byte
	for _, f := range fams {
		w.WriteString("# HELP ")
		w.WriteString(f.name)
		w.WriteByte(' ')
		helpEscaper.WriteString(w, f.help)
		w.WriteString("\n# TYPE ")
		w.WriteString(f.name)
		if f.typ == dto.MetricType_COUNTER {
			w.WriteString(" counter\n")
		} else {
			w.WriteString(" gauge\n")
		}
		for _, s := range f.series {
			w.WriteString(f.name)
			for i, name := range f.labels {
				if i == 0 {
					w.WriteByte('{')
				} else {
					w.WriteByte(',')
				}
				w.WriteString(name)
				w.WriteString(`="`)
				switch v := s.values[i]; {
				case plainLabel(v):
					w.WriteString(v)
				default:
					labelEscaper.WriteString(w, strings.ToValidUTF8(v, "\uFFFD"))
				}
				w.WriteByte('"')
			}
			if len(f.labels) > 0 {
				w.WriteByte('}')
			}
			w.WriteByte(' ')
			switch v := s.value; {
			case v == 1:
				w.WriteByte('1')
			case v == 0:
				w.WriteByte('0')
			case v == -1:
				w.WriteString("-1")
			case math.IsNaN(v):
				w.WriteString("NaN")
			case math.IsInf(v, 1):
				w.WriteString("+Inf")
			case math.IsInf(v, -1):
				w.WriteString("-Inf")
			default:
				num = strconv.AppendFloat(num[:0], v, 'g', -1, 64)
				w.Write(num)
			}
			w.WriteByte('\n')
		}
	}
}

// compareSeries orders series by their label values.
func compareSeries(x, y series) int {
	for i := range x.values {
		if c := strings.Compare(x.values[i], y.values[i]); c != 0 {
			return c
		}
	}
	return 0
}

// plainLabel reports whether a label value is written as it is: ASCII, and no backslash,
// newline or double quote to escape.
func plainLabel(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c >= utf8.RuneSelf || c == '\\' || c == '\n' || c == '"' {
			return false
		}
	}
	return true
}

// The escaping of the text format: of HELP text, and of label values.
var (
	helpEscaper  = strings.NewReplacer("\\", `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer("\\", `\\`, "\n", `\n`, "\"", `\"`)
)

func unix(r Reload) float64 { return float64(r.At.UnixNano()) / 1e9 }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
