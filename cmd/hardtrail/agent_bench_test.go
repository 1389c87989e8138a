package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/daemon"
	"github.com/hardtrail/hardtrail/agent/incident"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

// procStat is what /proc/PID says about a process's memory and CPU.
type procStat struct {
	rss, hwm         int64         // bytes
	cpu, childrenCPU time.Duration // user+system of the process, and of its waited-for children
}

func readProc(t testing.TB, pid int) procStat {
	t.Helper()
	var ps procStat
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[2] == "kB" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				ps.rss = v << 10
			case "VmHWM:":
				ps.hwm = v << 10
			}
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name: state is field 3; utime, stime, cutime, cstime are 14-17.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	tick := func(i int) time.Duration {
		v, _ := strconv.ParseInt(f[i-3], 10, 64)
		return time.Duration(v) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	}
	ps.cpu, ps.childrenCPU = tick(14)+tick(15), tick(16)+tick(17)
	return ps
}

// syntheticState has 10,000 series: 100 targets with 90 rules each, 5 artifacts with
// drift, and 25 incidents.
func syntheticState() *daemon.State {
	now := time.Now()
	s := &daemon.State{Targets: map[string]daemon.TargetState{}, Snapshots: map[string]time.Time{}, Drift: map[string][]daemon.Drift{}, Reload: daemon.Reload{OK: true, At: now}}
	for i := range 100 {
		name := fmt.Sprintf("host%03d.example.net", i)
		ts := daemon.TargetState{Collected: true, Up: i%17 != 0, Duration: time.Duration(i) * time.Millisecond, Errors: uint64(i % 3)}
		for r := range 90 {
			ts.Rules = append(ts.Rules, daemon.RuleResult{Rule: fmt.Sprintf("pack-rule-%02d", r), Severity: []string{"info", "low", "medium", "high", "critical"}[r%5], Success: (i+r)%7 != 0})
		}
		s.Targets[name] = ts
		s.Snapshots[name] = now.Add(-time.Duration(i) * time.Minute)
		for _, a := range []string{"sshd/effective", "firewall/iptables", "firewall/nftables", "net/listening", "sysctl/all"} {
			s.Drift[name] = append(s.Drift[name], daemon.Drift{Artifact: a, Drifted: i%11 == 0})
		}
		if i%4 == 0 {
			s.Incidents = append(s.Incidents, daemon.IncidentStatus{Incident: fmt.Sprintf("INC-2026-%04d", i), Target: name, Status: incident.Statuses[i%4]})
		}
	}
	return s
}

// scrapeN scrapes url n times and returns the mean latency, the series in the last answer and
// its size.
func scrapeN(b *testing.B, url string, n int) (time.Duration, int, int) {
	b.Helper()
	var total time.Duration
	var body []byte
	for range n {
		start := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%s: %d %v", url, resp.StatusCode, err)
		}
		total += time.Since(start)
	}
	series := 0
	for _, l := range strings.Split(string(body), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			series++
		}
	}
	return total / time.Duration(n), series, len(body)
}

// BenchmarkFootprint measures, side by side in one run, the agent's resident memory and CPU
// time per cycle over 10 cycles of the linux profile with the shipped rule packs, and the
// latency of /metrics with 10,000 series beside prometheus-node-exporter's own scrape
// latency and memory.
//
//	go test -run '^$' -bench Footprint -benchtime 1x ./cmd/hardtrail
func BenchmarkFootprint(b *testing.B) {
	var agentRSS int64
	b.Run("agent-10-cycles", func(b *testing.B) {
		var rss, hwm int64
		var cpu, children, wall time.Duration
		for range b.N {
			a := startAgent(b, []string{"--store", filepath.Join(b.TempDir(), "h.db")}, "--interval", "1s")
			pid := a.cmd.Process.Pid
			a.waitLog(b, `msg="cycle done" targets=1 `, 1, time.Minute)
			first, t0 := readProc(b, pid), time.Now()
			a.waitLog(b, `msg="cycle done" targets=1 `, 11, 2*time.Minute)
			last := readProc(b, pid)
			wall += time.Since(t0)
			rss, hwm = rss+last.rss, hwm+last.hwm
			cpu += last.cpu - first.cpu
			children += last.childrenCPU - first.childrenCPU
			a.stop(b)
		}
		n := float64(b.N)
		agentRSS = rss / int64(b.N)
		b.ReportMetric(float64(rss)/n/(1<<20), "rss_MB")
		b.ReportMetric(float64(hwm)/n/(1<<20), "peak_rss_MB")
		b.ReportMetric(float64(cpu.Milliseconds())/n/10, "agent_cpu_ms/cycle")
		b.ReportMetric(float64(children.Milliseconds())/n/10, "commands_cpu_ms/cycle")
		b.ReportMetric(float64(wall.Milliseconds())/n/10, "wall_ms/cycle")
	})
	b.Run("scrape-10k-series", func(b *testing.B) {
		nodeExporter := testutil.Tool(b, "prometheus-node-exporter")
		st := syntheticState()
		h, err := daemon.Handler(daemon.NewRegistry(func() *daemon.State { return st }), slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(h)
		defer srv.Close()
		addr := freePort(b)
		ne := exec.Command(nodeExporter, "--web.listen-address="+addr)
		if err := ne.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { ne.Process.Kill(); ne.Wait() }()
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + "/metrics")
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("node exporter does not answer: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		const scrapes = 50
		var agentLat, nodeLat time.Duration
		var agentSeries, nodeSeries, agentBytes, nodeBytes int
		b.ResetTimer()
		for range b.N {
			l, s, by := scrapeN(b, srv.URL+"/metrics", scrapes)
			agentLat, agentSeries, agentBytes = agentLat+l, s, by
			l, s, by = scrapeN(b, "http://"+addr+"/metrics", scrapes)
			nodeLat, nodeSeries, nodeBytes = nodeLat+l, s, by
		}
		b.StopTimer()
		resp, err := client.Get(srv.URL + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ours := len(regexp.MustCompile(`(?m)^hardtrail_`).FindAll(body, -1))
		if ours < 10000 {
			b.Fatalf("synthetic state has %d hardtrail series", ours)
		}
		nodeRSS := readProc(b, ne.Process.Pid).rss
		n := float64(b.N)
		b.ReportMetric(float64(agentLat.Microseconds())/n/1000, "agent_ms/scrape")
		b.ReportMetric(float64(nodeLat.Microseconds())/n/1000, "node_exporter_ms/scrape")
		b.ReportMetric(float64(agentLat)/float64(nodeLat), "agent/node_latency")
		b.ReportMetric(float64(agentLat.Nanoseconds())/n/float64(agentSeries)/1000, "agent_us/series")
		b.ReportMetric(float64(nodeLat.Nanoseconds())/n/float64(nodeSeries)/1000, "node_exporter_us/series")
		b.ReportMetric(float64(agentSeries), "agent_series")
		b.ReportMetric(float64(nodeSeries), "node_exporter_series")
		b.ReportMetric(float64(agentBytes)/1024, "agent_KiB/scrape")
		b.ReportMetric(float64(nodeBytes)/1024, "node_exporter_KiB/scrape")
		b.ReportMetric(float64(nodeRSS)/(1<<20), "node_exporter_rss_MB")
		if agentRSS > 0 {
			b.ReportMetric(float64(agentRSS)/float64(nodeRSS), "agent/node_rss")
		}
	})
}
