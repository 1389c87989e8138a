// Package evidence builds and verifies evidence bundles: one signed, self-verifying .tar.gz per
// incident with the configuration before and after, their diffs, a report and rule results.
package evidence

import (
	"time"

	"github.com/hardtrail/hardtrail/agent/incident"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/rules"
)

// Format names the manifest layout this build writes; FormatV1 is the first, which Verify
// still checks.
const (
	Format   = "hardtrail-evidence/2"
	FormatV1 = "hardtrail-evidence/1"
)

// Names of the files of a bundle, under its top directory (the incident ID).
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.json.sig"
	ReportName    = "report.md"
	ResultsJSON   = "results.json"
	ResultsJUnit  = "results.junit.xml"
	BeforeDir     = "before"
	AfterDir      = "after"
	DiffDir       = "diff"
	// CombinedDiff is the one patch that, applied with `patch -p1` inside before/, gives after/.
	CombinedDiff = DiffDir + "/combined.diff"
	// SnapshotsDir holds each exported snapshot's canonical manifest as ID.json: its SHA-256
	// is its name, the snapshot's ID.
	SnapshotsDir = "snapshots"
	// RulesDir holds the linked rule files verbatim.
	RulesDir = "rules"
	// RecordsDir holds the incident record (incident.json) and, for each signed link or
	// record, the bytes signed (ID.json) and the SSHSIG signature (ID.sig).
	RecordsDir     = "records"
	IncidentRecord = RecordsDir + "/incident.json"
	// StatusEvents holds the status changes the agent recorded for the incident, as stored.
	StatusEvents = RecordsDir + "/status-events.json"
)

// Manifest is manifest.json: what the bundle holds and the hash of every other file in it. It
// is the root of trust: the signature covers its bytes, and its hashes cover the rest.
type Manifest struct {
	Format   string          `json:"format"`
	Incident string          `json:"incident"`
	Status   incident.Status `json:"status"`
	// AsOf is the time of the newest snapshot or link in the bundle. Rules (and their waivers)
	// are judged as of this time, so that exporting the same evidence again gives the same
	// bundle byte for byte.
	AsOf        time.Time `json:"as_of"`
	ToolVersion string    `json:"tool_version"`
	// RulesDigest names the rules linked to the incident (rules.Set.Digest), which produced
	// the results; Rules lists their IDs.
	RulesDigest string   `json:"rules_digest"`
	Rules       []string `json:"rules"`
	// Headline sums up the status with the regression history since the fix (format 2).
	Headline string `json:"headline,omitempty"`
	// RulesFrom says where the linked rules came from (the store, or the rules given while the
	// store held none); RulesChanged lists linked rules changed since the previous evaluation.
	RulesFrom    string                `json:"rules_from,omitempty"`
	RulesChanged []incident.RuleChange `json:"rules_changed,omitempty"`
	// RuleFiles are the files of rules/: the linked rule files verbatim.
	RuleFiles []RuleFile `json:"rule_files,omitempty"`
	// Record is the incident's own record (format 2).
	Record *Record `json:"record,omitempty"`
	// StoreHead is the digest over the newest record of every chain of the store the bundle
	// was exported from (format 2): hardtrail store verify --head DIGEST checks, later, that
	// the store still extends it, so nothing the bundle was built from was removed or changed.
	StoreHead string `json:"store_head,omitempty"`
	// SignedBy is the fingerprint of the key that signed the manifest, when it is signed.
	SignedBy string   `json:"signed_by,omitempty"`
	Links    []Link   `json:"links"`
	Targets  []Target `json:"targets"`
	// Files lists every file of the bundle but manifest.json and its signature, sorted by path.
	Files []File `json:"files"`
}

// Link is one tagging of a snapshot to the incident, in the order they were made.
type Link struct {
	ID       string    `json:"id"`
	Target   string    `json:"target"`
	Phase    string    `json:"phase"`
	Snapshot string    `json:"snapshot"`
	TakenAt  time.Time `json:"taken_at"` // when the snapshot was captured
	By       string    `json:"by"`
	At       time.Time `json:"at"` // when it was tagged
	Note     string    `json:"note,omitempty"`
	// Who invoked hardtrail and as whom (format 2).
	Who *store.Actor `json:"who,omitempty"`
	// Signature is the records/ file of the operator's SSHSIG signature, when signed.
	Signature string `json:"signature,omitempty"`
	// Voided says who withdrew the link and why; a voided link proves nothing.
	Voided *incident.Void `json:"voided,omitempty"`
}

// RuleFile is one linked rule file: its path in the bundle and the name it was loaded as.
type RuleFile struct {
	Path   string `json:"path"`
	Source string `json:"source"`
}

// Record is the incident's record: its title and the rest of its opening, and every entry.
type Record struct {
	Title    string `json:"title,omitempty"`
	Closed   bool   `json:"closed"`
	Reopened bool   `json:"reopened,omitempty"`
	// Entries are every record of the incident, in order (ID is the record's hash in the store).
	Entries []RecordEntry `json:"entries"`
	// StatusEvents counts the status changes the agent recorded (records/status-events.json).
	StatusEvents int `json:"status_events"`
}

// StatusEvent is one status change the agent recorded, with its ID in the store.
type StatusEvent struct {
	ID string `json:"id"`
	store.StatusEvent
}

