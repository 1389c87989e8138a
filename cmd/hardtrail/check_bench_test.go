package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCheck times, side by side in every iteration, `snapshot` of the linux profile,
// `check` (the same capture, then the shipped packs evaluated and the results stored) and
// `check --snapshot` of a stored snapshot (evaluation alone), beside `version` (process start).
// The difference between check and snapshot is what the evaluation adds to a capture.
func BenchmarkCheck(b *testing.B) {
	store := filepath.Join(b.TempDir(), "h.db")
	run := func(args ...string) time.Duration {
		cmd := exec.Command(binary, append([]string{"--store", store}, args...)...)
		cmd.Env = append(os.Environ(), "HARDTRAIL_CONFIG=", "HARDTRAIL_STORE=")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 1) {
			b.Fatalf("%v: %v\n%s", args, err, out)
		}
		return d
	}
	run("snapshot") // the first snapshot stores every blob
	run("check")
	var snap, check, stored, version time.Duration
	for b.Loop() {
		snap += run("snapshot")
		check += run("check")
		stored += run("check", "--snapshot", "local")
		version += run("version")
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(snap), "snapshot-ms")
	b.ReportMetric(ms(check), "check-ms")
	b.ReportMetric(ms(stored), "check-stored-ms")
	b.ReportMetric(ms(version), "version-ms")
	b.ReportMetric(float64(check)/float64(snap), "check/snapshot")
}
