package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/daemon"
	"github.com/hardtrail/hardtrail/agent/incident"
	"github.com/hardtrail/hardtrail/config"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

func TestAlertRules(t *testing.T) {
	promtool := testutil.Tool(t, "promtool")
	out, err := exec.Command(promtool, "check", "rules", "prometheus/hardtrail.rules.yml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS: 7 rules found") {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	cmd := exec.Command(promtool, "test", "rules", "hardtrail.rules.test.yml")
	cmd.Dir = "prometheus"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

// A broken alert rule file fails promtool's unit tests: the test above can fail.
func TestAlertRulesTestCanFail(t *testing.T) {
	promtool := testutil.Tool(t, "promtool")
	dir := t.TempDir()
	src, err := os.ReadFile("prometheus/hardtrail.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	broken := bytes.Replace(src, []byte(`hardtrail_incident_status{status="regressed"} == 1`), []byte(`hardtrail_incident_status{status="verified"} == 1`), 1)
	if bytes.Equal(broken, src) {
		t.Fatal("the regression alert's expression moved; update this test")
	}
	tests, err := os.ReadFile("prometheus/hardtrail.rules.test.yml")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, os.WriteFile(filepath.Join(dir, "hardtrail.rules.yml"), broken, 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(dir, "hardtrail.rules.test.yml"), tests, 0o644))
	cmd := exec.Command(promtool, "test", "rules", "hardtrail.rules.test.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("promtool test rules passed a rule that alerts on verified incidents:\n%s", out)
	}
}

// exportedMetrics gathers the agent's registry over a State that fills every metric.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	now := time.Now()
	st := &daemon.State{
		Targets:   map[string]daemon.TargetState{"web1": {Collected: true, Up: true, Duration: time.Second, Rules: []daemon.RuleResult{{Rule: "r1", Severity: "high", Success: true}}}},
		Snapshots: map[string]time.Time{"web1": now},
		Incidents: []daemon.IncidentStatus{{Incident: "INC-1", Target: "web1", Status: incident.Verified}},
		Drift:     map[string][]daemon.Drift{"web1": {{Artifact: "sshd/effective", Drifted: false}}},
		Reload:    daemon.Reload{OK: true, At: now},
	}
	mfs, err := daemon.NewRegistry(func() *daemon.State { return st }).Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"hardtrail_build_info", "hardtrail_target_up", "hardtrail_snapshot_timestamp_seconds", "hardtrail_collect_duration_seconds",
		"hardtrail_collect_errors_total", "hardtrail_rule_success", "hardtrail_artifact_drift", "hardtrail_incident_status", "hardtrail_reload_success",
		"hardtrail_reload_timestamp_seconds", "go_goroutines", "process_resident_memory_bytes"} {
		if !names[want] {
			t.Errorf("the agent does not export %s", want)
		}
	}
	return names
}

// ruleExprs returns the alert names and expressions of a Prometheus rule file: an `expr:` on
// one line, or a block scalar (`expr: |`) of the lines indented below it.
func ruleExprs(src string) (alerts []string, exprs []string) {
	lines := strings.Split(src, "\n")
	indent := func(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }
	for i, l := range lines {
		tl := strings.TrimSpace(l)
		if a, ok := strings.CutPrefix(tl, "- alert:"); ok {
			alerts = append(alerts, strings.TrimSpace(a))
		}
		e, ok := strings.CutPrefix(tl, "expr:")
		if !ok {
			continue
		}
		e = strings.TrimSpace(e)
		if e == "|" || e == ">" || e == "|-" || e == ">-" {
			var block []string
			for _, b := range lines[i+1:] {
				if strings.TrimSpace(b) != "" && indent(b) <= indent(l) {
					break
				}
				block = append(block, b)
			}
			e = strings.Join(block, "\n")
		} else if uq, err := strconv.Unquote(e); err == nil {
			e = uq
		}
		exprs = append(exprs, e)
	}
	return alerts, exprs
}

func TestAlertRulesUseExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	src, err := os.ReadFile("prometheus/hardtrail.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	alerts, exprs := ruleExprs(string(src))
	if len(exprs) != 7 || len(alerts) != 7 {
		t.Fatalf("%d alerts, %d expressions", len(alerts), len(exprs))
	}
	for _, e := range exprs {
		names, err := metricNames(e)
		if err != nil || len(names) == 0 {
			t.Errorf("expr %q: %q %v", e, names, err)
		}
		for _, n := range names {
			// up is Prometheus's own series for the scrape of the agent.
			if !exported[n] && n != "up" {
				t.Errorf("alert expression %q uses %s, which the agent does not export", e, n)
			}
		}
	}
	// Every alert names the hardtrail command that explains it.
	for _, block := range strings.Split(string(src), "- alert:")[1:] {
		name := strings.Fields(block)[0]
		if !regexp.MustCompile("runbook: \".*`hardtrail [^`]+`").MatchString(block) {
			t.Errorf("alert %s has no runbook naming a hardtrail command", name)
		}
	}
	for _, want := range []string{"HardtrailHardeningRegressed", "HardtrailCriticalRuleFailing", "HardtrailRuleFailing", "HardtrailTargetDown", "HardtrailSnapshotsStale"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
}

func TestDashboardUsesExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	src, err := os.ReadFile("grafana/hardtrail.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string            `json:"title"`
		UID        string            `json:"uid"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(src, &dash); err != nil {
		t.Fatal(err)
	}
	type panel struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	}
	used := map[string]bool{}
	ids := map[int]bool{}
	exprs := 0
	for _, raw := range dash.Panels {
		var p panel
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs++
			names, err := metricNames(tg.Expr)
			if err != nil || len(names) == 0 {
				t.Errorf("panel %q: expr %q: %q %v", p.Title, tg.Expr, names, err)
			}
			for _, n := range names {
				used[n] = true
				if !exported[n] {
					t.Errorf("panel %q uses %s, which the agent does not export", p.Title, n)
				}
			}
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: %v", v.Name, err)
		}
		names, err := templateMetricNames(q.Query)
		if err != nil || len(names) == 0 {
			t.Errorf("variable %s: query %q: %q %v", v.Name, q.Query, names, err)
		}
		for _, n := range names {
			if !exported[n] {
				t.Errorf("variable %s uses %s, which the agent does not export", v.Name, n)
			}
		}
	}
	// What the dashboard is for: incident status, rule results and drift.
	for _, want := range []string{"hardtrail_incident_status", "hardtrail_rule_success", "hardtrail_artifact_drift"} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
	if dash.UID == "" || dash.Title == "" || exprs < 10 {
		t.Errorf("dashboard %q (uid %q) with %d queries", dash.Title, dash.UID, exprs)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := config.Load("hardtrail.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Agent.Listen != "127.0.0.1:9527" || c.Agent.Interval.Duration != 5*time.Minute || c.Store != "/var/lib/hardtrail/hardtrail.db" || len(c.Targets) != 2 {
		t.Errorf("example config: %+v", c)
	}
	for _, tg := range c.Targets {
		if tg.Timeout.Duration >= c.Agent.Interval.Duration {
			t.Errorf("target %s: timeout %s is not below the interval", tg.Name, tg.Timeout.Duration)
		}
	}
}

// The web config example is valid once its certificate exists: same file, paths pointed at a
// generated key pair.
func TestWebConfigExample(t *testing.T) {
	promtool := testutil.Tool(t, "promtool")
	openssl := testutil.Tool(t, "openssl")
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "agent.crt"), filepath.Join(dir, "agent.key")
	testutil.Run(t, openssl, "req", "-x509", "-newkey", "ed25519", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", crt)
	src, err := os.ReadFile("web-config.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("/etc/hardtrail/tls/agent.crt", crt, "/etc/hardtrail/tls/agent.key", key).Replace(string(src))
	wc := filepath.Join(dir, "web-config.yml")
	testutil.Must(t, os.WriteFile(wc, []byte(s), 0o600))
	if out, err := exec.Command(promtool, "check", "web-config", wc).CombinedOutput(); err != nil {
		t.Errorf("promtool check web-config: %v\n%s", err, out)
	}
	if err := daemon.CheckWebConfig(wc); err != nil {
		t.Error(err)
	}
}

// systemd-analyze verify accepts the unit and the unit with the sudo drop-in, without a
// single warning (an unknown key is only a warning to systemd).
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := testutil.Tool(t, "systemd-analyze")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile("systemd/hardtrail-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("ExecStart=/usr/bin/hardtrail ")) {
		t.Fatal("ExecStart moved; update this test")
	}
	dropin, err := os.ReadFile("systemd/hardtrail-agent-sudo.conf")
	if err != nil {
		t.Fatal(err)
	}
	verify := func(t *testing.T, unit, dropin []byte) string {
		dir := t.TempDir()
		// The binary the unit starts must exist and be executable.
		unit = bytes.ReplaceAll(unit, []byte("/usr/bin/hardtrail "), []byte(exe+" "))
		path := filepath.Join(dir, "hardtrail-agent.service")
		testutil.Must(t, os.WriteFile(path, unit, 0o644))
		if dropin != nil {
			testutil.Must(t, os.Mkdir(path+".d", 0o755))
			testutil.Must(t, os.WriteFile(filepath.Join(path+".d", "sudo.conf"), dropin, 0o644))
		}
		cmd := exec.Command(analyze, "verify", path)
		cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":", "SYSTEMD_LOG_LEVEL=warning")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Sprintf("%v: %s", err, out)
		}
		return string(out)
	}
	t.Run("unit", func(t *testing.T) {
		if out := verify(t, unit, nil); out != "" {
			t.Errorf("systemd-analyze verify:\n%s", out)
		}
	})
	t.Run("sudo drop-in", func(t *testing.T) {
		if out := verify(t, unit, dropin); out != "" {
			t.Errorf("systemd-analyze verify:\n%s", out)
		}
	})
	t.Run("a misspelt key is caught", func(t *testing.T) {
		if out := verify(t, unit, append(slices.Clone(dropin), "NoNewPrivilege=no\n"...)); !strings.Contains(out, "Unknown key 'NoNewPrivilege'") {
			t.Errorf("systemd-analyze verify said %q of a misspelt key", out)
		}
	})
}

// unitValue returns the value of the last key=value line of a unit file.
func unitValue(t *testing.T, file, key string) string {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	v, found := "", false
	for _, l := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(l, key+"="); ok {
			v, found = strings.TrimSpace(rest), true
		}
	}
	if !found {
		t.Fatalf("%s: no %s", file, key)
	}
	return v
}

// setprivCaps turns "CAP_A CAP_B" into setpriv's "-all,+a,+b".
func setprivCaps(caps string) string {
	out := "-all"
	for _, c := range strings.Fields(caps) {
		out += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	return out
}

// netns creates a network namespace for the test and removes it afterwards.
func netns(t *testing.T, ip string) string {
	t.Helper()
	ns := fmt.Sprintf("htdeploy%d", os.Getpid())
	testutil.Run(t, ip, "netns", "add", ns)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	return ns
}

// stripComments drops iptables-save's "# Generated ... on DATE" lines.
func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The unit's capability bounding set is enough for every privileged command of the linux
// profile (their output is the same as with every capability), and none of it is spare:
// without CAP_NET_ADMIN the firewall commands fail.
func TestUnitCapabilitiesSuffice(t *testing.T) {
	testutil.Root(t)
	ip := testutil.Tool(t, "ip")
	setpriv := testutil.Tool(t, "setpriv")
	sshd := testutil.Tool(t, "sshd")
	keygen := testutil.Tool(t, "ssh-keygen")
	for _, tool := range []string{"iptables", "iptables-save", "ip6tables-save", "nft"} {
		testutil.Tool(t, tool)
	}
	caps := unitValue(t, "systemd/hardtrail-agent.service", "CapabilityBoundingSet")
	if caps != "CAP_NET_ADMIN" {
		t.Errorf("bounding set %q: update this test's reasoning", caps)
	}
	ns := netns(t, ip)
	in := func(argv ...string) []string { return append([]string{ip, "netns", "exec", ns}, argv...) }
	testutil.Run(t, ip, "netns", "exec", ns, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "23", "-j", "DROP")
	testutil.Run(t, ip, "netns", "exec", ns, "nft", "add", "table", "inet", "hardtrail_test")
	testutil.Run(t, ip, "netns", "exec", ns, "nft", "add", "chain", "inet", "hardtrail_test", "input", "{ type filter hook input priority 0; policy drop; }")

	// sshd -T on a config whose host key root owns with mode 0600, as on every host.
	dir := t.TempDir()
	key := filepath.Join(dir, "ssh_host_ed25519_key")
	testutil.Run(t, keygen, "-q", "-t", "ed25519", "-N", "", "-f", key)
	testutil.Must(t, os.Chmod(key, 0o600))
	cfg := filepath.Join(dir, "sshd_config")
	testutil.Must(t, os.WriteFile(cfg, []byte("HostKey "+key+"\nPasswordAuthentication no\n"), 0o600))

	run := func(argv []string) (string, error) {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		return string(out), err
	}
	bounded := func(set string, argv ...string) []string {
		return append([]string{ip, "netns", "exec", ns, setpriv, "--bounding-set", set, "--"}, argv...)
	}
	for _, argv := range [][]string{
		{"iptables-save"},
		{"ip6tables-save"},
		{"nft", "-s", "list", "ruleset"},
		{sshd, "-T", "-f", cfg},
	} {
		name := strings.Join(argv, " ")
		full, err := run(in(argv...))
		if err != nil {
			t.Fatalf("%s with every capability: %v\n%s", name, err, full)
		}
		got, err := run(bounded(setprivCaps(caps), argv...))
		if err != nil {
			t.Errorf("%s with %s: %v\n%s", name, caps, err, got)
			continue
		}
		if stripComments(got) != stripComments(full) {
			t.Errorf("%s with %s differs from every capability:\n%s\nwant:\n%s", name, caps, got, full)
		}
	}
	if full, _ := run(in("nft", "-s", "list", "ruleset")); !strings.Contains(full, "hardtrail_test") {
		t.Fatalf("the namespace's ruleset lacks the test table:\n%s", full)
	}
	// None of it is spare.
	for _, argv := range [][]string{{"iptables-save"}, {"nft", "-s", "list", "ruleset"}} {
		if out, err := run(bounded("-all", argv...)); err == nil {
			t.Errorf("%s works without CAP_NET_ADMIN, so the unit grants it for nothing:\n%s", strings.Join(argv, " "), out)
		}
	}
}

// The sudoers snippet lets its user run exactly the linux profile's privileged commands, with
// exactly their arguments, under the sudo drop-in's bounding set; nothing else.
func TestSudoers(t *testing.T) {
	testutil.Root(t)
	visudo := testutil.Tool(t, "visudo")
	sudo := testutil.Tool(t, "sudo")
	setpriv := testutil.Tool(t, "setpriv")
	useradd := testutil.Tool(t, "useradd")
	userdel := testutil.Tool(t, "userdel")
	testutil.Run(t, visudo, "-cf", "sudoers/hardtrail")
	src, err := os.ReadFile("sudoers/hardtrail")
	if err != nil {
		t.Fatal(err)
	}
	user := fmt.Sprintf("htsudo%d", os.Getpid())
	testutil.Run(t, useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user)
	t.Cleanup(func() { exec.Command(userdel, user).Run() })
	snippet := regexp.MustCompile(`(?m)^(Defaults:|)hardtrail\b`).ReplaceAll(src, []byte("${1}"+user))
	if bytes.Equal(snippet, src) {
		t.Fatal("no user line in the snippet")
	}
	file := "/etc/sudoers.d/zz-hardtrail-test-" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(file, snippet, 0o440); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(file) })
	if out, err := exec.Command(visudo, "-c").CombinedOutput(); err != nil {
		t.Fatalf("visudo -c with the snippet installed: %v\n%s", err, out)
	}
	uid := strings.TrimSpace(testutil.Run(t, "id", "-u", user))
	gid := strings.TrimSpace(testutil.Run(t, "id", "-g", user))
	caps := setprivCaps(unitValue(t, "systemd/hardtrail-agent-sudo.conf", "CapabilityBoundingSet"))
	asUser := func(argv ...string) (string, error) {
		// The agent's local transport runs `sudo -n -- ARGV` for a source marked sudo.
		args := append([]string{"--reuid", uid, "--regid", gid, "--init-groups", "--bounding-set", caps, "--", sudo, "-n", "--"}, argv...)
		out, err := exec.Command(setpriv, args...).CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct {
		argv []string
		ok   bool
	}{
		{[]string{"iptables-save"}, true},
		{[]string{"ip6tables-save"}, true},
		{[]string{"nft", "-s", "list", "ruleset"}, true},
		{[]string{"sshd", "-T"}, true},
		{[]string{"iptables-save", "-f", filepath.Join(t.TempDir(), "x")}, false},
		{[]string{"nft", "flush", "ruleset"}, false},
		{[]string{"nft", "-s", "list", "ruleset", "-f", "/etc/shadow"}, false},
		{[]string{"sshd", "-T", "-f", "/etc/shadow"}, false},
		{[]string{"iptables", "-F"}, false},
		{[]string{"cat", "/etc/shadow"}, false},
	} {
		out, err := asUser(tc.argv...)
		switch {
		case tc.ok && err != nil:
			t.Errorf("sudo -n %s refused: %v\n%s", strings.Join(tc.argv, " "), err, out)
		case !tc.ok && err == nil:
			t.Errorf("sudo -n %s allowed:\n%s", strings.Join(tc.argv, " "), out)
		case !tc.ok && !strings.Contains(out, "a password is required"):
			t.Errorf("sudo -n %s: refused for another reason than the policy: %s", strings.Join(tc.argv, " "), out)
		case tc.ok && strings.Contains(out, "sudo:"):
			t.Errorf("sudo -n %s complains: %s", strings.Join(tc.argv, " "), out)
		}
	}
}

// The scrape config example is valid once the files it names exist.
func TestPrometheusConfigExample(t *testing.T) {
	promtool := testutil.Tool(t, "promtool")
	dir := t.TempDir()
	src, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := filepath.Abs("prometheus/hardtrail.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("/etc/prometheus/hardtrail.rules.yml", rules, "/etc/prometheus/", dir+"/").Replace(string(src))
	for _, f := range []string{"hardtrail-ca.crt", "hardtrail.password"} {
		testutil.Must(t, os.WriteFile(filepath.Join(dir, f), []byte("x\n"), 0o600))
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	testutil.Must(t, os.WriteFile(cfg, []byte(s), 0o600))
	out, err := exec.Command(promtool, "check", "config", "--syntax-only", cfg).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}

// The shipped files are what the README and the unit refer to.
func TestLayout(t *testing.T) {
	var files []string
	filepath.Walk(".", func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasSuffix(p, ".go") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	want := []string{"grafana/hardtrail.json", "hardtrail.toml",
		"packaging/hardtrail.toml", "packaging/nfpm.yaml", "packaging/scripts/postinstall.sh", "packaging/scripts/postremove.sh",
		"packaging/scripts/preinstall.sh", "packaging/scripts/preremove.sh", "packaging/version.sh",
		"prometheus/hardtrail.rules.test.yml", "prometheus/hardtrail.rules.yml",
		"prometheus/prometheus.yml", "sudoers/hardtrail", "systemd/hardtrail-agent-sudo.conf", "systemd/hardtrail-agent.service", "web-config.yml"}
	if !slices.Equal(files, want) {
		t.Errorf("deploy files:\n%q\nwant\n%q", files, want)
	}
}
