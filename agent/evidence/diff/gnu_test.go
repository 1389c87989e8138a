package diff

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// gnuDiff runs GNU `diff -u` with labels on a and b written to dir.
func gnuDiff(t testing.TB, tool, dir string, a, b []byte, la, lb string) []byte {
	t.Helper()
	pa, pb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(pa, a, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pb, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "-u", "--label", la, "--label", lb, pa, pb).Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("%s: %v", tool, err)
	}
	return out
}

func TestUnifiedMatchesGNURandom(t *testing.T) {
	tool := testutil.Tool(t, "diff")
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 400 {
		a, b := randomPair(r, 20+i/4)
		want := gnuDiff(t, tool, dir, a, b, "a/x", "b/x")
		if got := Unified(a, b, "a/x", "b/x"); !bytes.Equal(got, want) {
			t.Fatalf("case %d differs from GNU diff\na=%q\nb=%q\nGNU:\n%s\nours:\n%s", i, a, b, want, got)
		}
	}
}
