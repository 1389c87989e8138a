// Package rules loads regression rules from strict TOML, evaluates them over the artifacts
// captured in a snapshot, and renders the results as text, JSON and JUnit XML.
package rules

import (
	"io/fs"
	"sort"
)

// Artifact is one captured artifact of a snapshot as the rules see it.
type Artifact struct {
	Name        string
	Content     []byte
	Unavailable string   // non-empty: not captured, and why
	Command     []string // argv that produced it (nil for files)
	ExitCode    int
	Truncated   bool
	Mode        fs.FileMode // files
	Owner       string      // files
	Group       string      // files
}

// Facts is what rules evaluate: the captured artifacts of one snapshot of one target.
// Implementations must be safe to call repeatedly and concurrently, and must not reach the
// live system; the same Facts must always give the same answers so that a verdict can be recomputed.
type Facts interface {
	// Target is the name of the target the snapshot belongs to.
	Target() string
	// Artifact returns the artifact with that name, and false when the snapshot has none.
	Artifact(name string) (Artifact, bool)
	// Names returns the names of all artifacts, sorted.
	Names() []string
}

// MemFacts is Facts held in memory.
type MemFacts struct {
	TargetName string
	Artifacts  map[string]Artifact
}

var _ Facts = (*MemFacts)(nil)

// NewMemFacts returns Facts for target holding arts, keyed by their names.
func NewMemFacts(target string, arts ...Artifact) *MemFacts {
	m := &MemFacts{TargetName: target, Artifacts: make(map[string]Artifact, len(arts))}
	for _, a := range arts {
		m.Artifacts[a.Name] = a
	}
	return m
}

// Target implements Facts.
func (m *MemFacts) Target() string { return m.TargetName }

// Artifact implements Facts.
func (m *MemFacts) Artifact(name string) (Artifact, bool) {
	a, ok := m.Artifacts[name]
	return a, ok
}

// Names implements Facts.
func (m *MemFacts) Names() []string {
	names := make([]string, 0, len(m.Artifacts))
	for n := range m.Artifacts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
