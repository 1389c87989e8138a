package daemon

import (
	"cmp"
	"slices"
	"sort"
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
	reloadFam     = family{"hardtrail_reload_success", "1 when the last load of the configuration and rules succeeded.", dto.MetricType_GAUGE, nil}
	reloadTimeFam = family{"hardtrail_reload_timestamp_seconds", "Time of the last successful load of the configuration and rules.", dto.MetricType_GAUGE, nil}
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

// add sorts the series by their label values and appends their family, unless it has none.
func (b *builder) add(f family, ss []series) {
	if len(ss) == 0 {
		return
	}
	slices.SortFunc(ss, func(x, y series) int {
		for i := range x.values {
			if c := cmp.Compare(x.values[i], y.values[i]); c != 0 {
				return c
			}
		}
		return 0
	})
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
	b.add(buildInfoFam, []series{{[]string{buildinfo.GoVersion, buildinfo.Revision, buildinfo.Version}, 1}})
	if s == nil {
		return b.out
	}
	b.add(reloadFam, []series{{nil, b2f(s.Reload.OK)}})
	if !s.Reload.At.IsZero() {
		b.add(reloadTimeFam, []series{{nil, unix(s.Reload)}})
	}
	var up, duration, errs, rules []series
	for name, t := range s.Targets {
		target := []string{name}
		errs = append(errs, series{target, float64(t.Errors)})
		if !t.Collected {
			continue
		}
		up = append(up, series{target, b2f(t.Up)})
		duration = append(duration, series{target, t.Duration.Seconds()})
		for _, r := range t.Rules {
			rules = append(rules, series{[]string{r.Rule, r.Severity, name}, b2f(r.Success)})
		}
	}
	b.add(errorsFam, errs)
	b.add(targetUpFam, up)
	b.add(durationFam, duration)
	b.add(ruleFam, rules)
	snaps := make([]series, 0, len(s.Snapshots))
	for name, at := range s.Snapshots {
		snaps = append(snaps, series{[]string{name}, float64(at.UnixNano()) / 1e9})
	}
	b.add(snapshotFam, snaps)
	var drift []series
	for name, ds := range s.Drift {
		for _, d := range ds {
			drift = append(drift, series{[]string{d.Artifact, name}, b2f(d.Drifted)})
		}
	}
	b.add(driftFam, drift)
	var incidents []series
	for _, is := range s.Incidents {
		for _, st := range incident.Statuses {
			incidents = append(incidents, series{[]string{is.Incident, string(st), is.Target}, b2f(is.Status == st)})
		}
	}
	b.add(incidentFam, incidents)
	sort.Slice(b.out, func(i, j int) bool { return b.out[i].GetName() < b.out[j].GetName() })
	return b.out
}

func unix(r Reload) float64 { return float64(r.At.UnixNano()) / 1e9 }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
