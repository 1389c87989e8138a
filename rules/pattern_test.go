package rules

import (
	"fmt"
	"regexp"
	"runtime"
	"testing"
	"time"
)

// A plain string, maybe anchored, is matched as a string, with regexp's verdict on every
// input, invalid UTF-8 included; anything else is compiled.
func TestPatternLiterals(t *testing.T) {
	inputs := []string{"", "PermitRootLogin no", "  PermitRootLogin no", "PermitRootLogin no ", "permitrootlogin no",
		"x-j ACCEPT", "-j ACCEPT", "a.b", "axb", "caf\xc3\xa9", "caf\xe2\xc3\xa9", "\xff-j ACCEPT\xff", "\ufffd", "\xff"}
	for _, tc := range []struct {
		src  string
		kind literalKind
	}{
		{`PermitRootLogin no`, litContains},
		{`^PermitRootLogin no`, litPrefix},
		{`PermitRootLogin no$`, litSuffix},
		{`^PermitRootLogin no$`, litEqual},
		{`(?:-j ACCEPT)`, litContains},
		{`a\.b`, litContains},
		{`^café$`, litEqual},
		{`a.b`, notLiteral},
		{`(?i)PermitRootLogin no`, notLiteral},
		{`(?m)^PermitRootLogin no$`, notLiteral},
		{`(-j ACCEPT)`, notLiteral},
		{`^-j ACCEPT|x$`, notLiteral},
		{`\x{fffd}`, notLiteral},
		{`^$`, notLiteral},
		{``, notLiteral},
		{`\AP\z`, litEqual},
	} {
		p, err := newPattern(tc.src)
		if err != nil {
			t.Fatalf("%q: %v", tc.src, err)
		}
		if p.lit.kind != tc.kind {
			t.Errorf("%q: kind %d, want %d", tc.src, p.lit.kind, tc.kind)
		}
		re := regexp.MustCompile(tc.src)
		m := p.matcher()
		for _, in := range inputs {
			if got, want := m.MatchString(in), re.MatchString(in); got != want {
				t.Errorf("%q on %q: %v, regexp says %v", tc.src, in, got, want)
			}
			if got, want := m.Match([]byte(in)), re.Match([]byte(in)); got != want {
				t.Errorf("%q on %q (bytes): %v, regexp says %v", tc.src, in, got, want)
			}
		}
	}
}

// Compiled programs are kept within the budget: past it, each evaluation compiles its own and
// lets it go, with the same verdicts; a pattern no longer used gives its share back.
func TestPatternKeptBudget(t *testing.T) {
	// Programs of other tests' sets may still count: let the collector give their share back.
	before := kept.Load()
	for range 20 {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
		if k := kept.Load(); k < before {
			before = k
		} else {
			break
		}
	}
	var ps []*pattern
	total := int64(0)
	for i := 0; total < 2*keptBudget; i++ {
		p, err := newPattern(fmt.Sprintf(`^permitrootlogin (yes|%d)$`, i))
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
		total += int64(p.insts)
	}
	for round := range 2 {
		for i, p := range ps {
			m := p.matcher()
			if !m.MatchString(fmt.Sprintf("permitrootlogin %d", i)) || m.MatchString("permitrootlogin no") {
				t.Fatalf("round %d: pattern %d matches wrongly", round, i)
			}
		}
		if k := kept.Load(); k > keptBudget || k <= before && before < keptBudget/2 {
			t.Fatalf("round %d: %d instructions kept (%d before), budget %d", round, k, before, keptBudget)
		}
	}
	held := 0
	for _, p := range ps {
		if p.re.Load() != nil {
			held++
		}
	}
	if held == 0 && before < keptBudget/2 || held == len(ps) {
		t.Errorf("%d of %d programs kept", held, len(ps))
	}
	ps = nil
	deadline := time.Now().Add(10 * time.Second)
	for kept.Load() > before && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if k := kept.Load(); k > before {
		t.Errorf("%d instructions still counted as kept after the patterns were dropped, %d before", k, before)
	}
}

// FuzzPatternLiteral checks the string matcher against regexp on any expression it takes for
// a plain string.
func FuzzPatternLiteral(f *testing.F) {
	for _, s := range [][2]string{{`^PermitRootLogin no$`, "PermitRootLogin no"}, {`a\.b`, "xa.b"}, {`(?:x)$`, "\xffx"}, {`^é`, "\xe9"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, src, in string) {
		p, err := newPattern(src)
		if err != nil || p.lit.kind == notLiteral {
			return
		}
		if got, want := p.matcher().MatchString(in), regexp.MustCompile(src).MatchString(in); got != want {
			t.Errorf("%q on %q: %v, regexp says %v", src, in, got, want)
		}
	})
}

// A set gives back its files' text verbatim, however large, and fresh on every call.
func TestTextsVerbatim(t *testing.T) {
	src := []byte(generatedRules(loadHost(t, "web-01"), 2000))
	s, err := LoadFiles(File{Name: "gen.toml", Data: src}, File{Name: "empty.toml", Data: []byte("# nothing\n")})
	if err != nil {
		t.Fatal(err)
	}
	texts := s.Texts()
	if len(texts) != 2 || texts[0].Name != "gen.toml" || string(texts[0].Data) != string(src) || string(texts[1].Data) != "# nothing\n" {
		t.Fatalf("texts differ from the files loaded")
	}
	texts[0].Data[0] = 'X'
	if again := s.Texts(); again[0].Data[0] != src[0] {
		t.Error("a caller's change reached the set")
	}
}
