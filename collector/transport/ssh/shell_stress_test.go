package ssh_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/collector/devicesim"
	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/collector/transport/ssh"
	"github.com/hardtrail/hardtrail/collector/transport/ssh/sshtest"
)

// stressKind is one CLI style: its prompt as the device prints it, the pattern that finds it,
// the line that turns its pager off, and its pager prompt and how it erases it.
type stressKind struct {
	prompt      string
	pattern     *regexp.Regexp
	pagerOff    string
	more, erase string
}

var stressKinds = []stressKind{
	{"core-sw%d#", regexp.MustCompile(`^(?P<host>[\w.-]+)[>#]$`), "terminal length 0", " --More-- ", "\b\b\b\b\b\b\b\b\b\b          \b\b\b\b\b\b\b\b\b\b"},
	{"asa-fw%d# ", regexp.MustCompile(`^(?P<host>[\w.-]+)(?:/[\w.-]+)*[>#] ?$`), "terminal pager 0", "<--- More --->", "\r              \r"},
	{"FGT-%d # ", regexp.MustCompile(`^(?P<host>[\w.-]+)(?: \([\w.-]+\))? [#$] $`), "config system console", "--More-- ", "\r          \r"},
	{"admin@PA-%d> ", regexp.MustCompile(`^(?:[\w.-]+@)?(?P<host>[\w.-]+)(?:\([\w-]+\))?[>#] $`), "set cli pager off", "lines 1-24 --More--", "\r                    \r"},
	{"<CE-%d>", regexp.MustCompile(`^<(?P<host>[\w.-]+)>$`), "screen-length 0 temporary", "  ---- More ----", "\x1b[16D                \x1b[16D"},
}

// stressConfig is a configuration of about 20 kB whose lines end in the characters prompts
// end in, unique to device n.
func stressConfig(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Building configuration...\n\nCurrent configuration : %d bytes\n!\nhostname dev%d\n!\n", 20000+n, n)
	for i := range 220 {
		fmt.Fprintf(&b, "interface Ethernet1/%d\n description dev%d port %d >\n switchport access vlan %d\n no shutdown #\n!\n", i, n, i, 100+i%50)
	}
	b.WriteString("end\n")
	return b.String()
}

// TestRunShellStress captures 16 simulated interactive devices at once, 50 times, each device
// answering at once and cutting its output at random points (a prompt split across reads,
// output and prompt in one read): every capture must finish well within the command timeout
// and every output must be exact. Half the devices keep their pager on, so pager prompts are
// split and answered too.
func TestRunShellStress(t *testing.T) {
	leakCheck(t)
	const devices, rounds = 16, 50
	dir := t.TempDir()
	key, _ := devicesim.ClientKey(t, dir, "id")
	type dev struct {
		kind    stressKind
		tr      *ssh.Transport
		outputs map[string]string
		host    string
	}
	devs := make([]dev, devices)
	for i := range devs {
		k := stressKinds[i%len(stressKinds)]
		prompt := fmt.Sprintf(k.prompt, i)
		outputs := map[string]string{
			"show running-config": stressConfig(i),
			"show version":        fmt.Sprintf("Software Version 17.%d.1\ndev%d uptime is 3 weeks\n", i, i),
			"show clock":          fmt.Sprintf("10:22:%02d.123 UTC Mon Jan 15 2024\n", i),
		}
		srv := devicesim.Start(t, devicesim.Device{
			Shell: true, Banner: "\nAuthorised access only.\n\n", Prompt: prompt,
			PageLines: 24, More: k.more, MoreErase: k.erase,
			PagerOff: []string{k.pagerOff}, Unknown: "% Invalid input\n", Outputs: outputs,
			Chop: int64(1 + i),
		})
		d := t.TempDir()
		devs[i] = dev{kind: k, outputs: outputs, host: k.pattern.FindStringSubmatch(strings.TrimRight(prompt, "\n"))[1]}
		devs[i].tr = dial(t, ssh.Config{
			Address: "admin@" + srv.Addr, IdentityFiles: []string{key}, RawCommands: true,
			KnownHosts:     []string{sshtest.WriteKnownHosts(t, d, srv.KnownHostsLine())},
			CommandTimeout: 20 * time.Second,
		})
	}
	cmds := []transport.Command{
		{Argv: []string{"show", "running-config"}}, {Argv: []string{"show", "version"}}, {Argv: []string{"show", "clock"}},
	}
	start := time.Now()
	var slowest time.Duration
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make([]string, devices)
		took := make([]time.Duration, devices)
		for i := range devs {
			wg.Go(func() {
				d := devs[i]
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				defer cancel()
				t0 := time.Now()
				// Half the devices page their output, and the pager is answered.
				var setup []string
				if i/len(stressKinds)%2 == 0 {
					setup = []string{d.kind.pagerOff}
				}
				rs, err := d.tr.RunShell(ctx, transport.Shell{Prompt: d.kind.pattern, Setup: setup}, cmds)
				took[i] = time.Since(t0)
				if err != nil {
					errs[i] = err.Error()
					return
				}
				for j, c := range cmds {
					line := strings.Join(c.Argv, " ")
					r := rs[j]
					switch {
					case r.Err != nil:
						errs[i] += fmt.Sprintf("%s: %v; ", line, r.Err)
					case string(r.Result.Stdout) != d.outputs[line] || r.Result.ExitCode != 0:
						errs[i] += fmt.Sprintf("%s: exit %d, %d bytes, want %d: %.200q ... %.200q; ", line, r.Result.ExitCode,
							len(r.Result.Stdout), len(d.outputs[line]), r.Result.Stdout, tailOf(r.Result.Stdout, 200))
					}
				}
				if h := d.tr.Info().Hostname; h != d.host {
					errs[i] += fmt.Sprintf("hostname %q, want %q; ", h, d.host)
				}
			})
		}
		wg.Wait()
		for i, e := range errs {
			if e != "" {
				t.Errorf("round %d, device %d (%s): %s", round, i, devs[i].kind.prompt, e)
			}
			slowest = max(slowest, took[i])
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	// A hang shows as a capture that waited for its command timeout.
	if slowest > 5*time.Second {
		t.Errorf("slowest capture took %s", slowest)
	}
	t.Logf("%d rounds of %d devices in %s; slowest capture %s", rounds, devices, time.Since(start).Round(time.Millisecond), slowest.Round(time.Millisecond))
}

func tailOf(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
