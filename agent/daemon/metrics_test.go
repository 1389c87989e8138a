package daemon

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/hardtrail/hardtrail/agent/incident"
	"github.com/hardtrail/hardtrail/internal/buildinfo"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

// sampleState has two targets (one down), rules of several severities and outcomes, drift,
// and incidents in every status.
func sampleState() *State {
	at := time.Date(2026, 3, 1, 12, 0, 0, 500e6, time.UTC)
	return &State{
		Targets: map[string]TargetState{
			"web1": {Collected: true, Up: true, Duration: 1500 * time.Millisecond, Errors: 2, Rules: []RuleResult{
				{Rule: "sshd-password-authentication", Severity: "high", Success: false},
				{Rule: "sshd-x11-forwarding", Severity: "medium", Success: true},
			}},
			"db1":    {Collected: true, Up: false, Duration: 30 * time.Second, Errors: 7},
			"fresh1": {},
		},
		Snapshots: map[string]time.Time{"web1": at, "db1": at.Add(-time.Hour), "gone1": at.Add(-48 * time.Hour)},
		Incidents: []IncidentStatus{
			{Incident: "INC-2026-0042", Target: "web1", Status: incident.Regressed},
			{Incident: "INC-2026-0043", Target: "db1", Status: incident.Open},
			{Incident: "INC-2026-0044", Target: "web1", Status: incident.Verified},
			{Incident: "SEC-1", Target: "gone1", Status: incident.Remediated},
		},
		Drift:  map[string][]Drift{"web1": {{Artifact: "firewall/iptables", Drifted: true}, {Artifact: "sshd/effective", Drifted: false}}},
		Reload: Reload{OK: true, At: at},
	}
}

func scrape(t testing.TB, h http.Handler) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Code, rec.Body.String()
}

func handler(t testing.TB, state func() *State) http.Handler {
	t.Helper()
	h, err := Handler(NewRegistry(state), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// ours keeps the hardtrail_ lines of an exposition, with the build's own labels replaced.
func ours(text string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(text, "\n") {
		if strings.HasPrefix(l, "hardtrail_") || strings.HasPrefix(l, "# HELP hardtrail_") || strings.HasPrefix(l, "# TYPE hardtrail_") {
			b.WriteString(l)
		}
	}
	return strings.NewReplacer(`version="`+buildinfo.Version+`"`, `version="VERSION"`, `revision="`+buildinfo.Revision+`"`, `revision="REVISION"`,
		`goversion="`+buildinfo.GoVersion+`"`, `goversion="GOVERSION"`).Replace(b.String())
}

func TestMetricsGolden(t *testing.T) {
	st := sampleState()
	code, body := scrape(t, handler(t, func() *State { return st }))
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	got := ours(body)
	golden := filepath.Join("..", "..", "testdata", "agent", "metrics.golden")
	testutil.Golden(t, golden, []byte(got))
	// Nothing but ours, Go's and the process's.
	for _, l := range strings.Split(body, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if !strings.HasPrefix(l, "hardtrail_") && !strings.HasPrefix(l, "go_") && !strings.HasPrefix(l, "process_") {
			t.Errorf("unexpected series %s", l)
		}
	}
}

// Each incident and target has all four statuses, exactly one of them 1.
func TestIncidentStatusIsAStateSet(t *testing.T) {
	st := sampleState()
	_, body := scrape(t, handler(t, func() *State { return st }))
	ones := map[string]int{}
	all := map[string]int{}
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, "hardtrail_incident_status{") {
			continue
		}
		labels := l[strings.IndexByte(l, '{'):strings.IndexByte(l, '}')]
		pair := labels[:strings.Index(labels, ",status=")]
		all[pair]++
		if strings.HasSuffix(l, " 1") {
			ones[pair]++
		}
	}
	if len(all) != len(st.Incidents) {
		t.Fatalf("%d incident/target pairs, want %d:\n%s", len(all), len(st.Incidents), body)
	}
	for pair, n := range all {
		if n != len(incident.Statuses) || ones[pair] != 1 {
			t.Errorf("%s: %d series, %d of them 1", pair, n, ones[pair])
		}
	}
}

