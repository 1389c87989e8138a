package rules

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// words is an alternation of n random words: no common prefix for the matcher to use, so that
// every byte of input costs time in proportion to n.
func words(n int) string {
	r := rand.New(rand.NewPCG(1, 2))
	w := make([]string, n)
	for i := range w {
		b := make([]byte, 8)
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		w[i] = string(b)
	}
	return strings.Join(w, "|")
}

func ruleWithRegexp(re string) string {
	return fmt.Sprintf("[[rule]]\nid = \"r\"\ntitle = \"t\"\nseverity = \"high\"\ncontrols = [\"c\"]\n[rule.command]\nartifact = \"a\"\nstdout_matches = %q\n", re)
}

func TestRegexpLimits(t *testing.T) {
	for _, tt := range []struct {
		name, re string
		env      [2]string
		want     []string
	}{
		{"long source", words(100_000), [2]string{}, []string{"rule.command.stdout_matches", "bytes, more than the limit of 4096", EnvMaxRegexpBytes}},
		{"large program", `(?:\pL\pN\pL\pN\pL\pN\pL\pN\pL\pN){1000}`, [2]string{}, []string{"compiles to", "more than the limit of 10000", EnvMaxRegexpInsts}},
		{"raised", words(3000), [2]string{EnvMaxRegexpBytes, "100000"}, []string{"compiles to", EnvMaxRegexpInsts}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env[0] != "" {
				t.Setenv(tt.env[0], tt.env[1])
			}
			_, err := LoadFS(fstest.MapFS{"r.toml": {Data: []byte(ruleWithRegexp(tt.re))}})
			if err == nil {
				t.Fatal("loaded")
			}
			var le *LoadError
			if !errors.As(err, &le) || le.Line != 8 {
				t.Errorf("not a positioned *LoadError: %#v", err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q: %s", w, msg)
				}
			}
			if len(msg) > 400 {
				t.Errorf("the error repeats the expression (%d bytes): %.300s", len(msg), msg)
			}
		})
	}
}

func TestLoadLimits(t *testing.T) {
	dir := t.TempDir()
	rule := func(i int) string {
		return fmt.Sprintf("[[rule]]\nid = \"r%d\"\ntitle = \"t\"\nseverity = \"high\"\ncontrols = [\"c\"]\n[rule.sysctl]\nkey = \"k\"\nequals = \"1\"\n", i)
	}
	write := func(name string, n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(rule(i))
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	small := write("small.toml", 3)
	big := write("big.toml", 200)
	for _, tt := range []struct {
		name  string
		env   map[string]string
		paths []string
		env2  string // the variable the error must name
	}{
		{"file bytes", map[string]string{EnvMaxFileBytes: "1000"}, []string{big}, EnvMaxFileBytes},
		{"total bytes", map[string]string{EnvMaxBytes: "20000"}, []string{big, big}, EnvMaxBytes},
		{"files", map[string]string{EnvMaxFiles: "2"}, []string{dir, small}, EnvMaxFiles},
		{"rules", map[string]string{EnvMaxRules: "100"}, []string{big}, EnvMaxRules},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := Load(tt.paths...)
			var le *LimitError
			if !errors.As(err, &le) || le.Env != tt.env2 || !strings.Contains(err.Error(), tt.env2+"=N") {
				t.Fatalf("err = %v, want a *LimitError naming %s", err, tt.env2)
			}
		})
	}
	if _, err := Load(big, small); err == nil || !strings.Contains(err.Error(), "duplicate rule ID") {
		t.Errorf("within the limits: %v", err)
	}
}

