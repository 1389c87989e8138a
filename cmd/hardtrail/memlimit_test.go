package main

import (
	"math"
	"runtime/debug"
	"testing"
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
