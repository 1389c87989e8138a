package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportTrends opens one incident on a file target, fixes it, and reports on the store.
func TestReportTrends(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "app.conf")
	write(t, conf, "telnet on\n")
	cfg := filepath.Join(dir, "hardtrail.toml")
	write(t, cfg, fmt.Sprintf(`store = %q
[[target]]
name = "app1"
profiles = ["app"]
[[profile]]
name = "app"
[[profile.source]]
name = "app/conf"
files = [%q]
`, filepath.Join(dir, "h.db"), conf))
	mustHT(t, "--config", cfg, "incident", "open", "INC-1", "--title", "telnet open", "--category", "exposed-service", "--by", "test")
	mustHT(t, "--config", cfg, "snapshot", "--incident", "INC-1", "--phase", "before", "--by", "test")
	write(t, conf, "telnet off\n")
	mustHT(t, "--config", cfg, "snapshot", "--incident", "INC-1", "--phase", "after", "--by", "test")

	out := mustHT(t, "--config", cfg, "report", "trends", "--format", "json", "--since", "30d")
	var rep struct {
		Incidents int `json:"incidents"`
		Months    []struct {
			Opened int `json:"opened"`
		} `json:"months"`
		Categories []struct {
			Key   string `json:"key"`
			Count int    `json:"count"`
		} `json:"categories"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Incidents != 1 || len(rep.Categories) != 1 || rep.Categories[0].Key != "exposed-service" {
		t.Errorf("report %+v", rep)
	}
	if md := mustHT(t, "--config", cfg, "report", "trends"); !strings.Contains(md, "| Incidents opened | 1 |") {
		t.Errorf("markdown:\n%s", md)
	}
	page := filepath.Join(dir, "trends.html")
	mustHT(t, "--config", cfg, "report", "trends", "--format", "html", "-o", page)
	if b, err := os.ReadFile(page); err != nil || !strings.Contains(string(b), "Content-Security-Policy") || !strings.Contains(string(b), "<svg") {
		t.Errorf("html page: %v", err)
	}
	for _, bad := range [][]string{
		{"report", "trends", "--since", "12parsecs"},
		{"report", "trends", "--until", "yesterday"},
		{"report", "trends", "--format", "pdf"},
		{"--store", filepath.Join(dir, "none.db"), "report", "trends"},
	} {
		_, errOut, code := ht(t, append([]string{"--config", cfg}, bad...)...)
		if code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, %q", bad, code, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "none.db")); err == nil {
		t.Error("the report created a store")
	}
}
