package trends_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/agent/trends"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

func TestSummarise(t *testing.T) {
	h := time.Hour
	for _, tc := range []struct {
		in          []time.Duration
		median, p90 time.Duration
	}{
		{nil, 0, 0},
		{[]time.Duration{5 * h}, 5 * h, 5 * h},
		{[]time.Duration{4 * h, 1 * h}, 150 * time.Minute, 4 * h},
		{[]time.Duration{1 * h, 2 * h, 3 * h, 4 * h, 5 * h, 6 * h, 7 * h, 8 * h, 9 * h, 10 * h}, 330 * time.Minute, 9 * h},
		{[]time.Duration{10 * h, 1 * h, 2 * h, 3 * h, 4 * h, 5 * h, 6 * h, 7 * h, 8 * h, 9 * h, 11 * h}, 6 * h, 10 * h},
	} {
		d := trends.Summarise(tc.in)
		if d.Count != len(tc.in) || d.Median != tc.median || d.P90 != tc.p90 {
			t.Errorf("%v: %+v, want median %v p90 %v", tc.in, d, tc.median, tc.p90)
		}
	}
}

// TestCompute checks the arithmetic on incidents made by hand.
func TestCompute(t *testing.T) {
	d := func(m, day, h int) time.Time { return time.Date(2026, time.Month(m), day, h, 0, 0, 0, time.UTC) }
	ssh := trends.Failure{Rule: "ssh-no-root", Controls: []string{"A.8.9"}}
	nft := trends.Failure{Rule: "nft-drop", Controls: []string{"A.8.20", "A.8.9"}}
	at := func(f trends.Failure, target string) trends.Failure { f.Target = target; return f }
	incs := []trends.Incident{
		{ID: "A", Category: "exposed", Opened: d(1, 5, 0), Remediated: d(1, 5, 10), Verified: d(1, 6, 0), Targets: []string{"web1"},
			Weaknesses: []trends.Failure{at(ssh, "web1")},
			Regressions: []trends.Regression{{At: d(2, 1, 0), Target: "web1", Rules: []trends.Failure{at(ssh, "web1")}, Artifacts: []string{"sshd/effective"}},
				{At: d(3, 1, 0), Target: "web1", Rules: []trends.Failure{at(nft, "web1")}}}},
		{ID: "B", Category: "exposed", Opened: d(1, 20, 0), Remediated: d(1, 21, 0), Targets: []string{"web2"},
			Weaknesses: []trends.Failure{at(ssh, "web2")}},
		{ID: "C", Opened: d(3, 2, 0), Remediated: d(3, 2, 2), Verified: d(3, 2, 4), Targets: []string{"fw1"},
			Weaknesses: []trends.Failure{at(nft, "fw1")}},
		{ID: "old", Opened: d(1, 1, 0).AddDate(-1, 0, 0)},
	}
	r := trends.Compute(incs, trends.Window{Since: d(1, 1, 0), Until: d(4, 1, 0)})
	if r.Incidents != 3 || r.NotVerified != 1 || len(r.Months) != 3 || r.Months[0].Opened != 2 || r.Months[2].Opened != 1 {
		t.Fatalf("counts %+v", r)
	}
	if r.Months[1].Regressions != 1 || r.Months[2].Regressions != 1 {
		t.Errorf("regressions per month %+v", r.Months)
	}
	if r.Remediate.Count != 3 || r.Remediate.Median != 10*time.Hour || r.Verify.Count != 2 || r.Verify.Median != 14*time.Hour || r.Verify.P90 != 24*time.Hour {
		t.Errorf("durations %+v %+v", r.Remediate, r.Verify)
	}
	if r.Categories[0] != (trends.Count{Key: "exposed", Count: 2}) || r.Categories[1] != (trends.Count{Key: trends.Uncategorised, Count: 1}) {
		t.Errorf("categories %v", r.Categories)
	}
	if r.Regressions != 2 || r.RegressionsByControl[0] != (trends.Count{Key: "A.8.9", Count: 2}) || r.RegressionsByArtifact[0].Key != "web1:sshd/effective" {
		t.Errorf("regressions %+v %+v", r.RegressionsByControl, r.RegressionsByArtifact)
	}
	// ssh-no-root failed in A and B (two incidents); nft-drop in A (regression) and C.
	if len(r.Recurring) != 2 || r.Recurring[0].Rule != "ssh-no-root" || r.Recurring[0].Failures != 3 || r.Recurring[0].Regressions != 1 ||
		r.Recurring[1].Rule != "nft-drop" || len(r.Recurring[1].Targets) != 2 {
		t.Errorf("recurring %+v", r.Recurring)
	}
}

