package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
)

// Digest is "sha256:" and the SHA-256 of the canonical form of the set: its rules sorted by
// ID and its waivers sorted, each with every field that decides a verdict and none that
// says where it was loaded from. Stored results carry it to name the rules that produced
// them.
func (s *Set) Digest() string { return s.digest }

type canonicalRule struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Severity    Severity `json:"severity"`
	Controls    []string `json:"controls"`
	Description string   `json:"description"`
	Remediation string   `json:"remediation"`
	Incidents   []string `json:"incidents"`
	Targets     []string `json:"targets"`
	OS          []string `json:"os"`
	Kind        string   `json:"kind"`
	Probe       probe    `json:"probe"`
}

type canonicalWaiver struct {
	Rule     string   `json:"rule"`
	Targets  []string `json:"targets"`
	Reason   string   `json:"reason"`
	Approver string   `json:"approver"`
	Expires  string   `json:"expires"`
}

func digest(s *Set) string {
	var doc struct {
		Format  string            `json:"format"`
		Rules   []canonicalRule   `json:"rules"`
		Waivers []canonicalWaiver `json:"waivers"`
	}
	doc.Format = "hardtrail-rules/1"
	for _, r := range s.rules {
		doc.Rules = append(doc.Rules, canonicalRule{r.ID, r.Title, r.Severity, r.Controls, r.Description,
			r.Remediation, r.Incidents, r.Targets, r.OS, r.Kind, r.probe})
	}
	sort.Slice(doc.Rules, func(i, j int) bool { return doc.Rules[i].ID < doc.Rules[j].ID })
	for _, w := range s.waivers {
		doc.Waivers = append(doc.Waivers, canonicalWaiver{w.Rule, sortedCopy(w.Targets), w.Reason, w.Approver, w.ExpiresDate()})
	}
	sort.Slice(doc.Waivers, func(i, j int) bool {
		a, b := doc.Waivers[i], doc.Waivers[j]
		ka, _ := json.Marshal(a)
		kb, _ := json.Marshal(b)
		return string(ka) < string(kb)
	})
	data, err := json.Marshal(doc)
	if err != nil {
		panic("rules: canonical form: " + err.Error()) // every field is plain data
	}
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}
