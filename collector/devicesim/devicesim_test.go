package devicesim_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/collector/devicesim"
	gossh "golang.org/x/crypto/ssh"
)

func connect(t *testing.T, s *devicesim.Server, user string, auth gossh.AuthMethod) (*gossh.Client, error) {
	t.Helper()
	return gossh.Dial("tcp", s.Addr, &gossh.ClientConfig{
		User:            user,
		Auth:            []gossh.AuthMethod{auth},
		HostKeyCallback: gossh.FixedHostKey(s.HostKey),
		Timeout:         5 * time.Second,
	})
}

func TestPasswordAuth(t *testing.T) {
	s := devicesim.Start(t, devicesim.Device{Exec: true, Users: map[string]string{"admin": "letmein"},
		Outputs: map[string]string{"show version": "v1\n"}})
	if _, err := connect(t, s, "admin", gossh.Password("wrong")); err == nil {
		t.Error("a wrong password was accepted")
	}
	c, err := connect(t, s, "admin", gossh.Password("letmein"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("show version")
	if err != nil || string(out) != "v1\n" {
		t.Errorf("exec: %q %v", out, err)
	}
}

func TestCLI(t *testing.T) {
	lines := make([]string, 30)
	for i := range lines {
		lines[i] = "line " + string(rune('a'+i%26))
	}
	s := devicesim.Start(t, devicesim.Device{
		Shell: true, Prompt: "r1#", PageLines: 10, More: " --More-- ", MoreErase: "\b\b\b\b\b\b\b\b\b\b",
		PagerOff: []string{"terminal length 0"}, Unknown: "% Invalid input\n",
		Outputs: map[string]string{"show run": strings.Join(lines, "\n") + "\n"},
	})
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := gossh.NewSignerFromKey(priv)
	c, err := connect(t, s, "admin", gossh.PublicKeys(signer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	sess, _ := c.NewSession()
	if err := sess.Run("show run"); err == nil {
		t.Error("exec accepted by a CLI-only device")
	}
	sess, _ = c.NewSession()
	if err := sess.Shell(); err == nil {
		t.Error("a shell without a terminal was accepted")
	}

	sess, _ = c.NewSession()
	if err := sess.RequestPty("vt100", 24, 80, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	in, _ := sess.StdinPipe()
	var out bytes.Buffer
	sess.Stdout = &out
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	// Two pages need two keys; the third page is the last and shows no prompt.
	io.WriteString(in, "show run\r  show bogus\nexit\n")
	sess.Wait()
	got := out.String()
	for _, want := range []string{"r1#show run\r\nline a\r\n", " --More-- \b\b\b\b\b\b\b\b\b\bline k\r\n", "line d\r\nr1#show bogus\r\n% Invalid input\r\nr1#exit\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("session output lacks %q:\n%q", want, got)
		}
	}
	if n := strings.Count(got, "--More--"); n != 2 {
		t.Errorf("%d pager prompts, want 2", n)
	}
	var typed []string
	for _, r := range s.Log() {
		if r.Kind == "line" {
			typed = append(typed, r.Text)
		}
	}
	if strings.Join(typed, "|") != "show run|show bogus|exit" {
		t.Errorf("typed %q", typed)
	}
}

func TestFileName(t *testing.T) {
	for in, want := range map[string]string{
		"show running-config": "show_running-config.txt",
		"show | grep .":       "show_grep_..txt",
		"/export terse":       "export_terse.txt",
		"show configuration | display set | no-more": "show_configuration_display_set_no-more.txt",
		"get system status | grep .":                 "get_system_status_grep_..txt",
		"pfctl -sr":                                  "pfctl_-sr.txt",
	} {
		if got := devicesim.FileName(in); got != want {
			t.Errorf("FileName(%q) = %q, want %q", in, got, want)
		}
	}
}