func load(tb testing.TB, g *generated) *trends.Report {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, g.path)
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	incs, err := trends.Load(ctx, st, func(_ context.Context, id string) (string, time.Time, error) {
		return g.categories[id], time.Time{}, nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return trends.Compute(incs, trends.Window{Since: genStart, Until: genUntil})
}

// TestGoldenGenerated renders the report of the generated year in every format.
func TestGoldenGenerated(t *testing.T) {
	g := generate(t)
	if g.incidents < 40 || g.snapshots < 500 {
		t.Fatalf("the generated store has %d incidents and %d snapshots: want at least 40 and 500", g.incidents, g.snapshots)
	}
	t.Logf("generated store: %d incidents, %d snapshots", g.incidents, g.snapshots)
	r := load(t, g)
	if r.Incidents != g.incidents || len(r.Months) != 12 || len(r.Categories) < 4 || len(r.RegressionsByTarget) < 3 || len(r.RegressionsByControl) < 3 {
		t.Fatalf("report: %d incidents (want %d), %d months, %d categories, %d targets, %d controls with regressions",
			r.Incidents, g.incidents, len(r.Months), len(r.Categories), len(r.RegressionsByTarget), len(r.RegressionsByControl))
	}
	if r.Regressions == 0 || len(r.Recurring) == 0 || r.Verify.Count == 0 {
		t.Fatalf("report has no regressions, recurrences or verified incidents: %+v", r)
	}
	for _, f := range trends.Formats {
		var b bytes.Buffer
		if err := r.Write(&b, f); err != nil {
			t.Fatal(err)
		}
		testutil.Golden(t, filepath.Join("testdata", "generated."+f), b.Bytes())
	}
	var b bytes.Buffer
	r.WriteCSV(&b)
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(recs) < 50 {
		t.Errorf("CSV: %d records, %v", len(recs), err)
	}
	if err := r.Write(&b, "pdf"); err == nil {
		t.Error("an unknown format was accepted")
	}
}

// BenchmarkTrends measures the whole report from the generated store: load, compute, render.
func BenchmarkTrends(b *testing.B) {
	g := generate(b)
	b.ResetTimer()
	for b.Loop() {
		r := load(b, g)
		for _, f := range trends.Formats {
			var buf bytes.Buffer
			if err := r.Write(&buf, f); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestHTMLInChromium reads the generated year's HTML report as Chromium parses it, from disk
// with no network: the charts are there and nothing refers outside the page.
func TestHTMLInChromium(t *testing.T) {
	chromium := testutil.Tool(t, "chromium")
	page, err := filepath.Abs(filepath.Join("testdata", "generated.html"))
	if err != nil {
		t.Fatal(err)
	}
	dom, err := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir="+t.TempDir(),
		"--host-resolver-rules=MAP * ~NOTFOUND", "--dump-dom", "file://"+page).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	if n := bytes.Count(dom, []byte("<svg")); n != 3 {
		t.Errorf("%d charts, want 3", n)
	}
	if n := bytes.Count(dom, []byte("<rect")); n < 40 {
		t.Errorf("%d bars, want the months' and controls' bars", n)
	}
	for _, ref := range []string{" src=", "<link", "<script", "url("} {
		if bytes.Contains(dom, []byte(ref)) {
			t.Errorf("the page holds %q: it would load something", ref)
		}
	}
}
