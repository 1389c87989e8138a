package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// BenchmarkCheckVsGoss times, side by side in every iteration, `hardtrail check` and `goss
// validate` of the same assertions on this machine: 500 installed packages present, 200 files
// with a line and a mode each, and one listening port. hardtrail's profile captures what the
// rules read (the package list, the files, the listening sockets) and stores the snapshot and
// its results; goss asks the system for each assertion. goss is not a dependency: build it
// with `go build -o /usr/local/bin/goss github.com/goss-org/goss/cmd/goss` from a scratch module
// requiring github.com/goss-org/goss v0.4.9.
func BenchmarkCheckVsGoss(b *testing.B) {
	goss := testutil.Tool(b, "goss")
	dpkg := testutil.Tool(b, "dpkg-query")
	testutil.Tool(b, "ss")
	out, err := exec.Command(dpkg, "-W", "-f", "${Package}\t${db:Status-Abbrev}\n").Output()
	if err != nil {
		b.Fatal(err)
	}
	var pkgs []string
	for line := range strings.Lines(string(out)) {
		name, status, _ := strings.Cut(strings.TrimSpace(line), "\t")
		if strings.HasPrefix(status, "ii") && !strings.Contains(name, ":") {
			pkgs = append(pkgs, name)
		}
	}
	const wantPkgs, files = 500, 200
	if len(pkgs) < wantPkgs {
		b.Fatalf("%d packages installed, the benchmark needs %d", len(pkgs), wantPkgs)
	}
	pkgs = pkgs[:wantPkgs]

	dir := b.TempDir()
	conf := filepath.Join(dir, "conf")
	testutil.Must(b, os.Mkdir(conf, 0o755))
	for i := range files {
		body := fmt.Sprintf("# file %d\nsetting_%d = on\nother = %d\n", i, i, i*7)
		testutil.Must(b, os.WriteFile(filepath.Join(conf, fmt.Sprintf("f%03d.conf", i)), []byte(body), 0o644))
	}
	// A listener outside the ephemeral range, which net/listening drops on loopback.
	var ln net.Listener
	for port := 20000; ln == nil && port < 20100; port++ {
		ln, _ = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	}
	if ln == nil {
		b.Fatal("no free loopback port in 20000-20099")
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	// The same assertions for both.
	var gy, rules strings.Builder
	gy.WriteString("package:\n")
	for i, p := range pkgs {
		fmt.Fprintf(&gy, "  %s:\n    installed: true\n", p)
		fmt.Fprintf(&rules, "[[rule]]\nid = \"pkg-%d\"\ntitle = \"%s installed\"\nseverity = \"low\"\ncontrols = [\"ISO27001:2022 A.8.19\"]\n[rule.package]\nname = %q\nstate = \"installed\"\n\n", i, p, p)
	}
	gy.WriteString("file:\n")
	for i := range files {
		path := filepath.Join(conf, fmt.Sprintf("f%03d.conf", i))
		fmt.Fprintf(&gy, "  %s:\n    exists: true\n    mode: \"0644\"\n    contents: [\"/^setting_%d = on$/\"]\n", path, i)
		fmt.Fprintf(&rules, "[[rule]]\nid = \"file-%d\"\ntitle = \"file %d set\"\nseverity = \"low\"\ncontrols = [\"ISO27001:2022 A.8.9\"]\n[rule.file]\npath = %q\npresent = '^setting_%d = on$'\nmax_mode = \"0644\"\n\n",
			i, i, "conf"+path, i)
	}
	fmt.Fprintf(&gy, "port:\n  tcp:%d:\n    listening: true\n    ip: [\"127.0.0.1\"]\n", port)
	fmt.Fprintf(&rules, "[[rule]]\nid = \"port\"\ntitle = \"listening\"\nseverity = \"low\"\ncontrols = [\"ISO27001:2022 A.8.20\"]\n[rule.port]\nport = %d\nstate = \"listening\"\n", port)
	gossFile := filepath.Join(dir, "goss.yaml")
	rulesFile := filepath.Join(dir, "rules.toml")
	testutil.Must(b, os.WriteFile(gossFile, []byte(gy.String()), 0o600))
	testutil.Must(b, os.WriteFile(rulesFile, []byte(rules.String()), 0o600))
	cfg := filepath.Join(dir, "hardtrail.toml")
	testutil.Must(b, os.WriteFile(cfg, fmt.Appendf(nil, `store = %q
rules = [%q]

[[target]]
name = "local"
profiles = ["check"]

[[profile]]
name = "check"
[[profile.source]]
name = "packages/installed"
command = ["dpkg-query", "-W", "-f", '${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\n']
sort = true
[[profile.source]]
name = "net/ephemeral-ports"
files = ["/proc/sys/net/ipv4/ip_local_port_range"]
[[profile.source]]
name = "net/listening"
command = ["ss", "-H", "-tulnp"]
normalise = ["ss"]
port_range = "net/ephemeral-ports"
[[profile.source]]
name = "conf"
files = [%q]
`, filepath.Join(dir, "h.db"), rulesFile, filepath.Join(conf, "*.conf")), 0o600))

	run := func(name string, args ...string) time.Duration {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "HARDTRAIL_CONFIG=", "HARDTRAIL_STORE=")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		if err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return d
	}
	// The same with the whole linux profile captured beside the files, as an agent would.
	full := filepath.Join(dir, "linux.toml")
	testutil.Must(b, os.WriteFile(full, fmt.Appendf(nil, `store = %q
rules = [%q]

[[target]]
name = "local"
profiles = ["linux", "conf"]

[[profile]]
name = "conf"
[[profile.source]]
name = "conf"
files = [%q]
`, filepath.Join(dir, "linux.db"), rulesFile, filepath.Join(conf, "*.conf")), 0o600))
	checkArgs := []string{"--config", cfg, "check"}
	fullArgs := []string{"--config", full, "check"}
	gossArgs := []string{"--gossfile", gossFile, "validate", "--format", "silent"}
	run(binary, checkArgs...) // the first snapshot stores every blob; every rule must pass
	run(binary, fullArgs...)
	run(goss, gossArgs...)
	var check, linux, gv time.Duration
	for b.Loop() {
		check += run(binary, checkArgs...)
		linux += run(binary, fullArgs...)
		gv += run(goss, gossArgs...)
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(check), "check-ms")
	b.ReportMetric(ms(linux), "check-linux-ms")
	b.ReportMetric(ms(gv), "goss-ms")
	b.ReportMetric(float64(gv)/float64(check), "goss/check")
	b.ReportMetric(float64(gv)/float64(linux), "goss/check-linux")
}
