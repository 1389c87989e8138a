package collector

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"sort"
	"sync"
)

// Finding is a value in a file that looks secret but would be stored as it is.
type Finding struct {
	Path   string `json:"path"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
	Reason string `json:"reason"`
	// Preview shows the value's first characters and its length, never the whole value.
	Preview string `json:"preview"`
}

func (f Finding) String() string {
	return fmt.Sprintf("%s:%d:%d: looks secret but would be stored as it is: %s (%s)", f.Path, f.Line, f.Column, f.Reason, f.Preview)
}

// CheckResult is what a capture would store for one file, and what in it looks secret but
// would not be redacted.
type CheckResult struct {
	Path     string    `json:"path"`
	Source   string    `json:"source"` // the source that would read it
	Stored   string    `json:"stored"`
	Findings []Finding `json:"findings"`
}

// suspectWords are words of key names whose values are often secrets although no rule
// redacts them by default: seeds, salts, licence codes, session and signing material.
var suspectWords = map[string]bool{"salt": true, "seed": true, "cookie": true, "signature": true, "sig": true,
	"hmac": true, "nonce": true, "license": true, "licence": true, "serial": true, "session": true,
	"otp": true, "totp": true, "pin": true, "encrypted": true, "encryption": true, "cipher": true, "hash": true,
	"bearer": true, "sso": true, "saml": true, "webhook": true, "dsn": true, "signing": true, "keytab": true}

var suspectLine = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\s*(?:export\s+)?["']?([A-Za-z_][\w.-]*)["']?\s*[:=]\s*["']?([^\s"',;]{6,})`)
})

// Check redacts and normalises content as source s would (the built-in rules when s is nil)
// and lists the values that look secret but survive: high-entropy strings, and values of keys
// named like secrets no rule knows (salts, seeds, licence codes).
func (r *Redactor) Check(file string, content []byte, s *Source) (CheckResult, error) {
	if s == nil {
		s = &Source{Name: "redact-check", Files: []string{file}}
		if err := s.compile(); err != nil {
			return CheckResult{}, err
		}
	}
	stored, _ := s.finish(r.forSource(s, file), content)
	res := CheckResult{Path: file, Source: s.Name, Stored: string(stored)}
	survives := func(v []byte) bool { return bytes.Contains(stored, v) }
	seen := map[int]bool{}
	add := func(off int, v []byte, reason string) {
		if seen[off] || !survives(v) {
			return
		}
		seen[off] = true
		line := bytes.Count(content[:off], []byte("\n")) + 1
		col := off - (bytes.LastIndexByte(content[:off], '\n') + 1) + 1
		res.Findings = append(res.Findings, Finding{Path: file, Line: line, Column: col, Reason: reason, Preview: preview(v)})
	}
	if bytes.IndexByte(content, 0) >= 0 {
		return res, nil // binary: stored as it is, nothing to read
	}
	for _, sp := range entropySpans(content) {
		add(sp.s, content[sp.s:sp.e], "high-entropy string")
	}
	for ls := 0; ls < len(content); {
		le := lineEnd(content, ls)
		m := suspectLine().FindSubmatchIndex(content[ls:le])
		if m != nil {
			key := string(content[ls+m[2] : ls+m[3]])
			v := content[ls+m[4] : ls+m[5]]
			for _, w := range keyWords(key) {
				if suspectWords[w] && !isNonSecretValue(v) && !isDigits(v) {
					add(ls+m[4], v, fmt.Sprintf("value of %q", key))
					break
				}
			}
		}
		ls = le + 1
	}
	sort.Slice(res.Findings, func(i, j int) bool {
		a, b := res.Findings[i], res.Findings[j]
		return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
	})
	return res, nil
}

// preview shows a value's first three characters and its length.
func preview(v []byte) string {
	n := min(3, len(v)/4)
	return fmt.Sprintf("%s… %d characters", v[:n], len(v))
}

// SourceFor returns the files source of the profile that would read file, or nil.
func (p *Profile) SourceFor(file string) *Source {
	for i := range p.Sources {
		s := &p.Sources[i]
		for _, g := range s.Files {
			if ok, _ := path.Match(g, file); ok {
				return s
			}
		}
	}
	return nil
}
