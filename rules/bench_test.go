package rules

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// generatedRules writes n rules cycling through every probe kind, with parameters drawn
// from the facts so that a realistic share of them pass, fail and err.
func generatedRules(f *MemFacts, n int) string {
	var pkgs, sysctls, sshdOpts []string
	for _, l := range lines(f.Artifacts["packages/installed"].Content) {
		pkgs = append(pkgs, strings.Split(l, "\t")[0])
	}
	for _, l := range lines(f.Artifacts["sysctl/all"].Content) {
		if k, v, ok := strings.Cut(l, " = "); ok && !strings.ContainsAny(v, " \t") {
			sysctls = append(sysctls, k)
		}
	}
	for _, l := range lines(f.Artifacts["sshd/effective"].Content) {
		sshdOpts = append(sshdOpts, strings.Fields(l)[0])
	}
	return testutil.GeneratedRules(n, testutil.RuleParams{
		Packages: pkgs, SSHDOptions: sshdOpts, Sysctls: sysctls, ServiceStates: serviceStates,
		Units:   []string{"ssh.service", "telnet.socket", "vsftpd.service", "cron.service", "rpcbind.socket"},
		OSEvery: 10,
	})
}

func BenchmarkEvaluate1000(b *testing.B) {
	f := loadHost(b, "web-01")
	s, err := LoadFS(fstest.MapFS{"gen.toml": {Data: []byte(generatedRules(f, 1000))}})
	if err != nil {
		b.Fatal(err)
	}
	counts := Summarize(s.Evaluate(context.Background(), f, now))
	if counts.Total != 1000 || counts.Pass == 0 || counts.Fail == 0 {
		b.Fatalf("unexpected mix: %s", counts)
	}
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		s.Evaluate(context.Background(), f, now)
	}
	reportCPU(b, start)
}

// reportCPU adds the process's CPU time per operation since start, as cpu-ms/op.
func reportCPU(b *testing.B, start time.Duration) {
	if used := cpuTime() - start; used > 0 {
		b.ReportMetric(float64(used)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	}
}

// BenchmarkEvaluate10k evaluates 10,000 generated rules (3,750 of them with a regular
// expression) within the budget of kept programs and with every program kept: the CPU per
// evaluation the budget costs, beside the memory it saves (heap_MB: the live heap after the
// first evaluation, the set and the facts included; kept_insts: the instructions kept).
//
//	go test -run '^$' -bench Evaluate10k -benchtime 5x ./rules
func BenchmarkEvaluate10k(b *testing.B) {
	f := loadHost(b, "web-01")
	src := []byte(generatedRules(f, 10_000))
	for _, c := range []struct {
		name   string
		budget int64
	}{{"budget", keptBudget}, {"keep-all", 1 << 40}} {
		b.Run(c.name, func(b *testing.B) {
			defer func(old int64) { keptBudget = old }(keptBudget)
			keptBudget = c.budget
			s, err := LoadFS(fstest.MapFS{"gen.toml": {Data: src}})
			if err != nil {
				b.Fatal(err)
			}
			var m runtime.MemStats
			s.Evaluate(context.Background(), f, now)
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&m)
			start := cpuTime()
			for b.Loop() {
				s.Evaluate(context.Background(), f, now)
			}
			reportCPU(b, start)
			b.ReportMetric(float64(m.HeapAlloc)/(1<<20), "heap_MB")
			b.ReportMetric(float64(kept.Load()), "kept_insts")
			runtime.KeepAlive(s)
		})
	}
}

func BenchmarkEvaluateShipped(b *testing.B) {
	f := loadHost(b, "legacy-01")
	s, err := Shipped()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Evaluate(context.Background(), f, now)
	}
}

func BenchmarkLoad1000(b *testing.B) {
	src := []byte(generatedRules(loadHost(b, "web-01"), 1000))
	b.ReportAllocs()
	start := cpuTime()
	defer reportCPU(b, start)
	for b.Loop() {
		if _, err := LoadFS(fstest.MapFS{"gen.toml": {Data: src}}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestGeneratedRulesLoad keeps the benchmark's generator honest in ordinary test runs.
func TestGeneratedRulesLoad(t *testing.T) {
	f := loadHost(t, "web-01")
	s, err := LoadFS(fstest.MapFS{"gen.toml": {Data: []byte(generatedRules(f, 200))}})
	if err != nil {
		t.Fatal(err)
	}
	sum := Summarize(s.Evaluate(context.Background(), f, now))
	if sum.Total != 200 || sum.Pass == 0 || sum.Fail == 0 || sum.Error == 0 {
		t.Errorf("generated mix: %s", sum)
	}
	t.Log(sum)
}
