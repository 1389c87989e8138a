package diff

import (
	"fmt"
	"os"
	"testing"
)

// diffMainEnv makes the test binary act as a diff program (`diff.test A B` writes
// Unified(A, B) with labels a and b to stdout), so benchmarks can measure it as a process beside
// GNU diff: start-up, reading, peak RSS.
const diffMainEnv = "HARDTRAIL_DIFF_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(diffMainEnv) == "1" && len(os.Args) == 3 {
		os.Exit(diffMain(os.Args[1], os.Args[2]))
	}
	os.Exit(m.Run())
}

func diffMain(pa, pb string) int {
	a, err := os.ReadFile(pa)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	b, err := os.ReadFile(pb)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	out := Unified(a, b, "a", "b")
	if _, err := os.Stdout.Write(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if len(out) > 0 {
		return 1
	}
	return 0
}
