package rules

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the results of one rule set over one snapshot of one target.
type Report struct {
	Target      string    `json:"target"`
	Snapshot    string    `json:"snapshot,omitempty"` // snapshot ID, when evaluated from the store
	RulesDigest string    `json:"rules_digest"`
	EvaluatedAt time.Time `json:"evaluated_at"`
	Summary     Summary   `json:"summary"`
	Results     []Result  `json:"results"`
}

// NewReport wraps the results of one evaluation with what names them: target, snapshot,
// rules digest and time.
func NewReport(results []Result, target, snapshot, digest string, at time.Time) Report {
	return Report{Target: target, Snapshot: snapshot, RulesDigest: digest, EvaluatedAt: at.UTC(),
		Summary: Summarize(results), Results: results}
}

// ResultsFormat names the JSON document WriteJSON writes.
const ResultsFormat = "hardtrail-results/1"

// WriteJSON writes the reports as one indented JSON document:
// {"format": "hardtrail-results/1", "reports": [Report...]}.
func WriteJSON(w io.Writer, reports ...Report) error {
	doc := struct {
		Format  string   `json:"format"`
		Reports []Report `json:"reports"`
	}{ResultsFormat, reports}
	if doc.Reports == nil {
		doc.Reports = []Report{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// WriteText writes one aligned line per result (outcome, severity, rule ID, message), under a
// failed or erred rule its remediation, and a summary line per target.
func WriteText(w io.Writer, reports ...Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, r := range reports {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		head := r.Target
		if r.Snapshot != "" {
			head += " (snapshot " + r.Snapshot + ")"
		}
		fmt.Fprintf(tw, "%s\n", head)
		for _, res := range r.Results {
			msg := oneLine(res.Message)
			if res.Waiver != nil && !res.Waiver.Expired {
				msg = fmt.Sprintf("waived until %s by %s: %s (%s)", res.Waiver.Expires, res.Waiver.Approver, res.Waiver.Reason, msg)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", strings.ToUpper(string(res.Outcome)), res.Severity, res.Rule, msg)
			if (res.Outcome == Fail || res.Outcome == Error) && res.Remediation != "" {
				fmt.Fprintf(tw, "  \t\t\tremediation: %s\n", oneLine(res.Remediation))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "%s: %s\n", r.Target, r.Summary); err != nil {
			return err
		}
	}
	return tw.Flush()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// JUnit XML, as CI systems read it.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Classname string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitProblem `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",cdata"`
}

// WriteJUnit writes the reports as JUnit XML: one <testsuite> per target, one <testcase>
// per rule named "ID: title" with classname "hardtrail.KIND". fail is a <failure>, error an
// <error>, skip and waived are <skipped>.
func WriteJUnit(w io.Writer, reports ...Report) error {
	doc := junitSuites{Name: "hardtrail"}
	for _, r := range reports {
		s := junitSuite{Name: r.Target, Tests: len(r.Results)}
		if !r.EvaluatedAt.IsZero() {
			s.Timestamp = r.EvaluatedAt.UTC().Format(time.RFC3339)
		}
		s.Properties = append(s.Properties, junitProperty{"rules_digest", r.RulesDigest})
		if r.Snapshot != "" {
			s.Properties = append(s.Properties, junitProperty{"snapshot", r.Snapshot})
		}
		for _, res := range r.Results {
			c := junitCase{Classname: "hardtrail." + res.Kind, Name: res.Rule + ": " + res.Title, Time: "0"}
			detail := fmt.Sprintf("expected: %s\nactual: %s\nseverity: %s\ncontrols: %s",
				res.Expected, res.Actual, res.Severity, strings.Join(res.Controls, ", "))
			if len(res.Incidents) > 0 {
				detail += "\nincidents: " + strings.Join(res.Incidents, ", ")
			}
			if res.Remediation != "" {
				detail += "\nremediation: " + res.Remediation
			}
			msg := oneLine(res.Message)
			switch res.Outcome {
			case Fail:
				s.Failures++
				c.Failure = &junitProblem{Message: msg, Type: string(res.Severity), Text: detail}
			case Error:
				s.Errors++
				c.Error = &junitProblem{Message: msg, Type: "error", Text: detail}
			case Skip:
				s.Skipped++
				c.Skipped = &junitProblem{Message: msg}
			case Waived:
				s.Skipped++
				c.Skipped = &junitProblem{Message: fmt.Sprintf("waived until %s by %s: %s (%s)",
					res.Waiver.Expires, res.Waiver.Approver, res.Waiver.Reason, msg)}
			default:
				c.SystemOut = msg
			}
			s.Cases = append(s.Cases, c)
		}
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Errors += s.Errors
		doc.Skipped += s.Skipped
		doc.Suites = append(doc.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
