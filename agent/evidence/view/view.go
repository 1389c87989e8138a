// Package view is the read-only picture of one incident's evidence that the auditor outputs
// (the HTML report, OSCAL, the in-toto attestation) render.
package view

import (
	"time"

	"github.com/hardtrail/hardtrail/rules"
)

// Evidence is what a bundle says about one incident.
type Evidence struct {
	Incident string
	// Title and Category come from the incident record, when there is one.
	Title    string
	Category string
	Status   string
	// Headline sums up the status with the regression history since the fix.
	Headline string
	// AsOf is the time the evidence speaks of: the newest snapshot or link.
	AsOf        time.Time
	ToolVersion string
	RulesDigest string
	Rules       []string
	SignedBy    string
	// StoreHead is the store's head digest when the evidence was gathered.
	StoreHead string
	// Manifest is the SHA-256 of manifest.json, when known.
	ManifestSHA256 string
	// History is every status change of the incident, oldest first: regressions show here.
	History  []StatusChange
	Timeline []Event
	Targets  []Target
	// Files are the bundle's files (but the manifest and what signs it) with their hashes.
	Files []File
}

// StatusChange is one recorded change of the incident's status on a target.
type StatusChange struct {
	At       time.Time
	Target   string
	From, To string
	Cause    string
	Snapshot string
}

// Event is one line of the timeline.
type Event struct {
	At       time.Time
	What     string
	Target   string
	Snapshot string
	By       string
	Note     string
}

// Target is the incident on one target.
type Target struct {
	Name   string
	Status string
	Cause  string
	// Before, After and Newest are the snapshots the evidence compares; nil when missing.
	Before, After, Newest *Snapshot
	Artifacts             []Artifact
	Rules                 []Rule
}

// Snapshot is one captured state of a target and how it was captured.
type Snapshot struct {
	ID          string
	TakenAt     time.Time
	Hostname    string
	Transport   string
	Address     string
	HostKey     string
	ToolVersion string
}

// Artifact is one artifact of a target, before and after.
type Artifact struct {
	Name string
	// Change: unchanged, modified, added, removed, binary, not-captured.
	Change string
	// State against the newest snapshot: holding, drifted, regressed, ... (empty when not judged).
	State    string
	Note     string
	Reverted []string
	Before   *Version
	After    *Version
	// DiffPath is the bundle path of the artifact's diff, when its text changed.
	DiffPath string
	Added    int
	Removed  int
}

// Version is an artifact in one snapshot.
type Version struct {
	// Path is the file of the bundle holding the content; empty when not captured.
	Path        string
	SHA256      string
	Size        int64
	Binary      bool
	Unavailable string
	// Content is the captured bytes, for the diff view; nil when not captured.
	Content []byte
	// How the artifact was collected: the command's argv, or the file read, and the command's
	// exit code (nil when it has none: a file, or a command that did not run).
	Command  []string
	File     string
	ExitCode *int
}

// Rule is one rule linked to the incident on one target, on the before, after and newest
// snapshots. Expected and Actual are what the rule found on the newest snapshot.
type Rule struct {
	ID                    string
	Title                 string
	Severity              string
	Controls              []string
	Before, After, Newest rules.Outcome
	Expected, Actual      string
	Message               string
	Remediation           string
}

// File is one file of the bundle.
type File struct {
	Path   string
	SHA256 string
	Size   int64
}

// Holds reports whether a rule's outcome counts as holding: pass, or waived.
func Holds(o rules.Outcome) bool { return o == rules.Pass || o == rules.Waived }
