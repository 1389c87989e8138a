package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// agentProc is a running `hardtrail agent`.
type agentProc struct {
	cmd  *exec.Cmd
	addr string

	mu   sync.Mutex
	log  []string
	done chan struct{}
	err  error
}

var listenRE = regexp.MustCompile(`msg=listening address=(\S+)`)

// startAgent runs the agent with args (after "agent") and waits until it listens.
func startAgent(t testing.TB, global []string, args ...string) *agentProc {
	t.Helper()
	return startAgentEnv(t, nil, 10*time.Second, global, args...)
}

// startAgentEnv is startAgent with env added to the environment, waiting up to wait for the
// agent to listen.
func startAgentEnv(t testing.TB, env []string, wait time.Duration, global []string, args ...string) *agentProc {
	t.Helper()
	p := launchAgent(t, env, global, args...)
	p.listening(t, wait)
	return p
}

// listening waits up to wait for the agent to listen, and notes its address.
func (p *agentProc) listening(t testing.TB, wait time.Duration) {
	t.Helper()
	m := p.waitLog(t, listenRE.String(), 1, wait)
	p.addr = listenRE.FindStringSubmatch(m)[1]
}

// launchAgent is startAgentEnv without the wait.
func launchAgent(t testing.TB, env []string, global []string, args ...string) *agentProc {
	t.Helper()
	all := append(append(append([]string{}, global...), "agent", "--listen", "127.0.0.1:0"), args...)
	p := &agentProc{cmd: exec.Command(binary, all...), done: make(chan struct{})}
	p.cmd.Env = append(append(os.Environ(), "HARDTRAIL_CONFIG=", "HARDTRAIL_STORE="), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.log = append(p.log, sc.Text())
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("agent log:\n%s", p.logText())
		}
	})
	return p
}

func (p *agentProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, "\n")
}

// count is the number of log lines matching re.
func (p *agentProc) count(re *regexp.Regexp) (int, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, last := 0, ""
	for _, l := range p.log {
		if re.MatchString(l) {
			n, last = n+1, l
		}
	}
	return n, last
}

var cycleDurationRE = regexp.MustCompile(`msg="cycle done" .* duration=(\S+)`)

// slowestCycle is the longest cycle the agent has logged.
func (p *agentProc) slowestCycle() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var max time.Duration
	for _, l := range p.log {
		if m := cycleDurationRE.FindStringSubmatch(l); m != nil {
			if d, err := time.ParseDuration(m[1]); err == nil && d > max {
				max = d
			}
		}
	}
	return max
}

// waitLog waits for n log lines matching pattern and returns the last.
func (p *agentProc) waitLog(t testing.TB, pattern string, n int, timeout time.Duration) string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(timeout)
	for {
		c, last := p.count(re)
		if c >= n {
			return last
		}
		select {
		case <-p.done:
			t.Fatalf("agent exited (%v) before logging %d × %q:\n%s", p.err, n, pattern, p.logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d × %q within %s:\n%s", n, pattern, timeout, p.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and returns the exit code.
func (p *agentProc) stop(t testing.TB) int {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("agent did not stop on SIGTERM:\n%s", p.logText())
	}
	return p.cmd.ProcessState.ExitCode()
}

var client = &http.Client{Timeout: 5 * time.Second}

// get fetches a URL and returns the status, body and how long it took.
func get(t testing.TB, url string) (int, string, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), time.Since(start)
}

// metricValue returns the value of one series in an exposition, or "" when it is absent.
func metricValue(body, series string) string {
	for _, l := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(l, series+" "); ok {
			return rest
		}
	}
	return ""
}

// localFleet is a config of several local targets whose "files" profile captures files of dir as
// sshd and firewall artifacts, with rules of which one names incident INC-1.
type localFleet struct {
	dir, cfg, store, rules string
}

const (
	fleetWeakFW   = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 23 -j ACCEPT\nCOMMIT\n"
	fleetHardFW   = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 23 -j DROP\nCOMMIT\n"
	fleetWeakSSHD = "passwordauthentication yes\nx11forwarding yes\n"
	fleetHardSSHD = "passwordauthentication no\nx11forwarding yes\n"
	fleetRules    = `[[rule]]
id = "inc1-no-passwords"
title = "SSH does not accept passwords"
severity = "high"
controls = ["ISO27001:2022 A.8.5"]
incidents = ["INC-1"]
[rule.sshd]
option = "passwordauthentication"
equals = "no"

[[rule]]
id = "no-x11"
title = "No X11 forwarding"
severity = "medium"
controls = ["ISO27001:2022 A.8.21"]
[rule.sshd]
option = "x11forwarding"
equals = "no"

[[rule]]
id = "telnet-dropped"
title = "Telnet is not accepted"
severity = "critical"
controls = ["ISO27001:2022 A.8.20"]
[rule.firewall]
family = "iptables"
chain = "INPUT"
rule_absent = "--dport 23 -j ACCEPT"
`
)