// A rule past its budget is an error naming the budget, without the expression; the next rule
// is evaluated as usual.
func TestRuleBudget(t *testing.T) {
	t.Setenv(EnvMaxRegexpBytes, "1000000")
	t.Setenv(EnvMaxRegexpInsts, "10000000")
	t.Setenv(EnvBudget, "200ms")
	// A stopped probe must not pass: stdout_not_matches that saw no match before its budget
	// ended proves nothing.
	notMatches := strings.Replace(strings.Replace(ruleWithRegexp(words(20_000)), "stdout_matches", "stdout_not_matches", 1), `id = "r"`, `id = "slow-absent"`, 1)
	src := ruleWithRegexp(words(20_000)) + strings.Replace(ruleWithRegexp("zzz"), `id = "r"`, `id = "quick"`, 1) + notMatches
	s, err := LoadFS(fstest.MapFS{"r.toml": {Data: []byte(src)}})
	if err != nil {
		t.Fatal(err)
	}
	f := NewMemFacts("t", Artifact{Name: "a", Content: []byte(strings.Repeat("x", 48<<10) + "\nzzz\n")})
	start := time.Now()
	res := s.Evaluate(context.Background(), f, now)
	took := time.Since(start)
	if res[0].Outcome != Error || !strings.Contains(res[0].Message, "budget of 200ms") || !strings.Contains(res[0].Message, EnvBudget) {
		t.Errorf("slow rule: %s %q", res[0].Outcome, res[0].Message)
	}
	if len(res[0].Message)+len(res[0].Expected) > 400 {
		t.Errorf("the result repeats the expression: %.200s", res[0].Message+res[0].Expected)
	}
	if res[1].Outcome != Pass {
		t.Errorf("next rule: %s %q", res[1].Outcome, res[1].Message)
	}
	if res[2].Outcome != Error || !strings.Contains(res[2].Message, "budget") {
		t.Errorf("slow stdout_not_matches: %s %q", res[2].Outcome, res[2].Message)
	}
	if took > 3*time.Second {
		t.Errorf("evaluation took %s with a budget of 200ms", took)
	}
}

// Cancelling the context ends the rule being evaluated at once.
func TestEvaluateCancelMidRule(t *testing.T) {
	t.Setenv(EnvMaxRegexpBytes, "1000000")
	t.Setenv(EnvMaxRegexpInsts, "10000000")
	s, err := LoadFS(fstest.MapFS{"r.toml": {Data: []byte(ruleWithRegexp(words(20_000)))}})
	if err != nil {
		t.Fatal(err)
	}
	f := NewMemFacts("t", Artifact{Name: "a", Content: []byte(strings.Repeat("x", 48<<10))})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := s.Evaluate(ctx, f, now)
	if took := time.Since(start); took > time.Second {
		t.Errorf("cancelled evaluation took %s", took)
	}
	if res[0].Outcome != Error || !strings.Contains(res[0].Message, "evaluation stopped") {
		t.Errorf("%s %q", res[0].Outcome, res[0].Message)
	}
}

// A match on one long line stops when the context ends: a rule over a single-line artifact of
// megabytes cannot keep running past its budget.
func TestLongLineMatchStops(t *testing.T) {
	t.Setenv(EnvMaxRegexpBytes, "1000000")
	t.Setenv(EnvMaxRegexpInsts, "10000000")
	p, err := newPattern(words(20_000))
	if err != nil {
		t.Fatal(err)
	}
	re := p.matcher()
	line := []byte(strings.Repeat("x", 4<<20))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, ok := matchLine(ctx, re, line); ok {
		t.Error("matched")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("matching a 4 MiB line went on for %s after its context ended at 100ms", took)
	}
	// Short of the threshold and with a live context, the result is re.Match's.
	for _, in := range []string{"nomatch", strings.Repeat("y", longLine) + strings.Split(words(3), "|")[0]} {
		if _, _, ok := matchLine(context.Background(), matcher{re: regexp.MustCompile(strings.Split(words(3), "|")[0] + "$")}, []byte(in)); ok != strings.HasSuffix(in, strings.Split(words(3), "|")[0]) {
			t.Errorf("matchLine(%.20q...) = %v", in, ok)
		}
	}
}
