package main

import (
	"bytes"
	"cmp"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/hardtrail/hardtrail/collector/transport/ssh/sshtest"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

// linuxCommands are the linux profile's commands and files as one remote shell command: what
// parallel-ssh and the OpenSSH loop run on each target, writing everything to stdout.
const linuxCommands = `cat /etc/os-release
sshd -T
cat /etc/ssh/sshd_config /etc/ssh/sshd_config.d/*.conf
iptables-save
ip6tables-save
nft -s list ruleset
ss -H -tulnp
systemctl list-unit-files --type=service,socket --no-legend --no-pager
systemctl list-units --type=service,socket --all --no-legend --no-pager --plain
dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\n'
sysctl -a
`

// listenPerServer is how many sockets one sshd may listen on (OpenSSH's MAX_LISTEN_SOCKS).
const listenPerServer = 16

// fleetConcurrency is the number of targets every tool works on at once.
const fleetConcurrency = 64

// benchFleet is a fleet of targets on loopback: sshd servers, each listening on 127.0.0.1 and
// 15 more loopback addresses at its port, so that every target has its own address.
type benchFleet struct {
	dir     string
	servers []*sshtest.Server
	hosts   []string // host:port, one per target
	key     *sshtest.Key
	kh      string
}

func startBenchFleet(b *testing.B, n int, plainShell bool) *benchFleet {
	b.Helper()
	f := &benchFleet{dir: b.TempDir()}
	f.key = sshtest.NewKey(b, f.dir, "id_ed25519", "ed25519", "")
	var khLines []string
	for k := 0; len(f.hosts) < n; k++ {
		extra := []string{"MaxStartups 1000", "LogLevel ERROR"}
		if plainShell {
			// bash reads ~/.bashrc when sshd starts it, unless it is not the first shell level.
			extra = append(extra, "SetEnv SHLVL=1")
		}
		addrs := []string{"127.0.0.1"}
		for i := 1; i < listenPerServer; i++ {
			a := fmt.Sprintf("127.1.%d.%d", k, i)
			extra = append(extra, "ListenAddress "+a)
			addrs = append(addrs, a)
		}
		srv := sshtest.Start(b, sshtest.Options{HostKeyTypes: []string{"ed25519"}, Config: extra})
		srv.Authorize(b, "root", f.key, "")
		f.servers = append(f.servers, srv)
		var names []string
		for _, a := range addrs {
			hp := net.JoinHostPort(a, strconv.Itoa(srv.Port))
			c, err := net.DialTimeout("tcp", hp, time.Second)
			if err != nil {
				b.Fatalf("sshd %d does not listen on %s: %v", k, hp, err)
			}
			c.Close()
			names = append(names, hp)
			f.hosts = append(f.hosts, hp)
		}
		khLines = append(khLines, knownhosts.Line(names, srv.HostKeys["ed25519"].Public))
	}
	f.kh = sshtest.WriteKnownHosts(b, f.dir, khLines...)
	return f
}

// figures are one tool's costs for capturing the fleet once.
type figures struct {
	wall    time.Duration
	cpu     time.Duration // the collector: the tool's process and every child it reaped
	target  time.Duration // every sshd connection and what ran in it
	maxRSS  int64         // bytes: the largest single process of the collector, sampled
	treeRSS int64         // bytes: the most the collector's processes held together, sampled
}

// run runs cmd over the fleet with stdout to a file, and returns its figures and the output file.
func (f *benchFleet) run(b *testing.B, name string, cmd *exec.Cmd) (figures, string) {
	b.Helper()
	f.idle(b)
	target0 := f.targetCPU(b)
	outPath := filepath.Join(f.dir, name+".out")
	out, err := os.Create(outPath)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	var tree, largest int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			t, l := treeRSS(cmd.Process.Pid)
			tree, largest = max(tree, t), max(largest, l)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	err = cmd.Wait()
	wall := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		b.Fatalf("%s: %v\n%s", name, err, tail(stderr.String(), 2000))
	}
	f.idle(b)
	return figures{
		wall:    wall,
		cpu:     cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(),
		target:  f.targetCPU(b) - target0,
		maxRSS:  largest,
		treeRSS: tree,
	}, outPath
}

