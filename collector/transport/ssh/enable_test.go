package ssh_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/collector/devicesim"
	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/collector/transport/ssh"
	"github.com/hardtrail/hardtrail/collector/transport/ssh/sshtest"
)

const enableSecret = "En4ble-S3cret-Edge"

// withEnable is a device whose login lands unprivileged and whose enable line asks for a secret,
// the way Cisco IOS (edge-rtr1> / % Bad secrets) and ASA (asa-fw1> / Invalid password) do.
func withEnable(style string) devicesim.Device {
	d := devicesim.Device{Shell: true, Enable: "enable", EnableSecret: enableSecret,
		Outputs: map[string]string{"show running-config": "hostname r1\nenable secret 9 $9$abc\n", "show version": "v1\n"}}
	switch style {
	case "ios":
		d.UserPrompt, d.Prompt = "edge-rtr1>", "edge-rtr1#"
		d.PagerOff, d.Unknown, d.BadSecret = []string{"terminal length 0"}, "% Invalid input detected at '^' marker.\n", "% Bad secrets\n\n"
	case "asa":
		d.UserPrompt, d.Prompt = "asa-fw1> ", "asa-fw1# "
		d.PagerOff, d.Unknown = []string{"terminal pager 0"}, "ERROR: % Invalid input detected at '^' marker.\n"
		d.WrongSecret, d.BadSecret = "Invalid password\n", "Access denied.\n"
	}
	return d
}

var (
	iosAnyPrompt = regexp.MustCompile(`^(?P<host>[\w.-]+)[>#]$`)
	asaAnyPrompt = regexp.MustCompile(`^(?P<host>[\w.-]+)(?:/[\w.-]+)*[>#] ?$`)
)

// TestRunShellEnable: a session that lands unprivileged enters privileged mode with the secret
// from a file or a variable, never typed where it could be echoed or stored; a wrong secret
// and a missing one fail with typed errors that say what to do.
func TestRunShellEnable(t *testing.T) {
	leakCheck(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "enable")
	if err := os.WriteFile(good, []byte(enableSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "wrong")
	if err := os.WriteFile(bad, []byte("not-the-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HARDTRAIL_TEST_ENABLE", enableSecret)
	cases := []struct {
		name, style string
		file, env   string
		noEnable    bool // the profile has no enable line
		privileged  bool // the login lands privileged already
		want        error
		wantText    string
		secrets     int // password prompts answered
	}{
		{name: "ios file", style: "ios", file: good, secrets: 1},
		{name: "ios variable", style: "ios", env: "HARDTRAIL_TEST_ENABLE", secrets: 1},
		{name: "asa file", style: "asa", file: good, secrets: 1},
		{name: "ios wrong", style: "ios", file: bad, want: ssh.ErrEnableRefused, wantText: "asked for the secret again", secrets: 1},
		{name: "asa wrong", style: "asa", file: bad, want: ssh.ErrEnableRefused, wantText: "secret is wrong", secrets: 1},
		{name: "no secret", style: "ios", want: ssh.ErrNoEnableSecret, wantText: "set enable_secret_file or enable_secret_env"},
		{name: "unset variable", style: "asa", env: "HARDTRAIL_TEST_UNSET", wantText: "enable secret variable HARDTRAIL_TEST_UNSET is not set"},
		{name: "already privileged", style: "ios", privileged: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := withEnable(c.style)
			if c.privileged {
				d.UserPrompt = ""
			}
			srv := devicesim.Start(t, d)
			key, _ := devicesim.ClientKey(t, t.TempDir(), "id")
			tr := dial(t, ssh.Config{
				Address: "admin@" + srv.Addr, IdentityFiles: []string{key}, RawCommands: true,
				KnownHosts:       []string{sshtest.WriteKnownHosts(t, t.TempDir(), srv.KnownHostsLine())},
				CommandTimeout:   3 * time.Second,
				EnableSecretFile: c.file, EnableSecretEnv: c.env,
			})
			prompt := iosAnyPrompt
			if c.style == "asa" {
				prompt = asaAnyPrompt
			}
			sh := transport.Shell{Prompt: prompt, Setup: d.PagerOff, Enable: "enable"}
			var rs []transport.BatchResult
			err := quick(t, 2*time.Second, func() error {
				var err error
				rs, err = tr.RunShell(t.Context(), sh, []transport.Command{{Argv: []string{"show", "running-config"}}, {Argv: []string{"show", "version"}}})
				return err
			})
			var typed []string
			secrets := 0
			for _, r := range srv.Log() {
				switch r.Kind {
				case "line":
					typed = append(typed, r.Text)
				case "secret":
					secrets++
				}
			}
			if secrets != c.secrets {
				t.Errorf("%d password prompts answered, want %d", secrets, c.secrets)
			}
			for _, l := range typed {
				if strings.Contains(l, enableSecret) || strings.Contains(l, "not-the-secret") {
					t.Errorf("the secret was typed as a CLI line: %q", typed)
				}
			}
			if c.want != nil || c.wantText != "" {
				if err == nil {
					t.Fatalf("no error; typed %q", typed)
				}
				if c.want != nil && !errors.Is(err, c.want) {
					t.Errorf("error %v, want %v", err, c.want)
				}
				if !strings.Contains(err.Error(), c.wantText) {
					t.Errorf("error %q does not say %q", err, c.wantText)
				}
				t.Logf("%v", err)
				wantStage(t, err, ssh.StageAuth)
				for _, s := range []string{enableSecret, "not-the-secret"} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("the error shows the secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r := rs[0]; r.Err != nil || string(r.Result.Stdout) != d.Outputs["show running-config"] {
				t.Errorf("privileged command: %v %+v", r.Err, r.Result)
			}
			if r := rs[1]; r.Err != nil || string(r.Result.Stdout) != "v1\n" {
				t.Errorf("second command: %v %+v", r.Err, r.Result)
			}
			wantTyped := append([]string{"enable"}, d.PagerOff...)
			if c.privileged {
				wantTyped = d.PagerOff
			}
			wantTyped = append(wantTyped, "show running-config", "show version")
			if strings.Join(typed, "|") != strings.Join(wantTyped, "|") {
				t.Errorf("device saw %q, want %q", typed, wantTyped)
			}
		})
	}
}
