package collector

import (
	"errors"
	"io/fs"
	"testing"
)

// Every built-in profile is the one profile of the file named after it, which is what lets
// IsBuiltin and BuiltinNames answer without decoding and BuiltinProfile decode only one.
func TestBuiltinProfileOnePerFile(t *testing.T) {
	names := BuiltinNames()
	if len(names) == 0 {
		t.Fatal("no built-in profiles")
	}
	all, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(names) {
		t.Fatalf("Builtin has %d profiles, BuiltinNames %d", len(all), len(names))
	}
	for _, n := range names {
		if !IsBuiltin(n) {
			t.Errorf("IsBuiltin(%q) = false", n)
		}
		p, err := BuiltinProfile(n)
		if err != nil {
			t.Fatal(err)
		}
		if p.Name != n || all[n] == nil || len(p.Sources) != len(all[n].Sources) {
			t.Errorf("BuiltinProfile(%q) = %q with %d sources", n, p.Name, len(p.Sources))
		}
	}
	for _, n := range []string{"nope", "", "../profiles/linux", "linux.toml"} {
		if IsBuiltin(n) {
			t.Errorf("IsBuiltin(%q) = true", n)
		}
		if _, err := BuiltinProfile(n); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("BuiltinProfile(%q): %v, want fs.ErrNotExist", n, err)
		}
	}
}

// A built-in profile is decoded once per process: a fleet capture asks for it once per target,
// and decoding it each time was an eighth of what the collector allocated.
func TestBuiltinProfileDecodedOnce(t *testing.T) {
	first, err := BuiltinProfile("linux")
	if err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(20, func() {
		p, err := BuiltinProfile("linux")
		if err != nil || p != first {
			t.Fatalf("BuiltinProfile again: %p, %v; want %p", p, err, first)
		}
	}); allocs > 0 {
		t.Errorf("BuiltinProfile of a decoded profile: %.0f allocations", allocs)
	}
}
