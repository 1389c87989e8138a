package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// Goals the diff must keep against GNU diff -u, whole process, on a stored 100,000-line
// artifact with 1% of its lines changed: wall time (median of paired runs) and peak RSS.
const (
	diffWallGoal = 1.5
	diffRSSGoal  = 2.0
)

// BenchmarkDiffStored times `hardtrail diff A B` of a stored 100,000-line artifact, 1% changed,
// against GNU `diff -u` of the same two files, both as whole processes, alternating in every
// iteration, and measures both peak RSS under /usr/bin/time. It fails when the median paired
// wall ratio or the RSS ratio is above the goals, so `make bench` guards them.
func BenchmarkDiffStored(b *testing.B) {
	gnu := testutil.Tool(b, "diff")
	timeTool := testutil.Tool(b, "time")
	dir := b.TempDir()
	before, after := testutil.BigConfig(100_000)
	fa, fb, cur := filepath.Join(dir, "a.conf"), filepath.Join(dir, "b.conf"), filepath.Join(dir, "cur.conf")
	cfg := filepath.Join(dir, "hardtrail.toml")
	st := filepath.Join(dir, "h.db")
	for p, c := range map[string][]byte{fa: before, fb: after, cur: before,
		cfg: fmt.Appendf(nil, "[[profile]]\nname = \"big\"\n[[profile.source]]\nname = \"web/conf\"\nfiles = [%q]\n\n[[target]]\nname = \"t\"\nprofiles = [\"big\"]\n", cur)} {
		if err := os.WriteFile(p, c, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	snap := func() {
		if out, err := exec.Command(binary, "--config", cfg, "--store", st, "snapshot").CombinedOutput(); err != nil {
			b.Fatalf("snapshot: %v\n%s", err, out)
		}
	}
	snap()
	if err := os.WriteFile(cur, after, 0o644); err != nil {
		b.Fatal(err)
	}
	snap()
	ours := []string{binary, "--config", cfg, "--store", st, "diff", "t~1", "t"}
	theirs := []string{gnu, "-u", fa, fb}
	// The same hunks: everything but the two label lines.
	o, _ := exec.Command(ours[0], ours[1:]...).Output()
	g, _ := exec.Command(theirs[0], theirs[1:]...).Output()
	if body := func(p []byte) string {
		_, rest, _ := strings.Cut(string(p), "\n+++ ")
		_, rest, _ = strings.Cut(rest, "\n")
		return rest
	}; body(o) == "" || body(o) != body(g) {
		b.Fatalf("hardtrail diff and diff -u differ (%d and %d bytes)", len(o), len(g))
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	timed := func(argv []string) time.Duration {
		c := exec.Command(argv[0], argv[1:]...)
		c.Stdout = null
		start := time.Now()
		err := c.Run()
		d := time.Since(start)
		if err != nil && c.ProcessState.ExitCode() != 1 { // both exit 1 on differences
			b.Fatalf("%v: %v", argv, err)
		}
		return d
	}
	var ratios []float64
	var ht, gn time.Duration
	for b.Loop() {
		h, d := timed(ours), timed(theirs)
		ht += h
		gn += d
		ratios = append(ratios, float64(h)/float64(d))
	}
	slices.Sort(ratios)
	median := ratios[len(ratios)/2]
	rss := func(argv []string) float64 {
		out := filepath.Join(b.TempDir(), "rss")
		c := exec.Command(timeTool, append([]string{"-f", "%M", "-o", out}, argv...)...)
		c.Stdout = null
		if err := c.Run(); err != nil && c.ProcessState.ExitCode() != 1 {
			b.Fatalf("%v: %v", argv, err)
		}
		kb, err := os.ReadFile(out)
		if err != nil {
			b.Fatal(err)
		}
		f := strings.Fields(string(kb))
		var v float64
		fmt.Sscan(f[len(f)-1], &v)
		return v
	}
	var rh, rg []float64
	for range 5 {
		rh, rg = append(rh, rss(ours)), append(rg, rss(theirs))
	}
	slices.Sort(rh)
	slices.Sort(rg)
	rssRatio := rh[2] / rg[2]
	n := float64(b.N)
	b.ReportMetric(float64(ht.Microseconds())/n/1000, "hardtrail-ms")
	b.ReportMetric(float64(gn.Microseconds())/n/1000, "gnu-ms")
	b.ReportMetric(median, "wall-ratio")
	b.ReportMetric(rh[2]/1024, "hardtrail-MB")
	b.ReportMetric(rg[2]/1024, "gnu-MB")
	b.ReportMetric(rssRatio, "rss-ratio")
	b.Logf("hardtrail diff vs GNU diff -u: means %.1f ms and %.1f ms, median paired wall ratio %.2f (goal %.1f); peak RSS %.1f MB and %.1f MB, ratio %.2f (goal %.1f)",
		float64(ht.Microseconds())/n/1000, float64(gn.Microseconds())/n/1000, median, diffWallGoal, rh[2]/1024, rg[2]/1024, rssRatio, diffRSSGoal)
	if median > diffWallGoal {
		b.Errorf("hardtrail diff takes %.2fx GNU diff -u's wall time (median of %d paired runs), goal at most %.1fx", median, len(ratios), diffWallGoal)
	}
	if rssRatio > diffRSSGoal {
		b.Errorf("hardtrail diff peaks at %.1f MB, %.2fx GNU diff -u's %.1f MB, goal at most %.1fx", rh[2]/1024, rssRatio, rg[2]/1024, diffRSSGoal)
	}
}
