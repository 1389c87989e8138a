package rules

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// verdict is what a probe decides.
type verdict struct {
	outcome  Outcome
	message  string
	expected string
	actual   string
}

func passed(expected, actual, format string, args ...any) verdict {
	return verdict{Pass, fmt.Sprintf(format, args...), expected, actual}
}

func failed(expected, actual, format string, args ...any) verdict {
	return verdict{Fail, fmt.Sprintf(format, args...), expected, actual}
}

func erred(expected, format string, args ...any) verdict {
	return verdict{Error, fmt.Sprintf(format, args...), expected, ""}
}

// env is what a probe sees while it decides one rule: the rule's context, which ends when the
// evaluation is cancelled or the rule's budget is spent, and the state shared by the rules of
// one evaluation.
type env struct {
	ctx context.Context
	*shared
}

// shared is the facts, and parsed artifacts shared between the rules of one evaluation. A rule
// past its budget may still run beside the next one: the cache is locked.
type shared struct {
	facts Facts
	mu    sync.Mutex
	names []string
	cache map[cacheKey]any
}

type cacheKey struct{ parser, artifact string }

func newEnv(ctx context.Context, f Facts) *env {
	return &env{ctx: ctx, shared: &shared{facts: f, cache: make(map[cacheKey]any)}}
}

// with is e for a rule that runs under ctx.
func (e *env) with(ctx context.Context) *env { return &env{ctx: ctx, shared: e.shared} }

// artifact returns a usable artifact, or an error message naming why it cannot be used: not
// captured, unavailable, truncated, or a command that failed without output.
func (e *env) artifact(name string) (Artifact, string) {
	a, ok := e.facts.Artifact(name)
	switch {
	case !ok:
		return a, fmt.Sprintf("artifact %s was not captured", name)
	case a.Unavailable != "":
		return a, fmt.Sprintf("artifact %s is unavailable: %s", name, a.Unavailable)
	case a.Truncated:
		return a, fmt.Sprintf("artifact %s was truncated; a verdict on part of it could be wrong", name)
	}
	return a, ""
}

// output is artifact for probes that read a command's output as data: a command that exited
// non-zero and printed nothing cannot be read.
func (e *env) output(name string) (Artifact, string) {
	a, why := e.artifact(name)
	if why == "" && a.Command != nil && a.ExitCode != 0 && len(bytes.TrimSpace(a.Content)) == 0 {
		why = fmt.Sprintf("artifact %s: %s exited %d with no output", name, commandName(a.Command), a.ExitCode)
	}
	return a, why
}

// allNames is Facts.Names, asked once per evaluation.
func (e *env) allNames() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.names == nil {
		e.names = e.facts.Names()
	}
	return e.names
}

// parsed returns parse(a), computed once per evaluation for each parser and artifact.
func parsed[T any](e *env, parser string, a Artifact, parse func([]byte) T) T {
	k := cacheKey{parser, a.Name}
	e.mu.Lock()
	c, ok := e.cache[k]
	e.mu.Unlock()
	if ok {
		return c.(T)
	}
	v := parse(a.Content)
	e.mu.Lock()
	e.cache[k] = v
	e.mu.Unlock()
	return v
}

