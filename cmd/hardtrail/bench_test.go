package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/store"
)

// floorScript runs the linux profile's commands and reads its files, writing each output to a
// file: what any capture must do at least.
const floorScript = `set +e
d=$(mktemp -d)
cat /etc/os-release > $d/1
sshd -T > $d/2 2>&1
cat /etc/ssh/sshd_config /etc/ssh/sshd_config.d/*.conf > $d/3 2>/dev/null
iptables-save > $d/4 2>&1
ip6tables-save > $d/5 2>&1
nft -s list ruleset > $d/6 2>&1
ss -H -tulnp > $d/7 2>&1
systemctl list-unit-files --type=service,socket --no-legend --no-pager > $d/8 2>&1
systemctl list-units --type=service,socket --all --no-legend --no-pager --plain > $d/9 2>&1
dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\n' > $d/10 2>&1
sysctl -a > $d/11 2>&1
rm -rf $d
`

// BenchmarkSnapshotVsShell times `hardtrail snapshot` of the linux profile against a shell
// script running the same commands, alternating the two in every iteration so both see the
// same machine. Reported: each side's mean wall time and their ratio.
func BenchmarkSnapshotVsShell(b *testing.B) {
	store := filepath.Join(b.TempDir(), "h.db")
	run := func(name string, args ...string) time.Duration {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", name, err, out)
		}
		return time.Since(start)
	}
	run(binary, "--store", store, "snapshot") // first snapshot stores every blob
	var ht, sh time.Duration
	for b.Loop() {
		ht += run(binary, "--store", store, "snapshot")
		sh += run("sh", "-c", floorScript)
	}
	n := float64(b.N)
	b.ReportMetric(float64(ht.Milliseconds())/n, "hardtrail-ms")
	b.ReportMetric(float64(sh.Milliseconds())/n, "shell-ms")
	b.ReportMetric(float64(ht)/float64(sh), "ratio")
}

// BenchmarkLog10k times `hardtrail log` printing every snapshot of a store holding 10,000,
// beside `hardtrail version` (process start, the floor).
func BenchmarkLog10k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "h.db")
	s, err := store.Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	const targets, each = 20, 500
	for i := range each {
		for t := range targets {
			m := &store.Manifest{Target: fmt.Sprintf("web%02d", t), Transport: "ssh", Started: time.Now(), TakenAt: time.Now(), Profiles: []string{"linux"}, ToolVersion: "bench"}
			var contents [][]byte
			for a := range 11 {
				m.Artifacts = append(m.Artifacts, store.ArtifactEntry{Name: fmt.Sprintf("art/%d", a), Source: "x", Command: []string{"x"}})
				contents = append(contents, []byte(fmt.Sprintf("%d %d", a, i%7)))
			}
			if _, err := s.Save(context.Background(), m, contents); err != nil {
				b.Fatal(err)
			}
		}
	}
	s.Close()
	var logT, verT time.Duration
	for b.Loop() {
		start := time.Now()
		out, err := exec.Command(binary, "--store", path, "log", "-n", "0").Output()
		logT += time.Since(start)
		if err != nil || strings.Count(string(out), "\n") != targets*each {
			b.Fatalf("log: %v, %d lines", err, strings.Count(string(out), "\n"))
		}
		start = time.Now()
		exec.Command(binary, "version").Run()
		verT += time.Since(start)
	}
	b.ReportMetric(float64(logT.Milliseconds())/float64(b.N), "log-ms")
	b.ReportMetric(float64(verT.Milliseconds())/float64(b.N), "version-ms")
}