// A scrape reads state: scraping again changes no value, and the error counter is the
// number of failed collections, not of scrapes.
func TestScrapesChangeNothing(t *testing.T) {
	st := sampleState()
	h := handler(t, func() *State { return st })
	_, first := scrape(t, h)
	for range 5 {
		scrape(t, h)
	}
	_, last := scrape(t, h)
	if ours(first) != ours(last) {
		t.Errorf("scrapes changed the metrics:\n%s\n---\n%s", ours(first), ours(last))
	}
	if !strings.Contains(last, `hardtrail_collect_errors_total{target="db1"} 7`) {
		t.Errorf("errors counter:\n%s", ours(last))
	}
}

// Before the first cycle there is no state: /metrics still answers 200 with the build.
func TestMetricsWithoutState(t *testing.T) {
	code, body := scrape(t, handler(t, func() *State { return nil }))
	if code != 200 || !strings.Contains(body, "hardtrail_build_info{") || strings.Contains(body, "hardtrail_target_up") {
		t.Errorf("status %d:\n%s", code, ours(body))
	}
}

func TestHealthzAndLandingPage(t *testing.T) {
	h := handler(t, func() *State { return nil })
	for _, tc := range []struct {
		path string
		code int
		body string
	}{{"/healthz", 200, "ok\n"}, {"/", 200, `href="/metrics"`}, {"/nothing", 404, "not found"}} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("%s: %d %q", tc.path, rec.Code, rec.Body.String())
		}
	}
}

// promtool accepts the exposition of a full state.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := testutil.Tool(t, "promtool")
	st := sampleState()
	srv := httptest.NewServer(handler(t, func() *State { return st }))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// The registry's families are exactly what client_golang's registry makes of the same
