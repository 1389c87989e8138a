package ssh_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/collector/devicesim"
	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/collector/transport/ssh"
	"github.com/hardtrail/hardtrail/collector/transport/ssh/sshtest"
)

var iosPrompt = regexp.MustCompile(`^(?P<host>[\w.-]+)[>#]$`)

// longConfig is a configuration long enough for several pages.
func longConfig(n int) string {
	var b strings.Builder
	b.WriteString("Building configuration...\n\nCurrent configuration : 4242 bytes\n!\n")
	for i := range n {
		fmt.Fprintf(&b, "interface GigabitEthernet0/%d\n description uplink-%d#\n!\n", i, i)
	}
	b.WriteString("end\n")
	return b.String()
}

// iosLike is a CLI-only device that refuses exec requests and pages its output.
func iosLike(t *testing.T, outputs map[string]string) devicesim.Device {
	return devicesim.Device{
		Shell:     true,
		Banner:    "\n*** Authorised access only ***\n\n",
		Prompt:    "edge-rtr1#",
		PageLines: 24,
		More:      " --More-- ",
		MoreErase: "\b\b\b\b\b\b\b\b\b\b          \b\b\b\b\b\b\b\b\b\b",
		PagerOff:  []string{"terminal length 0"},
		Unknown:   "                ^\n% Invalid input detected at '^' marker.\n\n",
		Hang:      []string{"debug all"},
		Outputs:   outputs,
	}
}

func dialDevice(t *testing.T, srv *devicesim.Server, timeout time.Duration) *ssh.Transport {
	t.Helper()
	dir := t.TempDir()
	key, _ := devicesim.ClientKey(t, dir, "id")
	return dial(t, ssh.Config{
		Address: "admin@" + srv.Addr, IdentityFiles: []string{key}, RawCommands: true,
		KnownHosts:     []string{sshtest.WriteKnownHosts(t, dir, srv.KnownHostsLine())},
		CommandTimeout: timeout,
	})
}