// matchLine finds the first line of content that re matches, grep-like: each line is
// matched on its own, without its line end, so ^ and $ match at the line's start and end.
// It returns the 1-based line number and the line. It stops, matching nothing, when ctx ends
// (the rule's verdict is then decided by its budget).
func matchLine(ctx context.Context, re matcher, content []byte) (int, string, bool) {
	for n := 1; len(content) > 0; n++ {
		if n%256 == 0 && ctx.Err() != nil {
			return 0, "", false
		}
		line := content
		if i := bytes.IndexByte(content, '\n'); i >= 0 {
			line, content = content[:i], content[i+1:]
		} else {
			content = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if matchBytes(ctx, re, line) {
			return n, string(line), true
		}
	}
	return 0, "", false
}

// longLine is the length from which a line is matched through a reader that ctx can stop: the
// cost of one match grows with the line times the expression's size.
const longLine = 64 << 10

// matchBytes is re.Match, stopped (matching nothing that counts) when ctx ends, on long input
// matched by a program (a string is matched in linear time).
func matchBytes(ctx context.Context, re matcher, b []byte) bool {
	if len(b) < longLine || re.re == nil {
		return re.Match(b)
	}
	return re.re.MatchReader(&ctxRuneReader{ctx: ctx, r: bytes.NewReader(b)})
}

// ctxRuneReader reads runes until ctx ends, then reports the end of the input. It asks ctx at
// every rune: with a large expression one step of the matcher costs far more than the asking.
type ctxRuneReader struct {
	ctx context.Context
	r   *bytes.Reader
}

func (c *ctxRuneReader) ReadRune() (rune, int, error) {
	if c.ctx.Err() != nil {
		return 0, 0, io.EOF
	}
	return c.r.ReadRune()
}

func commandName(argv []string) string {
	if len(argv) == 0 {
		return "command"
	}
	return filepath.Base(argv[0])
}

// lines splits content into lines without their ends.
func lines(content []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 64<<10), len(content)+1)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// Evaluate runs every rule of the set over the facts and returns one result per rule, in
// the set's order. now decides which waivers are still active. When ctx ends, the rule being
// evaluated and those not yet evaluated are returned as errors at once. A rule that takes
// longer than the budget of CurrentLimits is an error naming the budget; its probe is told to
// stop and may finish in the background.
func (s *Set) Evaluate(ctx context.Context, f Facts, now time.Time) []Result {
	e := newEnv(ctx, f)
	budget := CurrentLimits().RuleBudget
	target := f.Target()
	results := make([]Result, 0, len(s.rules))
	for _, r := range s.rules {
		res := Result{
			Rule: r.ID, Title: r.Title, Severity: r.Severity, Kind: r.Kind,
			Controls: nonNil(r.Controls), Incidents: nonNil(r.Incidents), Remediation: r.Remediation,
		}
		var v verdict
		if err := ctx.Err(); err != nil {
			v = erred("", "evaluation stopped: %v", err)
		} else {
			v = s.evaluateWithin(ctx, e, r, target, budget)
		}
		res.Outcome, res.Message, res.Expected, res.Actual = v.outcome, v.message, v.expected, v.actual
		s.applyWaiver(&res, target, now)
		results = append(results, res)
	}
	return results
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

// evaluateWithin is evaluate bounded by ctx and the budget.
func (s *Set) evaluateWithin(ctx context.Context, e *env, r *Rule, target string, budget time.Duration) verdict {
	rctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	done := make(chan verdict, 1)
	go func() { done <- s.evaluate(e.with(rctx), r, target) }()
	select {
	case v := <-done:
		// A probe stopped by the context returns what it saw until then, which must not
		// count: only a verdict reached while the context was live is one.
		if rctx.Err() == nil {
			return v
		}
	case <-rctx.Done():
	}
	if err := ctx.Err(); err != nil {
		return erred("", "evaluation stopped: %v", err)
	}
	return erred("", "did not finish within its budget of %s (the probe or its regular expression is too costly "+
		"for this snapshot; simplify the rule, or raise the budget with %s=DURATION)", budget, EnvBudget)
}

// evaluate decides one rule: applicability first, then the probe.
func (s *Set) evaluate(e *env, r *Rule, target string) (v verdict) {
	defer func() {
		// A probe must not panic; if one does, the rule errs instead of the evaluation.
		if p := recover(); p != nil {
			v = erred("", "probe %s failed: %v", r.Kind, p)
		}
	}()
	if len(r.Targets) > 0 && !matchAny(r.Targets, target) {
		return verdict{outcome: Skip, message: fmt.Sprintf("target %s is not in %s", target, quoteList(r.Targets))}
	}
	if len(r.OS) > 0 {
		a, why := e.artifact("system/os-release")
		if why != "" {
			return erred("", "rule applies to %s only, and the operating system is unknown: %s", quoteList(r.OS), why)
		}
		osr := parsed(e, "os-release", a, parseOSRelease)
		if !osr.matches(r.OS) {
			return verdict{outcome: Skip, message: fmt.Sprintf("operating system %s is not in %s", osr, quoteList(r.OS))}
		}
	}
	return r.probe.eval(e)
}

func matchAny(globs []string, name string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// applyWaiver turns a fail or error into waived when an active waiver covers the rule on
// this target. Among several waivers the one expiring last decides.
func (s *Set) applyWaiver(res *Result, target string, now time.Time) {
	if res.Outcome != Fail && res.Outcome != Error {
		return
	}
	var best *Waiver
	for _, w := range s.waivers {
		if w.Rule == res.Rule && matchAny(w.Targets, target) && (best == nil || w.Expires.After(best.Expires)) {
			best = w
		}
	}
	if best == nil {
		return
	}
	info := &WaiverInfo{Reason: best.Reason, Approver: best.Approver, Expires: best.ExpiresDate(),
		Covers: res.Outcome, Source: best.Source}
	res.Waiver = info
	if !now.UTC().Before(best.Expires) {
		info.Expired = true
		res.Message = fmt.Sprintf("waiver expired on %s; %s", info.Expires, res.Message)
		return
	}
	res.Outcome = Waived
}

// osRelease is the part of /etc/os-release that rules gate on.
type osRelease struct {
	id, versionID string
	like          []string
}

func parseOSRelease(content []byte) osRelease {
	var o osRelease
	for _, l := range lines(content) {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"'`)
		switch k {
		case "ID":
			o.id = v
		case "VERSION_ID":
			o.versionID = v
		case "ID_LIKE":
			o.like = strings.Fields(v)
		}
	}
	return o
}

// matches reports whether any entry (ID or ID:VERSION_ID) names this system: the name
// equals ID or one of ID_LIKE, and the version, when given, equals VERSION_ID.
func (o osRelease) matches(entries []string) bool {
	for _, ent := range entries {
		name, ver, hasVer := strings.Cut(ent, ":")
		if hasVer && ver != o.versionID {
			continue
		}
		if name == o.id {
			return true
		}
		for _, l := range o.like {
			if name == l {
				return true
			}
		}
	}
	return false
}

func (o osRelease) String() string {
	s := o.id
	if s == "" {
		s = "(no ID)"
	}
	if o.versionID != "" {
		s += ":" + o.versionID
	}
	if len(o.like) > 0 {
		s += " (like " + strings.Join(o.like, ", ") + ")"
	}
	return s
}