// metrics as constant metrics, on the sample state and on one of 10,000 series, scraped twice
// (the second time from the families kept for the state) and after a new state is published.
func TestRegistryEqualsClientGolang(t *testing.T) {
	odd := sampleState()
	odd.Targets["we\"ird\\name\nx"] = TargetState{Collected: true, Up: true, Duration: 1234567 * time.Microsecond, Errors: 1 << 40,
		Rules: []RuleResult{{Rule: `q"uote`, Severity: "low\\"}, {Rule: "b", Severity: "high", Success: true}}}
	odd.Snapshots["we\"ird"] = time.Unix(1, 1)
	// One rule at three severities on three targets, whose order is not the targets' order.
	odd.Targets["a-first"] = TargetState{Collected: true, Rules: []RuleResult{{Rule: "b", Severity: "low"}, {Rule: "a", Severity: "high"}}}
	odd.Targets["z-last"] = TargetState{Collected: true, Rules: []RuleResult{{Rule: "b", Severity: "critical", Success: true}}}
	for name, st := range map[string]*State{"nil": nil, "sample": sampleState(), "big": bigState(), "odd": odd} {
		t.Run(name, func(t *testing.T) {
			cur := st
			ref := prometheus.NewRegistry()
			ref.MustRegister(&refCollector{state: func() *State { return cur }})
			want := func() string {
				h, err := Handler(ref, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				_, body := scrape(t, h)
				return body
			}
			h := handler(t, func() *State { return cur })
			for i := range 3 {
				if i == 2 && cur != nil {
					cur = cur.clone()
					cur.Targets["added"] = TargetState{Collected: true, Up: true, Rules: []RuleResult{{Rule: "a", Severity: "low"}}}
				}
				_, got := scrape(t, h)
				if ours(got) != ours(want()) {
					t.Fatalf("scrape %d differs from client_golang's registry:\n%s\n---\n%s", i, ours(got), ours(want()))
				}
			}
		})
	}
}

// The metrics as a prometheus.Collector of constant metrics makes them: the reference the
// Registry's own families must equal.
var (
	buildInfoDesc = prometheus.NewDesc("hardtrail_build_info",
		"Build of the hardtrail agent; always 1.", []string{"version", "revision", "goversion"}, nil)
	targetUpDesc = prometheus.NewDesc("hardtrail_target_up",
		"1 when the last collection of the target succeeded.", []string{"target"}, nil)
	snapshotTimeDesc = prometheus.NewDesc("hardtrail_snapshot_timestamp_seconds",
		"Time of the newest stored snapshot of the target.", []string{"target"}, nil)
	durationDesc = prometheus.NewDesc("hardtrail_collect_duration_seconds",
		"Duration of the last collection of the target.", []string{"target"}, nil)
	errorsDesc = prometheus.NewDesc("hardtrail_collect_errors_total",
		"Failed collections of the target since the agent started.", []string{"target"}, nil)
	ruleDesc = prometheus.NewDesc("hardtrail_rule_success",
		"1 when the rule passes (or is waived) on the target's newest snapshot, 0 when it fails or cannot be evaluated.", []string{"target", "rule", "severity"}, nil)
	driftDesc = prometheus.NewDesc("hardtrail_artifact_drift",
		"1 when the artifact in the target's newest snapshot differs from its hardened baseline (the target's most recently tagged after snapshot).", []string{"target", "artifact"}, nil)
	incidentDesc = prometheus.NewDesc("hardtrail_incident_status",
		"Remediation status of the incident on the target: exactly one of open, remediated, verified, regressed is 1.", []string{"incident", "target", "status"}, nil)
	reloadDesc = prometheus.NewDesc("hardtrail_reload_success",
		"1 when the last load of the configuration and rules succeeded.", nil, nil)
	reloadTimeDesc = prometheus.NewDesc("hardtrail_reload_timestamp_seconds",
		"Time of the last successful load of the configuration and rules.", nil, nil)
)

// refCollector exports a State through client_golang's own metric types.
type refCollector struct {
	state func() *State
}

func (c *refCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{buildInfoDesc, targetUpDesc, snapshotTimeDesc, durationDesc, errorsDesc, ruleDesc, driftDesc, incidentDesc, reloadDesc, reloadTimeDesc} {
		ch <- d
	}
}

func (c *refCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.state()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(buildInfoDesc, 1, buildinfo.Version, buildinfo.Revision, buildinfo.GoVersion)
	if s == nil {
		return
	}
	gauge(reloadDesc, b2f(s.Reload.OK))
	if !s.Reload.At.IsZero() {
		gauge(reloadTimeDesc, unix(s.Reload))
	}
	for _, name := range sortedKeys(s.Targets) {
		t := s.Targets[name]
		ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(t.Errors), name)
		if !t.Collected {
			continue
		}
		gauge(targetUpDesc, b2f(t.Up), name)
		gauge(durationDesc, t.Duration.Seconds(), name)
		for _, r := range t.Rules {
			gauge(ruleDesc, b2f(r.Success), name, r.Rule, r.Severity)
		}
	}
	for _, name := range sortedKeys(s.Snapshots) {
		gauge(snapshotTimeDesc, float64(s.Snapshots[name].UnixNano())/1e9, name)
	}
	for _, name := range sortedKeys(s.Drift) {
		for _, d := range s.Drift[name] {
			gauge(driftDesc, b2f(d.Drifted), name, d.Artifact)
		}
	}
	for _, is := range s.Incidents {
		for _, st := range incident.Statuses {
			gauge(incidentDesc, b2f(is.Status == st), is.Incident, is.Target, string(st))
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// A gzip scrape is one gzip member (RFC 1952) whose content is the identity scrape's, for
// Go's reader and for GNU gzip, which checks the CRC and length, on a state scraped before
// (the cached deflate blocks) and on a new one.
func TestMetricsGzip(t *testing.T) {
	gz := testutil.Tool(t, "gzip")
	st := bigState()
	h := handler(t, func() *State { return st })
	for i := range 3 {
		if i == 2 {
			st = st.clone()
			st.Targets["added"] = TargetState{Collected: true, Up: true, Rules: []RuleResult{{Rule: "a", Severity: "low"}}}
		}
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept-Encoding", "deflate, gzip;q=0.9")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" {
			t.Fatalf("scrape %d: status %d, Content-Encoding %q", i, rec.Code, rec.Header().Get("Content-Encoding"))
		}
		br := bytes.NewReader(rec.Body.Bytes())
		zr, err := gzip.NewReader(br)
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("scrape %d: %v", i, err)
		}
		if br.Len() != 0 {
			t.Errorf("scrape %d: %d bytes after the gzip member", i, br.Len())
		}
		_, want := scrape(t, h)
		if ours(string(got)) != ours(want) {
			t.Fatalf("scrape %d: gzip content differs from the identity scrape", i)
		}
		if !strings.Contains(string(got), "\ngo_goroutines ") || !strings.Contains(string(got), "\nprocess_start_time_seconds ") {
			t.Errorf("scrape %d: runtime families missing", i)
		}
		cmd := exec.Command(gz, "-dc")
		cmd.Stdin = bytes.NewReader(rec.Body.Bytes())
		out, err := cmd.Output()
		if err != nil || !bytes.Equal(out, got) {
			t.Errorf("scrape %d: gzip -dc: %v (%d bytes, want %d)", i, err, len(out), len(got))
		}
	}
}

// A client that asks for protobuf gets it, through client_golang's handler.
func TestMetricsProtobuf(t *testing.T) {
	st := sampleState()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3`)
	rec := httptest.NewRecorder()
	handler(t, func() *State { return st }).ServeHTTP(rec, req)
	format := expfmt.ResponseFormat(rec.Header())
	if format.FormatType() != expfmt.TypeProtoDelim {
		t.Fatalf("Content-Type %q", rec.Header().Get("Content-Type"))
	}
	dec := expfmt.NewDecoder(rec.Body, format)
	var names []string
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		names = append(names, mf.GetName())
	}
	if !slices.Contains(names, "hardtrail_rule_success") || !slices.Contains(names, "go_goroutines") {
		t.Errorf("families %v", names)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"deflate, gzip;q=0.5", true},
		{"gzip;q=0", false},
		{"gzip; q=0.000", false},
		{"*", true},
		{"*;q=0", false},
		{"*;q=0, gzip", true},
		{"gzip;q=0, *", false},
		{"br, zstd", false},
		{"identity", false},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Accept-Encoding", tc.header)
		}
		if got := acceptsGzip(h); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.header, got, tc.want)
		}
	}
}

// The text the scrapes are served from is what expfmt writes of the families Gather returns,
// byte for byte, invalid UTF-8 in a label value included.
func TestTextEqualsFamilies(t *testing.T) {
	odd := sampleState()
	odd.Targets["we\"ird\\name\nx\xff"] = TargetState{Collected: true, Up: true, Duration: 1234567 * time.Microsecond, Errors: 1 << 40,
		Rules: []RuleResult{{Rule: `q"uote`, Severity: "low\\"}}}
	for name, st := range map[string]*State{"nil": nil, "sample": sampleState(), "big": bigState(), "odd": odd} {
		var want, got bytes.Buffer
		for _, mf := range build(st) {
			if _, err := expfmt.MetricFamilyToText(&want, mf); err != nil {
				t.Fatal(err)
			}
		}
		writeText(&got, collect(st))
		if got.String() != want.String() {
			t.Errorf("%s: text differs from expfmt's:\n%s\n---\n%s", name, got.String(), want.String())
		}
	}
}
