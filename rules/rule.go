package rules

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Severity ranks what a failing rule means.
type Severity string

// Severities, lowest first.
const (
	Info     Severity = "info"
	Low      Severity = "low"
	Medium   Severity = "medium"
	High     Severity = "high"
	Critical Severity = "critical"
)

var severities = []Severity{Info, Low, Medium, High, Critical}

func (s Severity) valid() bool {
	for _, v := range severities {
		if s == v {
			return true
		}
	}
	return false
}

// Outcome is the verdict of one rule over one snapshot.
type Outcome string

// Outcomes.
const (
	Pass   Outcome = "pass"   // the facts show the rule holds
	Fail   Outcome = "fail"   // the facts show the rule does not hold
	Error  Outcome = "error"  // the facts needed were not captured, or cannot be read
	Skip   Outcome = "skip"   // the rule does not apply to this target or operating system
	Waived Outcome = "waived" // the rule failed or erred, and an active waiver accepts that
)

// Rule is one loaded rule. Its probe is private: rules are built by the loader only.
type Rule struct {
	ID          string
	Title       string
	Severity    Severity
	Controls    []string
	Description string
	Remediation string
	Incidents   []string
	Targets     []string // globs on the target name; empty means every target
	OS          []string // ID or ID:VERSION_ID entries of os-release; empty means any
	Kind        string   // the probe kind: port, package, sshd, ...
	Source      string   // file:line where the rule is defined

	probe probe
}

// Waiver accepts the failure of one rule on some targets until a date.
type Waiver struct {
	Rule     string
	Targets  []string // globs on the target name
	Reason   string
	Approver string
	// Expires is the day (midnight UTC) from which the waiver no longer applies.
	Expires time.Time
	Source  string // file:line where the waiver is defined
}

// ExpiresDate is Expires written as YYYY-MM-DD.
func (w *Waiver) ExpiresDate() string { return w.Expires.Format(time.DateOnly) }

// Set is a loaded, validated set of rules and waivers. It is immutable and safe for
// concurrent use.
type Set struct {
	rules   []*Rule
	byID    map[string]*Rule
	waivers []*Waiver
	files   []string
	texts   []packedFile
	digest  string
}

// File is one rule file as it was read: its name (as messages name it) and its bytes.
type File struct {
	Name string
	Data []byte
}

// Texts returns the files the set was loaded from, verbatim, in load order (nil for a set
// built by Merge). Each call returns fresh bytes: the set holds them compressed.
func (s *Set) Texts() []File {
	if s.texts == nil {
		return nil
	}
	out := make([]File, len(s.texts))
	for i, f := range s.texts {
		out[i] = File{Name: f.name, Data: f.unpack()}
	}
	return out
}

// Files names the files the set was loaded from, in load order, including files that hold
// neither rules nor waivers.
func (s *Set) Files() []string { return append([]string(nil), s.files...) }

// Rules returns the rules in load order: files sorted by name, rules in file order. The
// rules belong to the set; callers must not modify them.
func (s *Set) Rules() []*Rule { return append([]*Rule(nil), s.rules...) }

// Rule returns the rule with that ID.
func (s *Set) Rule(id string) (*Rule, bool) {
	r, ok := s.byID[id]
	return r, ok
}

// Waivers returns the waivers in load order.
func (s *Set) Waivers() []*Waiver { return append([]*Waiver(nil), s.waivers...) }

// Len is the number of rules.
func (s *Set) Len() int { return len(s.rules) }

// ProbeKinds returns the probe kinds a rule can use, sorted.
func ProbeKinds() []string {
	kinds := make([]string, 0, len(registry))
	for k := range registry {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}

// Result is the verdict of one rule over one snapshot. Its JSON field names are stable.
type Result struct {
	Rule        string      `json:"rule"`
	Title       string      `json:"title"`
	Severity    Severity    `json:"severity"`
	Kind        string      `json:"kind"`
	Controls    []string    `json:"controls"`
	Incidents   []string    `json:"incidents"`
	Outcome     Outcome     `json:"outcome"`
	Message     string      `json:"message"`
	Expected    string      `json:"expected"`
	Actual      string      `json:"actual"`
	Remediation string      `json:"remediation,omitempty"`
	Waiver      *WaiverInfo `json:"waiver,omitempty"`
}

// WaiverInfo says which waiver touched a result.
type WaiverInfo struct {
	Reason   string `json:"reason"`
	Approver string `json:"approver"`
	Expires  string `json:"expires"` // YYYY-MM-DD
	// Expired is true when the waiver no longer applies; the result keeps its outcome.
	Expired bool `json:"expired"`
	// Covers is the outcome the waiver accepted or would have accepted: fail or error.
	Covers Outcome `json:"covers"`
	Source string  `json:"source"`
}

// Summary counts results by outcome.
type Summary struct {
	Total  int `json:"total"`
	Pass   int `json:"pass"`
	Fail   int `json:"fail"`
	Error  int `json:"error"`
	Skip   int `json:"skip"`
	Waived int `json:"waived"`
}

// Summarize counts results by outcome.
func Summarize(results []Result) Summary {
	var s Summary
	for _, r := range results {
		s.Total++
		switch r.Outcome {
		case Pass:
			s.Pass++
		case Fail:
			s.Fail++
		case Error:
			s.Error++
		case Skip:
			s.Skip++
		case Waived:
			s.Waived++
		}
	}
	return s
}

func (s Summary) String() string {
	noun := "rules"
	if s.Total == 1 {
		noun = "rule"
	}
	return fmt.Sprintf("%d %s: %d pass, %d fail, %d error, %d skip, %d waived",
		s.Total, noun, s.Pass, s.Fail, s.Error, s.Skip, s.Waived)
}

// quoteList writes items as [a, b, c].
func quoteList(items []string) string { return "[" + strings.Join(items, ", ") + "]" }

// Filter returns the rules for which keep is true, with the waivers that name them.
func (s *Set) Filter(keep func(*Rule) bool) *Set {
	var rs []*Rule
	for _, r := range s.rules {
		if keep(r) {
			rs = append(rs, r)
		}
	}
	var ws []*Waiver
	for _, w := range s.waivers {
		for _, r := range rs {
			if r.ID == w.Rule {
				ws = append(ws, w)
				break
			}
		}
	}
	out, err := assemble(rs, ws)
	if err != nil {
		// A subset of a valid set is valid.
		panic("rules: filter of a valid set: " + err.Error())
	}
	out.files = s.files
	out.texts = s.texts
	return out
}
