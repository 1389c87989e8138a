package diff

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

// peakRSS runs argv once under /usr/bin/time and returns its peak resident set size in KiB, or
// 0 when time is not installed. (The rusage of a child started straight from the test process
// would not do: Linux carries the parent's high-water mark across the child's exec.)
func peakRSS(b *testing.B, argv []string) float64 {
	tool, err := transport.LookPath("time")
	if err != nil {
		b.Logf("no peak RSS: %v", err)
		return 0
	}
	out := filepath.Join(b.TempDir(), "rss")
	c := exec.Command(tool, append([]string{"-f", "%M", "-o", out}, argv...)...)
	c.Env = append(os.Environ(), diffMainEnv+"=1")
	if err := c.Run(); err != nil && c.ProcessState.ExitCode() != 1 {
		b.Fatalf("%v: %v", c.Args, err)
	}
	kb, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	// The last line is the figure; a line before it may say the command exited with 1.
	lines := strings.Fields(strings.TrimSpace(string(kb)))
	var v float64
	if _, err := fmt.Sscan(lines[len(lines)-1], &v); err != nil {
		b.Fatalf("time wrote %q: %v", kb, err)
	}
	return v
}

// BenchmarkDiff100k compares Unified with GNU diff on a 100,000-line artifact with 1% of its
// lines changed. "hardtrail" is the in-process call; "gnu-diff" execs /usr/bin/diff -u on the same
// two files; "hardtrail-exec" execs this test binary as a diff program on them, so both exec
// cases pay process start and file reading alike and report their peak RSS; "gnu-diff-empty"
// is the cost of starting GNU diff on two empty files, to subtract from "gnu-diff".
func BenchmarkDiff100k(b *testing.B) {
	benchSizes(b, []int{100_000})
}

// BenchmarkDiffScaling shows time and memory as the artifact grows.
func BenchmarkDiffScaling(b *testing.B) {
	benchSizes(b, []int{25_000, 50_000, 100_000, 200_000})
}

func benchSizes(b *testing.B, sizes []int) {
	tool := testutil.Tool(b, "diff")
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range sizes {
		before, after := testutil.BigConfig(n)
		dir := b.TempDir()
		pa, pb, pe := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "empty")
		for p, d := range map[string][]byte{pa: before, pb: after, pe: nil} {
			if err := os.WriteFile(p, d, 0o600); err != nil {
				b.Fatal(err)
			}
		}
		want := Unified(before, after, "a", "b")
		if got := gnuDiff(b, tool, dir, before, after, "a", "b"); !bytes.Equal(got, want) {
			b.Fatalf("%d lines: output differs from GNU diff", n)
		}
		name := func(s string) string {
			if len(sizes) == 1 {
				return s
			}
			return fmt.Sprintf("%s/lines=%d", s, n)
		}
		b.Run(name("hardtrail"), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(before) + len(after)))
			for b.Loop() {
				Unified(before, after, "a", "b")
			}
		})
		run := func(sub string, argv ...string) {
			b.Run(name(sub), func(b *testing.B) {
				b.SetBytes(int64(len(before) + len(after)))
				rss := peakRSS(b, argv)
				for b.Loop() {
					c := exec.Command(argv[0], argv[1:]...)
					c.Env = append(os.Environ(), diffMainEnv+"=1")
					var out bytes.Buffer
					c.Stdout = &out
					if err := c.Run(); err != nil && c.ProcessState.ExitCode() != 1 {
						b.Fatalf("%v: %v", argv, err)
					}
					if sub != "gnu-diff-empty" && out.Len() != len(want) {
						b.Fatalf("%v: %d bytes of output, want %d", argv, out.Len(), len(want))
					}
				}
				if rss > 0 {
					b.ReportMetric(rss, "peak-RSS-KiB")
				}
			})
		}
		run("gnu-diff", tool, "-u", "--label", "a", "--label", "b", pa, pb)
		run("hardtrail-exec", self, pa, pb)
		if len(sizes) == 1 {
			run("gnu-diff-empty", tool, "-u", pe, pe)
		}
	}
}

// BenchmarkRegression100k checks a 100,000-line artifact whose remediation changed 1% of its
// lines, against a current version with one hardened line reverted and unrelated edits.
func BenchmarkRegression100k(b *testing.B) {
	before, after := testutil.BigConfig(100_000)
	current := bytes.Replace(after, []byte(" # changed\n"), []byte("\n"), 1)
	current = append([]byte("# managed elsewhere\n"), current...)
	if r := Regression(before, after, current); r.Status != Regressed {
		b.Fatalf("status %s", r.Status)
	}
	b.ReportAllocs()
	for b.Loop() {
		Regression(before, after, current)
	}
}
