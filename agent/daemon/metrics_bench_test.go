package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/incident"
)

// bigState has about 10,000 series: 100 targets with 90 rules each, drift and incidents.
func bigState() *State {
	now := time.Now()
	s := &State{Targets: map[string]TargetState{}, Snapshots: map[string]time.Time{}, Drift: map[string][]Drift{}, Reload: Reload{OK: true, At: now}}
	for i := range 100 {
		name := fmt.Sprintf("host%03d.example.net", i)
		ts := TargetState{Collected: true, Up: i%17 != 0, Duration: time.Duration(i) * time.Millisecond, Errors: uint64(i % 3)}
		for r := range 90 {
			ts.Rules = append(ts.Rules, RuleResult{Rule: fmt.Sprintf("pack-rule-%02d", r), Severity: []string{"info", "low", "medium", "high", "critical"}[r%5], Success: (i+r)%7 != 0})
		}
		s.Targets[name] = ts
		s.Snapshots[name] = now.Add(-time.Duration(i) * time.Minute)
		for _, a := range []string{"sshd/effective", "firewall/iptables", "firewall/nftables", "net/listening", "sysctl/all"} {
			s.Drift[name] = append(s.Drift[name], Drift{Artifact: a, Drifted: i%11 == 0})
		}
		if i%4 == 0 {
			s.Incidents = append(s.Incidents, IncidentStatus{Incident: fmt.Sprintf("INC-2026-%04d", i), Target: name, Status: incident.Statuses[i%4]})
		}
	}
	return s
}

// BenchmarkScrape serves /metrics of a 10,000-series state in process: "same" scrapes one
// published state again and again (what Prometheus does between cycles), "new" publishes a
// new state before every scrape (the first scrape after a cycle); "gzip" asks for gzip, as
// Prometheus does.
//
//	go test -run '^$' -bench Scrape -benchtime 50x -count 3 ./agent/daemon
func BenchmarkScrape(b *testing.B) {
	for _, fresh := range []bool{false, true} {
		for _, gzip := range []bool{false, true} {
			name := map[bool]string{false: "same", true: "new"}[fresh] + map[bool]string{false: "", true: "-gzip"}[gzip]
			b.Run(name, func(b *testing.B) {
				st := bigState()
				h, err := Handler(NewRegistry(func() *State { return st }), slog.New(slog.DiscardHandler))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				var size int
				for b.Loop() {
					if fresh {
						st = st.clone()
					}
					rec := httptest.NewRecorder()
					req := httptest.NewRequest("GET", "/metrics", nil)
					if gzip {
						req.Header.Set("Accept-Encoding", "gzip")
					}
					h.ServeHTTP(rec, req)
					size = rec.Body.Len()
					io.Discard.Write(rec.Body.Bytes())
				}
				b.ReportMetric(float64(size)/1024, "KiB")
			})
		}
	}
}
