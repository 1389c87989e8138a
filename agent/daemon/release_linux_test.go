package daemon

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/internal/exepages"
)

// The test binary releases its pages and keeps running: what it runs next is mapped again.
func TestReleaseExecutableThenScrape(t *testing.T) {
	rss := func() int64 {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "RssFile:" {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v << 10
			}
		}
		t.Fatal("no RssFile in /proc/self/status")
		return 0
	}
	before := rss()
	released, err := exepages.Release()
	if err != nil {
		t.Fatal(err)
	}
	after := rss()
	if released <= 0 || after >= before {
		t.Errorf("released %d bytes; file-backed RSS %d before, %d after", released, before, after)
	}
	// Code not run since is mapped again from the page cache.
	st := sampleState()
	if code, body := scrape(t, handler(t, func() *State { return st })); code != 200 || !strings.Contains(body, "hardtrail_rule_success") {
		t.Errorf("scrape after release: %d", code)
	}
	t.Logf("released %d KiB; file-backed RSS %d KiB before, %d KiB after", released>>10, before>>10, after>>10)
}

// BenchmarkReleaseExecutable is the cost of releasing the executable's pages and of mapping
// back what a scrape of 10,000 series runs, against the scrape alone.
//
//	go test -run '^$' -bench ReleaseExecutable -benchtime 200x ./agent/daemon
func BenchmarkReleaseExecutable(b *testing.B) {
	st := bigState()
	h := handler(b, func() *State { return st })
	for _, release := range []bool{false, true} {
		b.Run(map[bool]string{false: "scrape", true: "release+scrape"}[release], func(b *testing.B) {
			for b.Loop() {
				if release {
					if _, err := exepages.Release(); err != nil {
						b.Fatal(err)
					}
				}
				scrape(b, h)
			}
		})
	}
}
