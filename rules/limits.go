package rules

import (
	"fmt"
	"os"
	"regexp/syntax"
	"strconv"
	"time"
	"unicode/utf8"
)

// Limits bound what loading rules reads and what evaluating them spends, so that a hostile or
// mistaken rule file or pack cannot exhaust memory or time. Each limit can be raised with the
// environment variable named beside it; a value of 0 there keeps the default.
type Limits struct {
	FileBytes   int64         // bytes of one rule file (HARDTRAIL_RULES_MAX_FILE_BYTES)
	TotalBytes  int64         // bytes of all rule files of one load (HARDTRAIL_RULES_MAX_BYTES)
	Files       int           // rule files in one load (HARDTRAIL_RULES_MAX_FILES)
	Rules       int           // rules, and waivers, in one load (HARDTRAIL_RULES_MAX_RULES)
	RegexpBytes int           // bytes of one regular expression (HARDTRAIL_RULES_MAX_REGEXP_BYTES)
	RegexpInsts int           // compiled instructions of one regular expression (HARDTRAIL_RULES_MAX_REGEXP_INSTS)
	RuleBudget  time.Duration // evaluation time of one rule on one snapshot (HARDTRAIL_RULES_BUDGET)
}

// DefaultLimits leave room for real rule sets many times the size of the shipped packs.
var DefaultLimits = Limits{
	FileBytes:   4 << 20,
	TotalBytes:  32 << 20,
	Files:       1000,
	Rules:       20_000,
	RegexpBytes: 4096,
	RegexpInsts: 10_000,
	RuleBudget:  5 * time.Second,
}

// Environment variables that raise (or lower) the limits.
const (
	EnvMaxFileBytes   = "HARDTRAIL_RULES_MAX_FILE_BYTES"
	EnvMaxBytes       = "HARDTRAIL_RULES_MAX_BYTES"
	EnvMaxFiles       = "HARDTRAIL_RULES_MAX_FILES"
	EnvMaxRules       = "HARDTRAIL_RULES_MAX_RULES"
	EnvMaxRegexpBytes = "HARDTRAIL_RULES_MAX_REGEXP_BYTES"
	EnvMaxRegexpInsts = "HARDTRAIL_RULES_MAX_REGEXP_INSTS"
	EnvBudget         = "HARDTRAIL_RULES_BUDGET"
)

// CurrentLimits are DefaultLimits with the environment's settings applied. A setting that is
// not a positive number (a duration for the budget, such as "30s") is ignored.
func CurrentLimits() Limits {
	l := DefaultLimits
	envInt := func(name string, dst *int64) {
		if n, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil && n > 0 {
			*dst = n
		}
	}
	envInt(EnvMaxFileBytes, &l.FileBytes)
	envInt(EnvMaxBytes, &l.TotalBytes)
	for name, dst := range map[string]*int{EnvMaxFiles: &l.Files, EnvMaxRules: &l.Rules,
		EnvMaxRegexpBytes: &l.RegexpBytes, EnvMaxRegexpInsts: &l.RegexpInsts} {
		var n int64
		if envInt(name, &n); n > 0 && n <= int64(^uint(0)>>1) {
			*dst = int(n)
		}
	}
	if d, err := time.ParseDuration(os.Getenv(EnvBudget)); err == nil && d > 0 {
		l.RuleBudget = d
	}
	return l
}

// LimitError is a limit that a rule load reached. Where names the file, or the sources as a whole.
type LimitError struct {
	Where string
	What  string // what was counted, such as "bytes of one rule file"
	Got   int64  // what was found (a lower bound when reading stopped early)
	Limit int64
	Env   string // the variable that raises the limit
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s: more than %d %s (found %d or more); if that is really meant, raise the limit with %s=N",
		e.Where, e.Limit, e.What, e.Got, e.Env)
}

// checkRegexp parses a rule's regular expression (with the syntax regexp.Compile reads)
// within the limits on its length and on the size of its compiled program: a huge
// expression costs time on every line it is matched on. It returns the parsed expression
// and the size of its program.
func checkRegexp(src string) (*syntax.Regexp, int, error) {
	l := CurrentLimits()
	if len(src) > l.RegexpBytes {
		return nil, 0, fmt.Errorf("the regular expression %s is %d bytes, more than the limit of %d (raise it with %s=N)",
			clipRegexp(src), len(src), l.RegexpBytes, EnvMaxRegexpBytes)
	}
	parsed, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return nil, 0, fmt.Errorf("invalid regular expression: %w", err)
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return nil, 0, fmt.Errorf("invalid regular expression: %w", err)
	}
	if n := len(prog.Inst); n > l.RegexpInsts {
		return nil, 0, fmt.Errorf("the regular expression %s compiles to %d instructions, more than the limit of %d "+
			"(simplify it, split it over several rules, or raise the limit with %s=N)",
			clipRegexp(src), n, l.RegexpInsts, EnvMaxRegexpInsts)
	}
	return parsed, len(prog.Inst), nil
}

// clipRegexp shows a regular expression in a message: whole when short, else its start and
// its length, so that a message never repeats a huge expression.
func clipRegexp(src string) string {
	const show = 40
	if len(src) <= show {
		return "/" + src + "/"
	}
	cut := show
	for cut > 0 && !utf8.RuneStart(src[cut]) {
		cut--
	}
	return fmt.Sprintf("/%s.../ (%d bytes)", src[:cut], len(src))
}
