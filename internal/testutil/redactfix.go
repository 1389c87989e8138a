package testutil

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// RedactFixtures are the redaction fixtures in testdata/redact: realistic files with the secret
// values each holds, the lines of each that must read exactly as captured, and the files that
// must come out whole (but for lines starting with one of the listed prefixes).
type RedactFixtures struct {
	Dir     string              // the directory of the files
	Secrets map[string][]string `json:"secrets"`
	Keep    map[string][]string `json:"keep"`
	Whole   map[string][]string `json:"whole"`
}

// LoadRedactFixtures reads testdata/redact/fixtures.json.
func LoadRedactFixtures(t testing.TB) *RedactFixtures {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "redact")
	b, err := os.ReadFile(filepath.Join(dir, "fixtures.json"))
	if err != nil {
		t.Fatal(err)
	}
	f := &RedactFixtures{Dir: filepath.Join(dir, "files")}
	if err := json.Unmarshal(b, f); err != nil {
		t.Fatal(err)
	}
	return f
}

// Files lists the fixture files by name, sorted.
func (f *RedactFixtures) Files() []string {
	seen := map[string]bool{}
	for n := range f.Secrets {
		seen[n] = true
	}
	for n := range f.Whole {
		seen[n] = true
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// AllSecrets lists every secret value of every file.
func (f *RedactFixtures) AllSecrets() []string {
	var out []string
	for _, n := range f.Files() {
		out = append(out, f.Secrets[n]...)
	}
	return out
}

// CheckStored reports every fixture rule that stored, the content kept for the file name,
// breaks: a secret in it, a kept line missing, a line of a whole file changed.
func (f *RedactFixtures) CheckStored(t testing.TB, name string, orig, stored []byte) {
	t.Helper()
	for _, s := range f.Secrets[name] {
		if strings.Contains(string(stored), s) {
			t.Errorf("%s: secret %q stored", name, s)
		}
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(stored), "\n") {
		have[l] = true
	}
	for _, k := range f.Keep[name] {
		if !have[k] {
			t.Errorf("%s: line %q does not read as captured", name, k)
		}
	}
	if except, ok := f.Whole[name]; ok {
	lines:
		for _, l := range strings.Split(string(orig), "\n") {
			for _, p := range except {
				if strings.HasPrefix(l, p) {
					continue lines
				}
			}
			if !have[l] {
				t.Errorf("%s: line %q does not read as captured", name, l)
			}
		}
	}
}
