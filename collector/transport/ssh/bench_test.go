package ssh_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/collector/transport/ssh/sshtest"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

// BenchmarkSession compares nine commands run one session each with the same nine run as one
// framed session, against a loopback sshd. Beside the collector's wall time per op it reports the
// target's CPU per op (everything sshd's children used, read from /proc once the connection has
// ended, the connection's handshake included once) and the collector's own CPU per op.
func BenchmarkSession(b *testing.B) {
	f := newFixture(b, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	var cmds []transport.Command
	for _, argv := range [][]string{
		{"uname", "-a"}, {"id", "-u"}, {"cat", "/etc/os-release"}, {"sysctl", "-n", "kernel.hostname"},
		{"ls", "-l", "/etc/ssh"}, {"cat", "/proc/loadavg"}, {"hostname"}, {"date", "-u", "+%Y"}, {"true"},
	} {
		cmds = append(cmds, transport.Command{Argv: argv})
	}
	modes := []struct {
		name string
		run  func(b *testing.B, tr transport.Transport)
	}{
		{"per-command", func(b *testing.B, tr transport.Transport) {
			for _, c := range cmds {
				if _, err := tr.Run(b.Context(), c); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"batched", func(b *testing.B, tr transport.Transport) {
			g, err := tr.Gather(b.Context(), transport.Gathering{Commands: cmds})
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range g.Commands {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		}},
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			idle(b, f.srv)
			target0, self0 := f.srv.ChildCPU(b), selfCPU()
			tr := dial(b, f.config())
			for b.Loop() {
				m.run(b, tr)
			}
			tr.Close()
			idle(b, f.srv)
			n := float64(b.N)
			b.ReportMetric(float64((f.srv.ChildCPU(b)-target0).Microseconds())/1000/n, "target-cpu-ms/op")
			b.ReportMetric(float64((selfCPU()-self0).Microseconds())/1000/n, "collector-cpu-ms/op")
		})
	}
}

// idle waits until the server has reaped every connection, so that their CPU is counted.
func idle(b *testing.B, srv *sshtest.Server) {
	deadline := time.Now().Add(5 * time.Second)
	for srv.Connections() > 0 {
		if time.Now().After(deadline) {
			b.Fatal("sshd connections did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type benchCommand struct {
	argv []string
	sudo bool
}

// lightCommands have the shape of the linux profile's commands (nine, four with sudo) and cost
// little themselves, so that what a tool adds per session and per command stands out.
var lightCommands = []benchCommand{
	{[]string{"uname", "-a"}, true},
	{[]string{"cat", "/proc/loadavg"}, true},
	{[]string{"id", "-u"}, true},
	{[]string{"cat", "/etc/hostname"}, true},
	{[]string{"true"}, false},
	{[]string{"date", "-u"}, false},
	{[]string{"cat", "/proc/version"}, false},
	{[]string{"uname", "-r"}, false},
	{[]string{"sed", "-n", "1p", "/etc/passwd"}, false},
}

// linuxCommands are the linux profile's commands.
var linuxCommands = []benchCommand{
	{[]string{"sshd", "-T"}, true},
	{[]string{"iptables-save"}, true},
	{[]string{"ip6tables-save"}, true},
	{[]string{"nft", "-s", "list", "ruleset"}, true},
	{[]string{"ss", "-H", "-tulnp"}, false},
	{[]string{"systemctl", "list-unit-files", "--type=service,socket", "--no-legend", "--no-pager"}, false},
	{[]string{"systemctl", "list-units", "--type=service,socket", "--all", "--no-legend", "--no-pager", "--plain"}, false},
	{[]string{"dpkg-query", "-W", "-f", `${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\n`}, false},
	{[]string{"sysctl", "-a"}, false},
}

// BenchmarkCapture captures one target the way the linux profile does (nine commands, its two
// files and a glob that matches two files), one connection per op, with the profile's commands
// (linux) or cheap ones of the same shape (light), three ways: with the glob's
// files read in a second session (two-sessions), in the same session (one-session), and with
// OpenSSH's ssh running the same commands in one shell command line (openssh), as a fleet loop
// would. plain targets start bash without an rc file; rcfile ones read root's ~/.bashrc. It
// reports the target's CPU per op (every sshd child, read from /proc once the connection has
// ended). Run it with -benchtime 20x.
func BenchmarkCapture(b *testing.B) {
	sshBin := testutil.Tool(b, "ssh")
	for _, v := range []struct {
		name   string
		config []string
		cmds   []benchCommand
	}{
		{"light/plain", []string{"SetEnv SHLVL=1"}, lightCommands}, {"light/rcfile", nil, lightCommands},
		{"linux/plain", []string{"SetEnv SHLVL=1"}, linuxCommands}, {"linux/rcfile", nil, linuxCommands},
	} {
		if !benchWanted(b, v.name) {
			continue
		}
		f := newFixture(b, sshtest.Options{HostKeyTypes: []string{"ed25519"}, Config: v.config})
		confd := filepath.Join(f.dir, "sshd_config.d")
		if err := os.Mkdir(confd, 0o755); err != nil {
			b.Fatal(err)
		}
		for _, n := range []string{"10-a.conf", "20-b.conf"} {
			if err := os.WriteFile(filepath.Join(confd, n), []byte("PermitRootLogin no\n"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		pattern := filepath.Join(confd, "*.conf")
		var g transport.Gathering
		var line strings.Builder
		line.WriteString("cat /etc/os-release\n")
		for _, c := range v.cmds {
			g.Commands = append(g.Commands, transport.Command{Argv: c.argv, Sudo: c.sudo, MaxBytes: 16 << 20})
			for _, w := range c.argv {
				line.WriteString("'" + strings.ReplaceAll(w, "'", `'\''`) + "' ")
			}
			line.WriteString("\n")
		}
		line.WriteString("cat /etc/ssh/sshd_config " + confd + "/*.conf\n")
		g.Files = []transport.FileRead{{Path: "/etc/os-release"}, {Path: "/etc/ssh/sshd_config"}}
		check := func(got *transport.Gathered, err error) {
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range got.Files {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		}
		modes := []struct {
			name string
			run  func(b *testing.B)
		}{
			{"two-sessions", func(b *testing.B) {
				tr := dial(b, f.config())
				defer tr.Close()
				g1 := g
				g1.Globs = []string{pattern}
				got, err := tr.Gather(b.Context(), g1)
				check(got, err)
				var more transport.Gathering
				for _, p := range got.Globs[0].Paths {
					more.Files = append(more.Files, transport.FileRead{Path: p})
				}
				check(tr.Gather(b.Context(), more))
			}},
			{"one-session", func(b *testing.B) {
				tr := dial(b, f.config())
				defer tr.Close()
				g1 := g
				g1.GlobReads = []transport.FileGlob{{Pattern: pattern}}
				got, err := tr.Gather(b.Context(), g1)
				check(got, err)
				if r := got.GlobReads[0]; r.Err != nil || len(r.Files) != 2 {
					b.Fatalf("glob read: %+v", r)
				}
			}},
			{"openssh", func(b *testing.B) {
				cmd := exec.Command(sshBin, "-F", "/dev/null", "-T", "-i", f.key.Path, "-o", "IdentitiesOnly=yes",
					"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+f.kh,
					"-o", "GlobalKnownHostsFile=/dev/null", "-o", "KexAlgorithms=curve25519-sha256",
					"-o", "LogLevel=ERROR", "-p", fmt.Sprint(f.srv.Port), "root@127.0.0.1", line.String())
				if out, err := cmd.Output(); err != nil && !bytes.Contains(out, []byte("PermitRootLogin no")) {
					b.Fatalf("ssh: %v", err)
				}
			}},
		}
		for _, m := range modes {
			b.Run(v.name+"/"+m.name, func(b *testing.B) {
				idle(b, f.srv)
				target0 := f.srv.ChildCPU(b)
				for b.Loop() {
					m.run(b)
				}
				idle(b, f.srv)
				b.ReportMetric(float64((f.srv.ChildCPU(b)-target0).Microseconds())/1000/float64(b.N), "target-cpu-ms/op")
			})
		}
	}
}

// benchWanted reports whether -test.bench may select a sub-benchmark under name, so that a fixture
// is started only for those that run.
func benchWanted(b *testing.B, name string) bool {
	pattern := flag.Lookup("test.bench").Value.String()
	parts := strings.Split(pattern, "/")
	for i, p := range strings.Split(name, "/") {
		if i+1 >= len(parts) {
			return true
		}
		if ok, err := regexp.MatchString(parts[i+1], p); err == nil && !ok {
			return false
		}
	}
	return true
}