func newFleet(t testing.TB, targets []string, extra string) *localFleet {
	t.Helper()
	f := &localFleet{dir: t.TempDir()}
	f.cfg = filepath.Join(f.dir, "hardtrail.toml")
	f.store = filepath.Join(f.dir, "h.db")
	f.rules = filepath.Join(f.dir, "rules.toml")
	testutil.Must(t, os.WriteFile(f.rules, []byte(fleetRules), 0o600))
	var b strings.Builder
	fmt.Fprintf(&b, "store = %q\nrules = [%q]\n[agent]\ninterval = \"1s\"\n", f.store, f.rules)
	for _, tg := range targets {
		testutil.Must(t, os.MkdirAll(filepath.Join(f.dir, tg), 0o700))
		f.write(tg, "fw", fleetWeakFW)
		f.write(tg, "sshd", fleetWeakSSHD)
		fmt.Fprintf(&b, "[[target]]\nname = %q\nprofiles = [%q]\ntimeout = \"20s\"\n", tg, "files-"+tg)
		fmt.Fprintf(&b, "[[profile]]\nname = %q\n[[profile.source]]\nname = \"sshd/effective\"\ncommand = [\"cat\", %q]\n[[profile.source]]\nname = \"firewall/iptables\"\ncommand = [\"cat\", %q]\n",
			"files-"+tg, filepath.Join(f.dir, tg, "sshd"), filepath.Join(f.dir, tg, "fw"))
	}
	b.WriteString(extra)
	testutil.Must(t, os.WriteFile(f.cfg, []byte(b.String()), 0o600))
	return f
}

func (f *localFleet) write(target, name, content string) {
	if err := os.WriteFile(filepath.Join(f.dir, target, name), []byte(content), 0o600); err != nil {
		panic(err)
	}
}

// incident records INC-1 on target: before weak, after hardened.
func (f *localFleet) incident(t testing.TB, id, target string) {
	t.Helper()
	f.write(target, "fw", fleetWeakFW)
	f.write(target, "sshd", fleetWeakSSHD)
	mustHT(t, "--config", f.cfg, "snapshot", target, "--incident", id, "--phase", "before", "--by", "test")
	f.write(target, "fw", fleetHardFW)
	f.write(target, "sshd", fleetHardSSHD)
	mustHT(t, "--config", f.cfg, "snapshot", target, "--incident", id, "--phase", "after", "--by", "test")
}

