// Package daemon runs the hardtrail agent: it collects every target on a schedule, evaluates
// the rules, keeps each incident's remediation status, and serves all of it as Prometheus
// metrics.
package daemon

import (
	"maps"
	"time"

	"github.com/hardtrail/hardtrail/agent/incident"
)

// State is what the agent knows from its latest collections and analysis. A published State
// is never modified: updates copy it, so a scrape reads a consistent view without waiting.
type State struct {
	// Targets holds the configured targets, by name.
	Targets map[string]TargetState
	// Snapshots holds the time of the newest stored snapshot of every configured target and
	// every target an incident names.
	Snapshots map[string]time.Time
	// Incidents holds each incident's status on each of its targets.
	Incidents []IncidentStatus
	// Drift holds, per target with a hardened baseline, each artifact's drift from it.
	Drift map[string][]Drift
	// Reload is the outcome of the last (re)load of the configuration and rules.
	Reload Reload
	// Lease is nil unless the agent divides its targets with others through the store's
	// leases; then /metrics shows only the targets it holds (see exported).
	Lease *LeaseState
}

// LeaseState is what the agent holds of a shared store's leases. A published one is never
// modified.
type LeaseState struct {
	Agent string
	// Held are the targets whose leases the agent holds.
	Held map[string]bool
	// Agents is the number of live agents dividing the same targets, this one included.
	Agents int
}

// TargetState is one configured target's collection and rule results.
type TargetState struct {
	// Collected is false until a collection of the target has finished.
	Collected bool
	Up        bool
	Duration  time.Duration
	// Errors counts failed collections since the agent started.
	Errors uint64
	// Rules are the results of the last evaluation on the target's newest snapshot. Rules
	// that skip the target are left out.
	Rules []RuleResult
}

// RuleResult is one rule's outcome as a metric sees it.
type RuleResult struct {
	Rule     string
	Severity string
	// Success is true for pass and waived, false for fail and error.
	Success bool
}

// IncidentStatus is an incident's status on one target.
type IncidentStatus struct {
	Incident string
	Target   string
	Status   incident.Status
}

// Drift is whether one artifact of a target's newest snapshot differs from its hardened
// baseline.
type Drift struct {
	Artifact string
	Drifted  bool
}

// Reload is the outcome of the last configuration load.
type Reload struct {
	OK bool
	// At is the time of the last successful load.
	At time.Time
}

// clone returns a copy whose maps may be changed without touching s.
func (s *State) clone() *State {
	c := *s
	c.Targets = maps.Clone(s.Targets)
	c.Snapshots = maps.Clone(s.Snapshots)
	c.Drift = maps.Clone(s.Drift)
	if c.Targets == nil {
		c.Targets = map[string]TargetState{}
	}
	if c.Snapshots == nil {
		c.Snapshots = map[string]time.Time{}
	}
	if c.Drift == nil {
		c.Drift = map[string][]Drift{}
	}
	return &c
}

// exported is the State that /metrics shows: with leases, the per-target series of only the
// targets this agent holds, and every incident's status, as every agent shows it.
func (s *State) exported() *State {
	if s.Lease == nil {
		return s
	}
	c := *s
	c.Targets = held(s.Targets, s.Lease.Held)
	c.Snapshots = held(s.Snapshots, s.Lease.Held)
	c.Drift = held(s.Drift, s.Lease.Held)
	return &c
}

func held[V any](m map[string]V, keep map[string]bool) map[string]V {
	out := make(map[string]V, len(keep))
	for k, v := range m {
		if keep[k] {
			out[k] = v
		}
	}
	return out
}
