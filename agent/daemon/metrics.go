package daemon

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hardtrail/hardtrail/agent/incident"
	"github.com/hardtrail/hardtrail/internal/buildinfo"
)

// The metrics the README's "Metrics" table documents, plus the outcome of the last reload.
var (
	buildInfoDesc = prometheus.NewDesc("hardtrail_build_info",
		"Build of the hardtrail agent; always 1.", []string{"version", "revision", "goversion"}, nil)
	targetUpDesc = prometheus.NewDesc("hardtrail_target_up",
		"1 when the last collection of the target succeeded.", []string{"target"}, nil)
	snapshotTimeDesc = prometheus.NewDesc("hardtrail_snapshot_timestamp_seconds",
		"Time of the newest stored snapshot of the target.", []string{"target"}, nil)
	durationDesc = prometheus.NewDesc("hardtrail_collect_duration_seconds",
		"Duration of the last collection of the target.", []string{"target"}, nil)
	errorsDesc = prometheus.NewDesc("hardtrail_collect_errors_total",
		"Failed collections of the target since the agent started.", []string{"target"}, nil)
	ruleDesc = prometheus.NewDesc("hardtrail_rule_success",
		"1 when the rule passes (or is waived) on the target's newest snapshot, 0 when it fails or cannot be evaluated.", []string{"target", "rule", "severity"}, nil)
	driftDesc = prometheus.NewDesc("hardtrail_artifact_drift",
		"1 when the artifact in the target's newest snapshot differs from its hardened baseline (the target's most recently tagged after snapshot).", []string{"target", "artifact"}, nil)
	incidentDesc = prometheus.NewDesc("hardtrail_incident_status",
		"Remediation status of the incident on the target: exactly one of open, remediated, verified, regressed is 1.", []string{"incident", "target", "status"}, nil)
	reloadDesc = prometheus.NewDesc("hardtrail_reload_success",
		"1 when the last load of the configuration and rules succeeded.", nil, nil)
	reloadTimeDesc = prometheus.NewDesc("hardtrail_reload_timestamp_seconds",
		"Time of the last successful load of the configuration and rules.", nil, nil)
)

// Collector exports a State as metrics. It reads whatever State the function returns at
// scrape time and never waits for a collection.
type Collector struct {
	state func() *State
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector of the States that state returns.
func NewCollector(state func() *State) *Collector { return &Collector{state: state} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{buildInfoDesc, targetUpDesc, snapshotTimeDesc, durationDesc, errorsDesc, ruleDesc, driftDesc, incidentDesc, reloadDesc, reloadTimeDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.state()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(buildInfoDesc, 1, buildinfo.Version, buildinfo.Revision, buildinfo.GoVersion)
	if s == nil {
		return
	}
	gauge(reloadDesc, b2f(s.Reload.OK))
	if !s.Reload.At.IsZero() {
		gauge(reloadTimeDesc, unix(s.Reload))
	}
	for _, name := range sortedKeys(s.Targets) {
		t := s.Targets[name]
		ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(t.Errors), name)
		if !t.Collected {
			continue
		}
		gauge(targetUpDesc, b2f(t.Up), name)
		gauge(durationDesc, t.Duration.Seconds(), name)
		for _, r := range t.Rules {
			gauge(ruleDesc, b2f(r.Success), name, r.Rule, r.Severity)
		}
	}
	for _, name := range sortedKeys(s.Snapshots) {
		gauge(snapshotTimeDesc, float64(s.Snapshots[name].UnixNano())/1e9, name)
	}
	for _, name := range sortedKeys(s.Drift) {
		for _, d := range s.Drift[name] {
			gauge(driftDesc, b2f(d.Drifted), name, d.Artifact)
		}
	}
	for _, is := range s.Incidents {
		for _, st := range incident.Statuses {
			gauge(incidentDesc, b2f(is.Status == st), is.Incident, is.Target, string(st))
		}
	}
}

func unix(r Reload) float64 { return float64(r.At.UnixNano()) / 1e9 }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// NewRegistry returns a registry holding the agent's collector and the Go runtime and
// process collectors, and nothing else.
func NewRegistry(state func() *State) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(state), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
