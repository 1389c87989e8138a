package rules

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// TestSSHDRealEffectiveConfig runs the real `sshd -T` over a main config whose first line
// includes a drop-in setting PasswordAuthentication no, while the main file later says yes.
// sshd keeps the first value it reads; the probe must say what sshd says.
func TestSSHDRealEffectiveConfig(t *testing.T) {
	sshd := testutil.Tool(t, "sshd")
	keygen := testutil.Tool(t, "ssh-keygen")
	// sshd -T checks its privilege separation directory even in test mode; creating it
	// needs root, reading the generated host key does not.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		testutil.Skip(t, "root", "sshd needs /run/sshd: %v", err)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "host_ed25519")
	testutil.Run(t, keygen, "-q", "-t", "ed25519", "-N", "", "-f", key)
	dropins := filepath.Join(dir, "sshd_config.d")
	if err := os.Mkdir(dropins, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("sshd_config.d/50-hardening.conf", "PasswordAuthentication no\nLoginGraceTime 45\n")
	main := write("sshd_config", "Include "+dropins+"/*.conf\n"+
		"PasswordAuthentication yes\n"+
		"PermitRootLogin yes\n"+
		"LoginGraceTime 2m\n"+
		"ClientAliveInterval 5m\n"+
		"Ciphers aes256-gcm@openssh.com,aes128-ctr,aes256-cbc\n")
	cmd := exec.CommandContext(t.Context(), sshd, "-T", "-f", main, "-h", key,
		"-C", "user=root,host=localhost,addr=127.0.0.1")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("sshd -T: %v\n%s", err, stderr)
	}
	said := parseSSHD(out)
	if got := said["passwordauthentication"]; len(got) != 1 || got[0] != "no" {
		t.Fatalf("sshd says passwordauthentication %v; the first value read (from the drop-in) must win", got)
	}
	facts := NewMemFacts("real", Artifact{Name: "sshd/effective", Command: []string{sshd, "-T"}, Content: out})

	for _, tc := range []struct {
		probe   string
		outcome Outcome
		option  string
	}{
		{"[rule.sshd]\noption = \"passwordauthentication\"\nequals = \"no\"", Pass, "passwordauthentication"},
		{"[rule.sshd]\noption = \"permitrootlogin\"\nequals = \"no\"", Fail, "permitrootlogin"},
		{"[rule.sshd]\noption = \"logingracetime\"\nmax = 60", Pass, "logingracetime"},
		{"[rule.sshd]\noption = \"clientaliveinterval\"\nmin = 1\nmax = 900", Pass, "clientaliveinterval"},
		{"[rule.sshd]\noption = \"ciphers\"\nexcludes = [\"*-cbc\"]", Fail, "ciphers"},
	} {
		r := evalOne(t, oneRule(t, "", tc.probe), facts)
		want := strings.Join(said[tc.option], "\n")
		if r.Outcome != tc.outcome || r.Actual != want {
			t.Errorf("%s: got %s with actual %q (%s); sshd says %q, want %s", tc.option, r.Outcome, r.Actual, r.Message, want, tc.outcome)
		}
	}
	t.Logf("sshd: passwordauthentication %s, logingracetime %s, clientaliveinterval %s",
		said["passwordauthentication"][0], said["logingracetime"][0], said["clientaliveinterval"][0])
}
