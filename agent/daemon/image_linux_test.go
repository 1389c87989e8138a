package daemon

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestExecutableMappings(t *testing.T) {
	smaps := `00400000-00fb4000 r-xp 00000000 00:2e 1234                               /opt/hard trail/bin
Size:              11984 kB
Rss:                9932 kB
Anonymous:             0 kB
00fb4000-01c1e000 r--p 00bb4000 00:2e 1234                               /opt/hard trail/bin
Size:              12968 kB
Rss:                9468 kB
Anonymous:             0 kB
01c1e000-01c60000 rw-p 0181e000 00:2e 1234                               /opt/hard trail/bin
Rss:                 604 kB
Anonymous:           136 kB
01d00000-01d10000 r--p 01900000 00:2e 1234                               /opt/hard trail/bin
Rss:                  64 kB
Anonymous:            64 kB
7f0000000000-7f0000100000 r-xp 00000000 00:2e 99                         /usr/lib/libc.so.6
Rss:                1092 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0 
Rss:                4680 kB
Anonymous:          4680 kB
`
	got := executableMappings([]byte(smaps), "/opt/hard trail/bin")
	if len(got) != 2 || got[0].start != 0x400000 || got[0].end != 0xfb4000 || got[0].rss != 9932<<10 || got[1].start != 0xfb4000 || got[1].rss != 9468<<10 {
		t.Errorf("%+v", got)
	}
}

// The test binary releases its pages and keeps running: what it runs next is mapped again.
func TestReleaseExecutable(t *testing.T) {
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
	released, err := ReleaseExecutable()
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
					if _, err := ReleaseExecutable(); err != nil {
						b.Fatal(err)
					}
				}
				scrape(b, h)
			}
		})
	}
}
