package rules

import (
	"bytes"
	"regexp"
	"regexp/syntax"
	"runtime"
	"strings"
	"sync/atomic"
	"unicode/utf8"
)

// pattern is a rule's regular expression. It is parsed and checked against the limits when
// the rule is loaded, and compiled when the rule is first evaluated. A pattern that is a
// plain string, maybe anchored at the start or end (such as ^PermitRootLogin no$), is
// matched as a string and never compiled. A compiled program is kept for later evaluations
// while all kept programs stay within a memory budget (keptBudget); beyond it, each
// evaluation compiles the ones it matches and lets them go: a large rule set costs CPU per
// evaluation instead of holding several kilobytes per expression for good.
type pattern struct {
	src   string
	lit   literal
	insts int // instructions of the compiled program: the cost of keeping it

	re atomic.Pointer[regexp.Regexp]
}

// literal is how a pattern without metacharacters matches: the string, and where.
type literal struct {
	kind literalKind
	s    string
}

type literalKind uint8

const (
	notLiteral literalKind = iota
	litContains
	litPrefix
	litSuffix
	litEqual
)

// keptBudget bounds the memory of the compiled programs kept across evaluations, counted in
// program instructions: one costs 60 to 130 bytes in the compiled expression (its
// instruction, and its copy in the one-pass program of an anchored expression), so the
// budget holds about 1.3 MB: every expression of a set of a thousand rules. Past it, an
// expression of typical size costs 10 to 20 µs to compile per evaluation.
var keptBudget int64 = 16 << 10 // a variable for the benchmark that weighs it

// kept counts the instructions of the programs kept, over every pattern alive.
var kept atomic.Int64

// newPattern parses src within the limits; the error says what is wrong with it.
func newPattern(src string) (*pattern, error) {
	re, insts, err := checkRegexp(src)
	if err != nil {
		return nil, err
	}
	return &pattern{src: src, lit: literalOf(re), insts: insts}, nil
}

// literalOf recognises a plain string, optionally anchored at the start (^) or end ($) of
// the text, in a parsed expression. A string holding U+FFFD is not taken as plain: the
// expression matches it on invalid UTF-8 as well.
func literalOf(re *syntax.Regexp) literal {
	plain := func(r *syntax.Regexp) (string, bool) {
		if r.Op != syntax.OpLiteral || r.Flags&syntax.FoldCase != 0 {
			return "", false
		}
		s := string(r.Rune)
		return s, !strings.ContainsRune(s, utf8.RuneError)
	}
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	start := len(subs) > 0 && subs[0].Op == syntax.OpBeginText
	if start {
		subs = subs[1:]
	}
	end := len(subs) > 0 && subs[len(subs)-1].Op == syntax.OpEndText
	if end {
		subs = subs[:len(subs)-1]
	}
	if len(subs) != 1 {
		return literal{}
	}
	s, ok := plain(subs[0])
	if !ok {
		return literal{}
	}
	switch {
	case start && end:
		return literal{litEqual, s}
	case start:
		return literal{litPrefix, s}
	case end:
		return literal{litSuffix, s}
	}
	return literal{litContains, s}
}

// matcher returns what matches the pattern for one evaluation: its string, its kept
// program, or a program compiled now (kept when the budget allows).
func (p *pattern) matcher() matcher {
	if p.lit.kind != notLiteral {
		return matcher{lit: p.lit}
	}
	if re := p.re.Load(); re != nil {
		return matcher{re: re}
	}
	re, err := regexp.Compile(p.src)
	if err != nil {
		// The loader parsed it: it cannot fail to compile.
		panic("rules: compiling a checked expression: " + err.Error())
	}
	n := int64(p.insts)
	if kept.Add(n) > keptBudget {
		kept.Add(-n)
		return matcher{re: re}
	}
	if !p.re.CompareAndSwap(nil, re) {
		kept.Add(-n) // another evaluation kept one first
		return matcher{re: p.re.Load()}
	}
	runtime.AddCleanup(p, func(n int64) { kept.Add(-n) }, n)
	return matcher{re: re}
}

// matcher matches one pattern: as a string when lit is set, else with re.
type matcher struct {
	re  *regexp.Regexp
	lit literal
}

// Match reports whether b holds a match.
func (m matcher) Match(b []byte) bool {
	switch m.lit.kind {
	case litContains:
		return bytes.Contains(b, []byte(m.lit.s))
	case litPrefix:
		return bytes.HasPrefix(b, []byte(m.lit.s))
	case litSuffix:
		return bytes.HasSuffix(b, []byte(m.lit.s))
	case litEqual:
		return string(b) == m.lit.s
	}
	return m.re.Match(b)
}

// MatchString reports whether s holds a match.
func (m matcher) MatchString(s string) bool {
	switch m.lit.kind {
	case litContains:
		return strings.Contains(s, m.lit.s)
	case litPrefix:
		return strings.HasPrefix(s, m.lit.s)
	case litSuffix:
		return strings.HasSuffix(s, m.lit.s)
	case litEqual:
		return s == m.lit.s
	}
	return m.re.MatchString(s)
}