// idle waits until every sshd has reaped its connections, so that their CPU is counted.
func (f *benchFleet) idle(b *testing.B) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range f.servers {
		for s.Connections() > 0 {
			if time.Now().After(deadline) {
				b.Fatalf("sshd %s: connections did not end", s.Addr)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (f *benchFleet) targetCPU(b *testing.B) time.Duration {
	var d time.Duration
	for _, s := range f.servers {
		d += s.ChildCPU(b)
	}
	return d
}

// treeRSS sums the resident memory of pid and its descendants.
// treeRSS returns the resident memory of pid and its descendants together, and of the largest
// of them. (ru_maxrss would not do: Go starts a child with vfork, so a child's high-water mark
// starts at the parent's, this test's, resident set.)
func treeRSS(pid int) (total, largest int64) {
	entries, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	rss := map[int]int64{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces) start at the state, field 3.
		fs := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		if len(fs) < 22 {
			continue
		}
		parent[p], _ = strconv.Atoi(fs[4-3])
		pages, _ := strconv.ParseInt(fs[24-3], 10, 64)
		rss[p] = pages * int64(os.Getpagesize())
	}
	for p := range rss {
		for q := p; q > 1; q = parent[q] {
			if q == pid {
				total += rss[p]
				largest = max(largest, rss[p])
				break
			}
		}
	}
	return total, largest
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// countIn counts the occurrences of s in a file (outputs of concurrent processes interleave
// in it).
func countIn(b *testing.B, path, s string) int {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return bytes.Count(data, []byte(s))
}

// BenchmarkFleet captures a fleet of N loopback targets with the linux profile, N = 100 and 300,
// with hardtrail, with parallel-ssh (`-p 64 -i`) running the same commands, and with an
// `xargs -P 64` loop of OpenSSH ssh, and at N = 100 with Ansible's ad-hoc mode (`-f 64 -m raw`),
// all at 64 targets at once, one tool after the other on the same servers, after one unmeasured
// warm-up pass. At N = 100 every tool runs three times in rotated order and reports its median
// run; N = 300 runs each tool once. OpenSSH uses the key exchange hardtrail negotiates (curve25519-sha256; x/crypto
// has no sntrup761); at N = 100 the loop also runs with OpenSSH's default, the sntrup761 hybrid.
//
// The targets' login shells read no rc file (sshd passes SHLVL=1, so bash skips ~/.bashrc), as
// on a server whose root has a stock shell. N=100-rcfile runs hardtrail and the loop with root's
// own ~/.bashrc instead, which on a developer machine may start a version manager: the price of
// every session opened. It runs 16 targets at once: all targets share this machine's cores, and
// at 64 the slowest sessions pass the linux profile's 60 s source timeout.
//
// For each tool it reports targets per second, the collector's CPU per target (the tool and every
// process it reaped), the targets' CPU per target (every sshd connection and what ran in it, read
// from /proc once the connections have ended), the largest single collector process's peak RSS
// and the peak of the collector's processes together (sampled every 100 ms); ns/op is the wall
// time of one fleet capture. A fleet capture costs minutes of target CPU, so each tool captures
// each fleet a fixed number of times per -count, whatever -benchtime says; the leaves only report.
//
// HARDTRAIL_BENCH_FLEET_N=20 runs only hardtrail and the curve25519 loop over 20 targets, three
// rounds, for a quick figure while working; HARDTRAIL_BENCH_WRAP="perf record -g -o FILE --" runs
// hardtrail under a profiler, built with its symbols.
func BenchmarkFleet(b *testing.B) {
	testutil.Root(b)
	for _, tool := range []string{"parallel-ssh", "xargs", "ssh", "ansible"} {
		testutil.Tool(b, tool)
	}
	if v := os.Getenv("HARDTRAIL_BENCH_FLEET_N"); v != "" {
		// A quick comparison while working on the collector: N targets, hardtrail and the
		// loop only.
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 300 {
			b.Fatalf("HARDTRAIL_BENCH_FLEET_N=%q: want a number of targets from 1 to 300", v)
		}
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			startBenchFleet(b, n, true).compare(b, n, fleetConcurrency, 3, "hardtrail", "ssh-loop")
		})
		return
	}
	plain := startBenchFleet(b, 300, true)
	b.Run("N=100", func(b *testing.B) {
		plain.compare(b, 100, fleetConcurrency, 3, "hardtrail", "parallel-ssh", "ssh-loop", "ssh-loop-sntrup", "ansible")
	})
	b.Run("N=300", func(b *testing.B) {
		plain.compare(b, 300, fleetConcurrency, 1, "hardtrail", "parallel-ssh", "ssh-loop")
	})
	b.Run("N=100-rcfile", func(b *testing.B) {
		startBenchFleet(b, 100, false).compare(b, 100, 16, 3, "hardtrail", "ssh-loop")
	})
}

// compare captures the first n targets of the fleet once with each tool, par targets at once,
// then reports each tool as a sub-benchmark.
func (f *benchFleet) compare(b *testing.B, n, par, rounds int, tools ...string) {
	dir := filepath.Join(f.dir, fmt.Sprint(n))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	var targets []target
	var psshHosts, sshHosts, inventory strings.Builder
	for i, h := range f.hosts[:n] {
		targets = append(targets, target{Name: fmt.Sprintf("t%03d", i), Address: "root@" + h,
			Identity: f.key.Path, KnownHosts: f.kh, Profiles: []string{"linux"}})
		fmt.Fprintf(&psshHosts, "root@%s\n", h)
		fmt.Fprintf(&sshHosts, "ssh://root@%s\n", h)
		host, port, _ := net.SplitHostPort(h)
		fmt.Fprintf(&inventory, "t%03d ansible_host=%s ansible_port=%s ansible_user=root\n", i, host, port)
	}
	inventoryFile := filepath.Join(dir, "inventory")
	if err := os.WriteFile(inventoryFile, []byte(inventory.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, _ := writeConfig(b, dir, par, targets, "")
	hostsFile := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hostsFile, []byte(psshHosts.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	sshOpts := []string{"-F", "/dev/null", "-T", "-i", f.key.Path, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + f.kh, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "ControlMaster=no", "-o", "LogLevel=ERROR"}
	curve := []string{"-o", "KexAlgorithms=curve25519-sha256"}
	loop := func(opts ...string) *exec.Cmd {
		args := append([]string{"-P", fmt.Sprint(par), "-I{}", "ssh"}, sshOpts...)
		c := exec.Command("xargs", append(append(args, opts...), "{}", linuxCommands)...)
		c.Stdin = strings.NewReader(sshHosts.String())
		return c
	}
	// Each tool's command, and how many targets its output shows captured.
	run := map[string]func() (*exec.Cmd, func(out string) int){
		"hardtrail": func() (*exec.Cmd, func(string) int) {
			args := []string{"--config", cfg, "--format", "json", "snapshot"}
			c := exec.Command(binary, args...)
			if w := strings.Fields(os.Getenv("HARDTRAIL_BENCH_WRAP")); len(w) > 0 {
				// A profiler around the collector, such as `perf record -g -o FILE --`.
				c = exec.Command(w[0], append(append(w[1:], binary), args...)...)
			}
			c.Env = cleanEnv()
			return c, func(out string) int { return countIn(b, out, `"id": "`) }
		},
		"parallel-ssh": func() (*exec.Cmd, func(string) int) {
			args := []string{"-h", hostsFile, "-p", fmt.Sprint(par), "-t", "600", "-i"}
			for _, o := range append(append([]string(nil), sshOpts...), curve...) {
				args = append(args, "-X", o)
			}
			return exec.Command("parallel-ssh", append(args, linuxCommands)...), osReleases(b)
		},
		// Ansible's ad-hoc mode with the raw module: the same shell command line over OpenSSH,
		// no Python needed on the targets, its cheapest way to run commands.
		"ansible": func() (*exec.Cmd, func(string) int) {
			c := exec.Command("ansible", "all", "-i", inventoryFile, "--private-key", f.key.Path,
				"-f", fmt.Sprint(par), "-m", "raw", "-a", linuxCommands)
			home := filepath.Join(dir, "ansible")
			c.Env = append(os.Environ(), "ANSIBLE_HOME="+home, "ANSIBLE_LOCAL_TEMP="+filepath.Join(home, "tmp"),
				"ANSIBLE_NOCOLOR=1", "ANSIBLE_HOST_KEY_CHECKING=True", "ANSIBLE_TIMEOUT=60",
				"ANSIBLE_SSH_ARGS="+strings.Join(append(append([]string(nil), sshOpts[2:]...), curve...), " "))
			return c, osReleases(b)
		},
		"ssh-loop":        func() (*exec.Cmd, func(string) int) { return loop(curve...), osReleases(b) },
		"ssh-loop-sntrup": func() (*exec.Cmd, func(string) int) { return loop(), osReleases(b) },
	}
	// A first pass that is not measured warms the targets' caches (the package database, unit
	// files, /proc), so that the tool run first is not charged for them.
	f.run(b, "warm-up", loop(curve...))
	// Each round runs every tool, in an order rotated by one each round; each tool's figures are
	// those of its median run by wall time, so one slow moment of a noisy machine does not
	// decide a ratio.
	runs := map[string][]figures{}
	for r := range rounds {
		for k := range tools {
			name := tools[(k+r)%len(tools)]
			cmd, captured := run[name]()
			fig, out := f.run(b, name, cmd)
			if c := captured(out); c != n {
				b.Fatalf("%s captured %d of %d targets", name, c, n)
			}
			runs[name] = append(runs[name], fig)
			b.Logf("N=%d round %d %-16s %6.2f targets/s  collector %5.1f ms/target  targets %6.1f ms/target  peak RSS %5.1f MB (together %6.1f MB)",
				n, r+1, name, float64(n)/fig.wall.Seconds(), ms(fig.cpu)/float64(n), ms(fig.target)/float64(n), mb(fig.maxRSS), mb(fig.treeRSS))
		}
	}
	got := map[string]figures{}
	for name, figs := range runs {
		slices.SortFunc(figs, func(a, b figures) int { return cmp.Compare(a.wall, b.wall) })
		got[name] = figs[len(figs)/2]
	}
	for _, name := range tools {
		fig := got[name]
		b.Run(name, func(b *testing.B) {
			b.ReportMetric(float64(fig.wall.Nanoseconds()), "ns/op")
			b.ReportMetric(float64(n)/fig.wall.Seconds(), "targets/s")
			b.ReportMetric(ms(fig.cpu)/float64(n), "collector-cpu-ms/target")
			b.ReportMetric(ms(fig.target)/float64(n), "target-cpu-ms/target")
			b.ReportMetric(mb(fig.maxRSS), "peak-rss-MB")
			b.ReportMetric(mb(fig.treeRSS), "tree-rss-MB")
			if name == "hardtrail" {
				b.ReportMetric(got["ssh-loop"].wall.Seconds()/fig.wall.Seconds(), "speed-vs-ssh-loop")
			}
		})
	}
}

// osReleases counts the targets in the OpenSSH tools' output: each printed /etc/os-release.
func osReleases(b *testing.B) func(out string) int {
	return func(out string) int { return countIn(b, out, "PRETTY_NAME=") }
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func mb(n int64) float64         { return float64(n) / (1 << 20) }
