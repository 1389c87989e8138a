package testutil

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// update is the one -update flag of every test binary: each package's tests import testutil, so
// `go test ./... -update` is accepted everywhere and rewrites the goldens of the packages that
// have any.
var update = flag.Bool("update", false, "rewrite golden files under testdata/ instead of comparing with them")

// Update reports whether the test binary runs with -update.
func Update() bool { return *update }

// Golden compares got with the golden file at path, or rewrites the file under -update. A file
// whose content is already got is left untouched, so an update that changes nothing leaves
// the tree clean.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	want, err := os.ReadFile(path)
	if Update() {
		if err == nil && string(want) == string(got) {
			return
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if string(want) != string(got) {
		wl, gl := strings.SplitAfter(string(want), "\n"), strings.SplitAfter(string(got), "\n")
		i := 0
		for i < len(wl) && i < len(gl) && wl[i] == gl[i] {
			i++
		}
		at := func(l []string) string {
			if i < len(l) && l[i] != "" {
				return strings.TrimSuffix(l[i], "\n")
			}
			return "(end of file)"
		}
		t.Errorf("%s differs from the output at line %d (go test -update rewrites it; review the diff):\nwant: %q\n got: %q\nthe whole output:\n%s",
			path, i+1, at(wl), at(gl), got)
	}
}