func TestAgentOnceExitCodes(t *testing.T) {
	f := newFleet(t, []string{"web1"}, "")
	// Runs of --once further apart than two intervals store a new snapshot rather than hold
	// the last one: an hour keeps a slow machine from telling the cases apart.
	testutil.Must(t, os.WriteFile(f.cfg, bytes.Replace(mustRead(t, f.cfg), []byte(`interval = "1s"`), []byte(`interval = "1h"`), 1), 0o600))
	f.write("web1", "fw", fleetHardFW)
	f.write("web1", "sshd", "passwordauthentication no\nx11forwarding no\n")
	broken := filepath.Join(f.dir, "broken.toml")
	testutil.Must(t, os.WriteFile(broken, []byte("[[rule]]\nid = \"x\"\nseverity = \"loud\"\n"), 0o600))
	badCfg := filepath.Join(f.dir, "bad.toml")
	testutil.Must(t, os.WriteFile(badCfg, []byte("[agent]\nintervall = \"1m\"\n"), 0o600))
	slow := newFleet(t, []string{"web1"}, "")
	slowSrc := regexp.MustCompile(`command = \["cat", "[^"]*/sshd"\]`).ReplaceAll(mustRead(t, slow.cfg), []byte(`command = ["sleep", "5"]`))
	testutil.Must(t, os.WriteFile(slow.cfg, bytes.Replace(slowSrc, []byte(`timeout = "20s"`), []byte(`timeout = "300ms"`), 1), 0o600))
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"all pass", []string{"--config", f.cfg, "agent", "--once"}, 0, "web1: stored"},
		{"unchanged, all pass", []string{"--config", f.cfg, "agent", "--once"}, 0, "web1: unchanged, holds"},
		{"a rule fails", []string{"--config", f.cfg, "agent", "--once", "--rules", "builtin"}, 1, "fail"},
		{"a target fails", []string{"--config", slow.cfg, "agent", "--once"}, 1, "web1: failed at timeout"},
		{"broken rules", []string{"--config", f.cfg, "agent", "--once", "--rules", broken}, 2, "broken.toml:3"},
		{"broken config", []string{"--config", badCfg, "agent", "--once"}, 2, "bad.toml:2:1: agent.intervall: unknown key"},
		{"interval too short", []string{"--config", f.cfg, "agent", "--interval", "10ms"}, 2, "--interval 10ms is too short"},
		{"two web configs", []string{"--config", f.cfg, "agent", "--web-config", "a.yml", "--web.config.file", "b.yml"}, 2, "name different files"},
		{"missing web config", []string{"--config", f.cfg, "agent", "--web-config", filepath.Join(f.dir, "none.yml")}, 2, "none.yml"},
		{"bad listen", []string{"--config", f.cfg, "agent", "--listen", "nowhere"}, 2, `--listen "nowhere"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := ht(t, tc.args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.out) {
				t.Errorf("exit %d, want %d; output lacks %q:\n%s%s", code, tc.code, tc.out, out, errOut)
			}
		})
	}
	var res struct {
		Targets []struct {
			Target string `json:"target"`
			Held   bool   `json:"held"`
		} `json:"targets"`
		Summary map[string]int `json:"summary"`
	}
	out := mustHT(t, "--config", f.cfg, "--format", "json", "agent", "--once")
	if err := jsonUnmarshal(out, &res); err != nil || len(res.Targets) != 1 || !res.Targets[0].Held || res.Summary["failing_rules"] != 0 {
		t.Errorf("json: %v %+v\n%s", err, res, out)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A live agent with several targets, incidents and rules: promtool accepts its /metrics,
// which hold the status of every incident; a reload with a broken rule file keeps the old
// rules and says so; SIGTERM stops it cleanly; incident show tells the status history.
func TestAgentMetricsAndReload(t *testing.T) {
	promtool := testutil.Tool(t, "promtool")
	f := newFleet(t, []string{"web1", "web2", "db1"}, "")
	f.incident(t, "INC-1", "web1")
	f.incident(t, "INC-2", "db1")
	f.write("web2", "sshd", fleetHardSSHD)
	a := startAgent(t, []string{"--config", f.cfg})
	a.waitLog(t, `msg="cycle done" targets=3 `, 1, 20*time.Second)
	code, body, _ := get(t, "http://"+a.addr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	for series, want := range map[string]string{
		`hardtrail_incident_status{incident="INC-1",status="verified",target="web1"}`:     "1",
		`hardtrail_incident_status{incident="INC-2",status="remediated",target="db1"}`:    "1",
		`hardtrail_incident_status{incident="INC-2",status="regressed",target="db1"}`:     "0",
		`hardtrail_rule_success{rule="no-x11",severity="medium",target="web2"}`:           "0",
		`hardtrail_rule_success{rule="telnet-dropped",severity="critical",target="web1"}`: "1",
		`hardtrail_rule_success{rule="telnet-dropped",severity="critical",target="web2"}`: "0",
		`hardtrail_artifact_drift{artifact="firewall/iptables",target="web1"}`:            "0",
		`hardtrail_target_up{target="db1"}`:                                               "1",
		`hardtrail_collect_errors_total{target="web2"}`:                                   "0",
		`hardtrail_reload_success`: "1",
	} {
		if got := metricValue(body, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	if metricValue(body, `hardtrail_snapshot_timestamp_seconds{target="web2"}`) == "" {
		t.Error("no snapshot time for web2")
	}
	if code, body, _ := get(t, "http://"+a.addr+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	// A broken rule file: the reload fails, the old rules stay, the scrape still answers.
	good := mustRead(t, f.rules)
	testutil.Must(t, os.WriteFile(f.rules, []byte("[[rule]]\nid = \"broken\"\nseverity = \"loud\"\n"), 0o600))
	a.cmd.Process.Signal(syscall.SIGHUP)
	a.waitLog(t, `msg="reload failed: keeping the previous configuration and rules" err=.*rules.toml:3`, 1, 10*time.Second)
	n, _ := a.count(regexp.MustCompile(`msg="cycle done"`))
	a.waitLog(t, `msg="cycle done"`, n+1, 10*time.Second)
	code, body, _ = get(t, "http://"+a.addr+"/metrics")
	if code != 200 || metricValue(body, "hardtrail_reload_success") != "0" || metricValue(body, `hardtrail_rule_success{rule="no-x11",severity="medium",target="web2"}`) != "0" {
		t.Errorf("after a bad reload: %d\n%s", code, grep(body, "hardtrail_r"))
	}
	testutil.Must(t, os.WriteFile(f.rules, good, 0o600))
	a.cmd.Process.Signal(syscall.SIGHUP)
	a.waitLog(t, `msg=reloaded`, 1, 10*time.Second)
	if _, body, _ := get(t, "http://"+a.addr+"/metrics"); metricValue(body, "hardtrail_reload_success") != "1" {
		t.Errorf("after a good reload:\n%s", grep(body, "hardtrail_reload"))
	}
	// A regression, seen by the next cycle and recorded.
	f.write("web1", "fw", fleetWeakFW)
	a.waitLog(t, `level=WARN msg="incident status changed" incident=INC-1 target=web1 from=verified to=regressed`, 1, 10*time.Second)
	if code := a.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	a.waitLog(t, "msg=stopped", 1, time.Second)
	show := mustHT(t, "--config", f.cfg, "incident", "show", "INC-1")
	for _, want := range []string{"held unchanged\n  web1  after ", "status history\n", "web1  - -> verified", "verified -> regressed", "hardened change reverted in [firewall/iptables]"} {
		if !strings.Contains(show, want) {
			t.Errorf("incident show lacks %q:\n%s", want, show)
		}
	}
	if out := mustHT(t, "--config", f.cfg, "show", "INC-1:after"); !regexp.MustCompile(`held +unchanged until \S+ \(\d+ later captures, at most \d+s apart\)`).MatchString(out) {
		t.Errorf("show of the held after snapshot:\n%s", out)
	}
	var js struct {
		Incident string `json:"incident"`
		Status   string `json:"status"`
		Events   []struct {
			Status string `json:"status"`
		} `json:"status_events"`
		Held []struct {
			Count int `json:"count"`
		} `json:"held"`
	}
	if err := jsonUnmarshal(mustHT(t, "--config", f.cfg, "--format", "json", "incident", "show", "INC-1"), &js); err != nil || js.Status != "regressed" || len(js.Events) != 2 || len(js.Held) == 0 {
		t.Errorf("incident show json: %v %+v", err, js)
	}
	if out := mustHT(t, "--config", f.cfg, "store", "verify"); !strings.Contains(out, "ok:") {
		t.Errorf("verify: %s", out)
	}
}

func grep(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The agent keeps answering scrapes quickly while a target hangs and while another process
// holds the store's write lock, and carries on once the lock is released.
func TestAgentKeepsServing(t *testing.T) {
	f := newFleet(t, []string{"web1"}, `
[[target]]
name = "hung"
profiles = ["hang"]
timeout = "60s"
[[profile]]
name = "hang"
[[profile.source]]
name = "cmd/sleep"
command = ["sleep", "120"]
`)
	a := startAgent(t, []string{"--config", f.cfg})
	a.waitLog(t, `msg=captured target=web1`, 2, 15*time.Second)
	scrapeFast := func(what string) string {
		t.Helper()
		code, body, el := get(t, "http://"+a.addr+"/metrics")
		if code != 200 || el > time.Second {
			t.Fatalf("%s: /metrics answered %d after %s", what, code, el)
		}
		return body
	}
	body := scrapeFast("target hung")
	if metricValue(body, `hardtrail_target_up{target="web1"}`) != "1" || metricValue(body, `hardtrail_target_up{target="hung"}`) != "" {
		t.Errorf("while hung:\n%s", grep(body, "hardtrail_target_up"))
	}
	// A long write by another process: BEGIN IMMEDIATE held for 4 seconds.
	db, err := sql.Open("sqlite", "file:"+f.store+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	locked := time.Now()
	for time.Since(locked) < 4*time.Second {
		scrapeFast("store locked")
		time.Sleep(200 * time.Millisecond)
	}
	n, _ := a.count(regexp.MustCompile(`msg=captured target=web1`))
	conn.ExecContext(context.Background(), "ROLLBACK")
	conn.Close()
	a.waitLog(t, `msg=captured target=web1`, n+2, 15*time.Second)
	scrapeFast("after the lock")
	if code := a.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}
	if out, _, code := ht(t, "--config", f.cfg, "store", "verify"); code != 0 {
		t.Errorf("verify: %s", out)
	}
}

// SIGKILL at random moments of the agent's cycles never leaves the store unverifiable.
func TestAgentCrash(t *testing.T) {
	f := newFleet(t, []string{"web1", "web2"}, `
[[target]]
name = "local"
profiles = ["linux"]
`)
	f.incident(t, "INC-1", "web1")
	// How long the first cycle takes, to kill inside cycles.
	began := time.Now()
	a := startAgent(t, []string{"--config", f.cfg})
	a.waitLog(t, `msg="cycle done" targets=3 `, 1, 30*time.Second)
	full := time.Since(began)
	a.stop(t)
	rng := rand.New(rand.NewPCG(2, uint64(time.Now().UnixNano())))
	kills, midCycle := 6, 0
	for i := range kills {
		// Alternate the firewall, so cycles store new snapshots and status events.
		fw := fleetHardFW
		if i%2 == 1 {
			fw = fleetWeakFW
		}
		f.write("web1", "fw", fw)
		a := startAgent(t, []string{"--config", f.cfg})
		time.Sleep(time.Duration(rng.Int64N(int64(min(full, 3*time.Second)))))
		a.cmd.Process.Signal(syscall.SIGKILL)
		<-a.done
		if n, _ := a.count(regexp.MustCompile(`msg="cycle done"`)); n == 0 {
			midCycle++
		}
		if out, errOut, code := ht(t, "--config", f.cfg, "store", "verify"); code != 0 {
			t.Fatalf("after kill %d: store verify exit %d\n%s%s\nagent log:\n%s", i, code, out, errOut, a.logText())
		}
	}
	t.Logf("%d kills, %d in the middle of a cycle; a cycle takes %s", kills, midCycle, full)
	if midCycle < kills/3 {
		t.Errorf("only %d of %d kills landed in the middle of a cycle", midCycle, kills)
	}
}

// TLS and basic auth through the web config: without credentials 401, with them 200.
func TestAgentWebConfig(t *testing.T) {
	openssl := testutil.Tool(t, "openssl")
	f := newFleet(t, []string{"web1"}, "")
	f.incident(t, "INC-1", "web1")
	crt, key := filepath.Join(f.dir, "agent.crt"), filepath.Join(f.dir, "agent.key")
	testutil.Run(t, openssl, "req", "-x509", "-newkey", "ed25519", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", crt)
	src := string(mustRead(t, "../../deploy/web-config.yml"))
	src = strings.NewReplacer("/etc/hardtrail/tls/agent.crt", crt, "/etc/hardtrail/tls/agent.key", key).Replace(src)
	wc := filepath.Join(f.dir, "web.yml")
	testutil.Must(t, os.WriteFile(wc, []byte(src), 0o600))
	a := startAgent(t, []string{"--config", f.cfg}, "--web.config.file", wc)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the test's own self-signed certificate
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	// The incident pages sit behind the same TLS and basic auth as /metrics.
	for _, path := range []string{"/metrics", "/incidents/", "/incidents/INC-1"} {
		for _, tc := range []struct {
			user, pass string
			code       int
		}{{"", "", 401}, {"prometheus", "wrong", 401}, {"prometheus", "example-only-replace-me", 200}} {
			req, _ := http.NewRequest("GET", "https://"+a.addr+path, nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("%s, user %q: %d, want %d", path, tc.user, resp.StatusCode, tc.code)
			}
			if tc.code == 200 && path == "/incidents/INC-1" && !strings.Contains(string(body), `<h1 id="headline">Incident INC-1</h1>`) {
				t.Errorf("%s: not the incident's page:\n%.400s", path, body)
			}
		}
	}
	if _, err := client.Get("http://" + a.addr + "/metrics"); err == nil {
		// A plain HTTP request to a TLS listener gets a 400 from Go's server, not metrics.
		resp, _ := client.Get("http://" + a.addr + "/metrics")
		if resp != nil && resp.StatusCode == 200 {
			t.Error("plain HTTP served metrics")
		}
	}
}