// RecordEntry is one incident record with its ID and, when signed, its signature's file.
type RecordEntry struct {
	ID string `json:"id"`
	store.Record
	SignatureFile string `json:"signature_file,omitempty"`
}

// SnapshotRef names a snapshot and when it was captured.
type SnapshotRef struct {
	ID      string    `json:"id"`
	Seq     int64     `json:"seq"`
	TakenAt time.Time `json:"taken_at"`
	Note    string    `json:"note,omitempty"`
	// Manifest is the snapshots/ file holding its canonical manifest, when bundled (format 2).
	Manifest   string      `json:"manifest,omitempty"`
	Provenance *Provenance `json:"provenance,omitempty"`
}

// Provenance is how a snapshot was captured: from which host, how, by which tool, and every
// command with its exit code and stderr and every artifact that could not be captured.
type Provenance struct {
	Hostname    string        `json:"hostname,omitempty"`
	MachineID   string        `json:"machine_id,omitempty"`
	Transport   string        `json:"transport"`
	Address     string        `json:"address,omitempty"`
	HostKey     string        `json:"host_key,omitempty"`
	ToolVersion string        `json:"tool_version"`
	Commands    []Command     `json:"commands"`
	Unavailable []Unavailable `json:"unavailable,omitempty"`
}

// Command is one command a capture ran.
type Command struct {
	Artifact string   `json:"artifact"`
	Argv     []string `json:"argv"`
	// ExitCode is absent when the command has none: it timed out or was stopped.
	ExitCode *int   `json:"exit_code,omitempty"`
	Stderr   string `json:"stderr,omitempty"`
}

// Unavailable is an artifact that was not captured, and why.
type Unavailable struct {
	Artifact string `json:"artifact"`
	Reason   string `json:"reason"`
}

// Target is the incident on one target.
type Target struct {
	Target string          `json:"target"`
	Status incident.Status `json:"status"`
	Cause  string          `json:"cause"`
	Before *SnapshotRef    `json:"before,omitempty"`
	After  *SnapshotRef    `json:"after,omitempty"`
	Newest *SnapshotRef    `json:"newest,omitempty"`
	// Exported is true when the target has both phases, so that before/TARGET and after/TARGET
	// hold its artifacts.
	Exported  bool       `json:"exported"`
	Artifacts []Artifact `json:"artifacts,omitempty"`
	Results   Results    `json:"results"`
	// History is what happened since the first after link: each regression episode and the
	// held spans, from every stored snapshot (format 2).
	History *incident.History `json:"history,omitempty"`
}

// Changes of an artifact between the before and after snapshots.
const (
	Unchanged   = "unchanged"
	Modified    = "modified"
	Added       = "added"
	Removed     = "removed"
	Binary      = "binary"       // differs, and one side is binary: reported by hash, not diffed
	NotCaptured = "not-captured" // unavailable on one side (Before or After says why)
)

// Artifact is one artifact of an exported target.
type Artifact struct {
	Name   string   `json:"name"`
	Change string   `json:"change"`
	Before *Version `json:"before,omitempty"` // absent from the before snapshot when nil
	After  *Version `json:"after,omitempty"`
	// Added and Removed count the lines of Diff.
	Added   int `json:"added,omitempty"`
	Removed int `json:"removed,omitempty"`
	// Diff is the path of the artifact's own diff (under diff/), when the text changed.
	Diff string `json:"diff,omitempty"`
	// State against the newest snapshot (holding, drifted, regressed, not-captured, binary),
	// when the remediation touched the artifact or it changed since.
	State string `json:"state,omitempty"`
	// Reverted lists the hardened lines the newest snapshot undid.
	Reverted []string `json:"reverted,omitempty"`
	Note     string   `json:"note,omitempty"`
}

// Version is an artifact in one snapshot: its content's hash and size (the file
// PHASE/TARGET/NAME of the bundle), or why it was not captured.
type Version struct {
	SHA256      string `json:"sha256,omitempty"`
	Size        int64  `json:"size"`
	Binary      bool   `json:"binary,omitempty"`
	Unavailable string `json:"unavailable,omitempty"`
	// ExitCode and Stderr are the command's, when it exited non-zero; Failed then says so,
	// and an empty output is not written as a file (format 2).
	ExitCode int    `json:"exit_code,omitempty"`
	Stderr   string `json:"stderr,omitempty"`
	Failed   string `json:"failed,omitempty"`
}

// captured reports whether the version has a file in the bundle.
func (v *Version) captured() bool { return v != nil && v.Unavailable == "" && v.Failed == "" }

// Results are the outcomes of the rules linked to the incident on one target.
type Results struct {
	Before *rules.Summary `json:"before,omitempty"`
	After  *rules.Summary `json:"after,omitempty"`
	Newest *rules.Summary `json:"newest,omitempty"`
	Rules  []RuleOutcome  `json:"rules,omitempty"`
}

// RuleOutcome is one linked rule's outcome on the before, after and newest snapshots; a phase
// without a snapshot has none.
type RuleOutcome struct {
	Rule     string         `json:"rule"`
	Title    string         `json:"title"`
	Severity rules.Severity `json:"severity"`
	Before   rules.Outcome  `json:"before,omitempty"`
	After    rules.Outcome  `json:"after,omitempty"`
	Newest   rules.Outcome  `json:"newest,omitempty"`
}

// File is one file of the bundle: its path under the top directory, SHA-256 and size.
type File struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}
