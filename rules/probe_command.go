package rules

import (
	"fmt"
	"strings"
)

// commandProbe checks any captured artifact as a command's result: its exit code, and
// regexps over its output, matched line by line as grep does (^ and $ match at the line's
// start and end). exit_code needs a command artifact.
type commandProbe struct {
	Artifact         string `toml:"artifact" json:"artifact"`
	ExitCode         *int   `toml:"exit_code" json:"exit_code,omitempty"`
	StdoutMatches    string `toml:"stdout_matches" json:"stdout_matches,omitempty"`
	StdoutNotMatches string `toml:"stdout_not_matches" json:"stdout_not_matches,omitempty"`

	matches, notMatches *pattern
}

func (p *commandProbe) check() error {
	if p.Artifact == "" {
		return fieldErr("artifact", "missing (the name of a captured artifact, such as \"sshd/effective\")")
	}
	if p.ExitCode == nil && p.StdoutMatches == "" && p.StdoutNotMatches == "" {
		return fieldErr("", "no condition (add exit_code, stdout_matches or stdout_not_matches)")
	}
	var err error
	if p.StdoutMatches != "" {
		if p.matches, err = newPattern(p.StdoutMatches); err != nil {
			return fieldErr("stdout_matches", "%v", err)
		}
	}
	if p.StdoutNotMatches != "" {
		if p.notMatches, err = newPattern(p.StdoutNotMatches); err != nil {
			return fieldErr("stdout_not_matches", "%v", err)
		}
	}
	return nil
}

func (p *commandProbe) expected() string {
	var parts []string
	if p.ExitCode != nil {
		parts = append(parts, fmt.Sprintf("exit code %d", *p.ExitCode))
	}
	if p.StdoutMatches != "" {
		parts = append(parts, "output matches /"+p.StdoutMatches+"/")
	}
	if p.StdoutNotMatches != "" {
		parts = append(parts, "output does not match /"+p.StdoutNotMatches+"/")
	}
	return strings.Join(parts, " and ")
}

func (p *commandProbe) eval(e *env) verdict {
	want := p.expected()
	a, why := e.artifact(p.Artifact)
	if why != "" {
		return erred(want, "%s", why)
	}
	var problems, facts []string
	if p.ExitCode != nil {
		if a.Command == nil {
			return erred(want, "artifact %s is a file; it has no exit code", p.Artifact)
		}
		facts = append(facts, fmt.Sprintf("exit code %d", a.ExitCode))
		if a.ExitCode != *p.ExitCode {
			problems = append(problems, fmt.Sprintf("%s exited %d, want %d", commandName(a.Command), a.ExitCode, *p.ExitCode))
		}
	}
	if p.matches != nil {
		if n, line, ok := matchLine(e.ctx, p.matches.matcher(), a.Content); ok {
			facts = append(facts, fmt.Sprintf("line %d: %s", n, clip(line)))
		} else {
			problems = append(problems, fmt.Sprintf("no line of %s matches /%s/", p.Artifact, p.StdoutMatches))
		}
	}
	if p.notMatches != nil {
		if n, line, ok := matchLine(e.ctx, p.notMatches.matcher(), a.Content); ok {
			problems = append(problems, fmt.Sprintf("%s:%d: %s", p.Artifact, n, clip(line)))
		}
	}
	if len(problems) > 0 {
		return failed(want, strings.Join(append(problems, facts...), "\n"), "%s", strings.Join(problems, "; "))
	}
	return passed(want, strings.Join(facts, "\n"), "%s: %s", p.Artifact, want)
}
