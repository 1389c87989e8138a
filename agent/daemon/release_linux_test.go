package daemon

import (
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/internal/exepages"
)

// The agent's scrape runs after its executable's pages were released: what it runs is mapped
// again (internal/exepages measures what is released).
func TestReleaseExecutableThenScrape(t *testing.T) {
	if released, err := exepages.Release(); err != nil || released <= 0 {
		t.Fatalf("released %d bytes: %v", released, err)
	}
	st := sampleState()
	if code, body := scrape(t, handler(t, func() *State { return st })); code != 200 || !strings.Contains(body, "hardtrail_rule_success") {
		t.Errorf("scrape after release: %d", code)
	}
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