func TestRunShell(t *testing.T) {
	leakCheck(t)
	cfg := longConfig(100)
	outputs := map[string]string{
		"show running-config": cfg,
		"show version":        "Cisco IOS XE Software, Version 17.09.04a\nedge-rtr1 uptime is 3 weeks, 2 days\n",
		"show clock":          "*10:22:33.123 UTC Mon Jan 15 2024\n",
	}
	cases := []struct {
		name  string
		setup []string
	}{
		{"pager off", []string{"terminal length 0"}},
		{"pager answered", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := devicesim.Start(t, iosLike(t, outputs))
			tr := dialDevice(t, srv, 5*time.Second)
			rs, err := tr.RunShell(t.Context(), transport.Shell{Prompt: iosPrompt, Setup: c.setup}, []transport.Command{
				{Argv: []string{"show", "running-config"}},
				{Argv: []string{"show", "version"}},
				{Argv: []string{"show", "bogus"}},
				{Argv: []string{"show", "clock"}, Sudo: true},
				{Argv: []string{"show", "clock"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if r := rs[0]; r.Err != nil || string(r.Result.Stdout) != cfg || r.Result.ExitCode != 0 {
				t.Errorf("show running-config: err %v, got %d bytes, want %d:\n%.400q", r.Err, len(r.Result.Stdout), len(cfg), r.Result.Stdout)
			}
			if r := rs[1]; r.Err != nil || string(r.Result.Stdout) != outputs["show version"] {
				t.Errorf("show version: %v %q", r.Err, r.Result.Stdout)
			}
			if r := rs[2]; r.Err != nil || r.Result.ExitCode != 1 || len(r.Result.Stdout) != 0 || !strings.Contains(string(r.Result.Stderr), "% Invalid input") {
				t.Errorf("refused command: %v %+v", r.Err, r.Result)
			}
			if rs[3].Err == nil {
				t.Error("sudo accepted in a CLI")
			}
			if r := rs[4]; r.Err != nil || string(r.Result.Stdout) != outputs["show clock"] {
				t.Errorf("show clock: %v %q", r.Err, r.Result.Stdout)
			}
			if h := tr.Info().Hostname; h != "edge-rtr1" {
				t.Errorf("hostname %q from the prompt", h)
			}
			var lines []string
			for _, r := range srv.Log() {
				if r.Kind == "shell" {
					lines = append(lines, "<shell>")
				}
				if r.Kind == "line" {
					lines = append(lines, r.Text)
				}
			}
			want := append(append([]string{"<shell>"}, c.setup...), "show running-config", "show version", "show bogus", "show clock")
			if strings.Join(lines, "|") != strings.Join(want, "|") {
				t.Errorf("device saw %q, want %q", lines, want)
			}
		})
	}
}

// TestRunShellNoExec: a device that refuses exec requests answers through the interactive
// session, and raw exec commands fail on it.
func TestRunShellNoExec(t *testing.T) {
	leakCheck(t)
	srv := devicesim.Start(t, iosLike(t, map[string]string{"show version": "Cisco IOS\n"}))
	tr := dialDevice(t, srv, 5*time.Second)
	if _, err := tr.Run(t.Context(), transport.Command{Argv: []string{"show", "version"}}); err == nil {
		t.Error("exec request accepted by a CLI-only device")
	}
	rs, err := tr.RunShell(t.Context(), transport.Shell{Prompt: iosPrompt}, []transport.Command{{Argv: []string{"show", "version"}}})
	if err != nil || rs[0].Err != nil || string(rs[0].Result.Stdout) != "Cisco IOS\n" {
		t.Fatalf("RunShell: %v %+v", err, rs)
	}
}

// TestRunShellHang: a command that never returns its prompt is stopped at the command timeout,
// and the next command runs in a new session.
func TestRunShellHang(t *testing.T) {
	leakCheck(t)
	srv := devicesim.Start(t, iosLike(t, map[string]string{"show version": "Cisco IOS\n"}))
	tr := dialDevice(t, srv, 500*time.Millisecond)
	var rs []transport.BatchResult
	err := quick(t, 3*time.Second, func() error {
		var err error
		rs, err = tr.RunShell(t.Context(), transport.Shell{Prompt: iosPrompt, Setup: []string{"terminal length 0"}}, []transport.Command{
			{Argv: []string{"debug", "all"}},
			{Argv: []string{"show", "version"}},
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wantStage(t, rs[0].Err, ssh.StageTimeout)
	if !errors.Is(rs[0].Err, context.DeadlineExceeded) {
		t.Errorf("hang: %v", rs[0].Err)
	}
	if r := rs[1]; r.Err != nil || string(r.Result.Stdout) != "Cisco IOS\n" {
		t.Errorf("after the hang: %v %+v", r.Err, r.Result)
	}
	shells := 0
	for _, r := range srv.Log() {
		if r.Kind == "shell" {
			shells++
		}
	}
	if shells != 2 {
		t.Errorf("%d sessions, want 2", shells)
	}
}

func TestRunShellCap(t *testing.T) {
	leakCheck(t)
	cfg := longConfig(2000)
	srv := devicesim.Start(t, iosLike(t, map[string]string{"show running-config": cfg, "show clock": "10:22\n"}))
	tr := dialDevice(t, srv, 5*time.Second)
	rs, err := tr.RunShell(t.Context(), transport.Shell{Prompt: iosPrompt, Setup: []string{"terminal length 0"}}, []transport.Command{
		{Argv: []string{"show", "running-config"}, MaxBytes: 20000},
		{Argv: []string{"show", "clock"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := rs[0]; r.Err != nil || !r.Result.Truncated || len(r.Result.Stdout) > 20000 || !strings.HasPrefix(cfg, string(r.Result.Stdout[:1000])) {
		t.Errorf("capped: %v truncated=%v len=%d", r.Err, r.Result.Truncated, len(r.Result.Stdout))
	}
	if r := rs[1]; r.Err != nil || string(r.Result.Stdout) != "10:22\n" {
		t.Errorf("after the cap: %v %+v", r.Err, r.Result)
	}
}

func TestRunShellNoPrompt(t *testing.T) {
	leakCheck(t)
	d := iosLike(t, nil)
	d.Prompt = "Username: "
	srv := devicesim.Start(t, d)
	tr := dialDevice(t, srv, 1500*time.Millisecond)
	err := quick(t, 4*time.Second, func() error {
		_, err := tr.RunShell(t.Context(), transport.Shell{Prompt: iosPrompt}, []transport.Command{{Argv: []string{"show", "version"}}})
		return err
	})
	wantStage(t, err, ssh.StageTimeout)
	if !strings.Contains(err.Error(), "Username:") {
		t.Errorf("error does not show the last output: %v", err)
	}
}
