package main

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/hardtrail/hardtrail/agent/store"
)

// A capture's soft heap limit grows with the targets in flight; a capture of a few targets has
// none, and GOMEMLIMIT overrides it.
func TestLimitCaptureMemory(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, tc := range []struct {
		concurrency, targets int
		env                  string
		want                 int64
	}{
		{64, 300, "", captureHeapBase + 64*captureHeapPerTarget},
		{16, 300, "", captureHeapBase + 16*captureHeapPerTarget},
		{64, fleetFrom, "", captureHeapBase + fleetFrom*captureHeapPerTarget},
		{64, fleetFrom - 1, "", math.MaxInt64},
		{64, 1, "", math.MaxInt64},
		{64, 300, "1GiB", math.MaxInt64},
	} {
		t.Setenv("GOMEMLIMIT", tc.env)
		debug.SetMemoryLimit(math.MaxInt64)
		limitCaptureMemory(tc.concurrency, tc.targets)
		if got := debug.SetMemoryLimit(-1); got != tc.want {
			t.Errorf("concurrency %d, %d targets, GOMEMLIMIT=%q: limit %d, want %d", tc.concurrency, tc.targets, tc.env, got, tc.want)
		}
	}
}

// A diff turns collection off below a soft limit sized by its largest pair of artifacts, keeps
// a lower limit the user set, and puts both settings back.
func TestCollectLate(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	snap := func(size int64) *store.Snapshot {
		return &store.Snapshot{Manifest: store.Manifest{Artifacts: []store.ArtifactEntry{{Name: "a", Size: size}}}}
	}
	for _, user := range []int64{math.MaxInt64, 16 << 20} {
		debug.SetMemoryLimit(user)
		restore := collectLate(snap(1<<20), snap(3<<20))
		limit, percent := debug.SetMemoryLimit(-1), debug.SetGCPercent(-1)
		if want := min(user, 32<<20+4*(4<<20)); limit != want || percent != -1 {
			t.Errorf("user limit %d: limit %d, GC percent %d during the diff; want %d, -1", user, limit, percent, want)
		}
		restore()
		if limit, percent := debug.SetMemoryLimit(-1), debug.SetGCPercent(100); limit != user || percent != 100 {
			t.Errorf("user limit %d: after the diff limit %d, GC percent %d", user, limit, percent)
		}
	}
}
