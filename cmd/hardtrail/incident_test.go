package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// fileTarget is a config whose one target captures the files of a directory the test edits.
func fileTarget(t *testing.T) (cfg, dir string) {
	root := t.TempDir()
	dir = filepath.Join(root, "etc")
	testutil.Must(t, os.MkdirAll(filepath.Join(dir, "sshd_config.d"), 0o755))
	cfg = filepath.Join(root, "c.toml")
	testutil.Must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`store = %q
[[target]]
name = "web1"
profiles = ["files"]
[[profile]]
name = "files"
[[profile.source]]
name = "sshd/config"
files = [%q, %q]
`, filepath.Join(root, "h.db"), filepath.Join(dir, "sshd_config"), filepath.Join(dir, "sshd_config.d", "*.conf"))), 0o600))
	return cfg, dir
}

func TestIncidentDiffAndPatch(t *testing.T) {
	patch := testutil.Tool(t, "patch")
	cfg, dir := fileTarget(t)
	write := func(name, s string) { os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644) }
	write("sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nPort 22\nPermitRootLogin yes\nX11Forwarding yes")
	write("sshd_config.d/10-old.conf", "Ciphers aes128-cbc\n")
	mustHT(t, "--config", cfg, "snapshot", "--incident", "INC-7", "--phase", "before", "--by", "alice")
	write("sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nPort 22\nPermitRootLogin no\nX11Forwarding yes\n")
	testutil.Must(t, os.Remove(filepath.Join(dir, "sshd_config.d/10-old.conf")))
	write("sshd_config.d/50-hardening.conf", "PasswordAuthentication no\nKbdInteractiveAuthentication no\n")
	sn := snapshotJSON(t, "--config", cfg, "snapshot")
	mustHT(t, "--config", cfg, "tag", sn[0].ID[:10], "--incident", "INC-7", "--phase", "after", "--note", "hardened sshd", "--by", "bob")

	out, _, code := ht(t, "--config", cfg, "diff", "INC-7:before", "INC-7:after", "--exit-code")
	if code != 1 {
		t.Fatalf("diff --exit-code on different snapshots: exit %d", code)
	}
	for _, want := range []string{"--- a/web1/sshd/config" + dir + "/sshd_config\n", "\\ No newline at end of file", "+++ /dev/null", "--- /dev/null"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}
	// The diff applies with GNU patch -p1 inside a tree of the before artifacts.
	work := t.TempDir()
	before := filepath.Join(work, "web1")
	for _, name := range []string{"sshd_config", "sshd_config.d/10-old.conf"} {
		art := "sshd/config" + filepath.Join(dir, name)
		content := mustHT(t, "--config", cfg, "show", "INC-7:before", art)
		p := filepath.Join(before, art)
		testutil.Must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		testutil.Must(t, os.WriteFile(p, []byte(content), 0o644))
	}
	cmd := exec.Command(patch, "-p1", "--batch", "--silent")
	cmd.Dir = work
	cmd.Stdin = strings.NewReader(out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("patch -p1: %v\n%s", err, b)
	}
	for _, name := range []string{"sshd_config", "sshd_config.d/50-hardening.conf"} {
		art := "sshd/config" + filepath.Join(dir, name)
		want := mustHT(t, "--config", cfg, "show", "INC-7:after", art)
		got, err := os.ReadFile(filepath.Join(before, art))
		if err != nil || string(got) != want {
			t.Errorf("%s after patch: %q, want %q (%v)", name, got, want, err)
		}
	}
	if _, err := os.Stat(filepath.Join(before, "sshd/config"+dir+"/sshd_config.d/10-old.conf")); !os.IsNotExist(err) {
		t.Errorf("removed artifact still there after patch: %v", err)
	}
	if _, _, code := ht(t, "--config", cfg, "diff", "INC-7:after", "web1", "--exit-code"); code != 0 {
		t.Errorf("diff of equal snapshots: exit %d", code)
	}
	stat := mustHT(t, "--config", cfg, "diff", "web1~1", "web1", "--stat")
	if !strings.Contains(stat, "3 artifacts changed, 4 lines added, 3 removed") {
		t.Errorf("stat:\n%s", stat)
	}

	show := mustHT(t, "--config", cfg, "incident", "show", "INC-7")
	for _, want := range []string{"incident INC-7: remediated", "before  web1", "by alice", "by bob", "hardened sshd", "sshd_config: hardened (+2 -2), holding", "10-old.conf: hardened (+0 -1), holding"} {
		if !strings.Contains(show, want) {
			t.Errorf("incident show lacks %q:\n%s", want, show)
		}
	}
	// Revert the hardened line: regressed, naming it.
	write("sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nPort 22\nPermitRootLogin yes\nX11Forwarding yes\n")
	mustHT(t, "--config", cfg, "snapshot")
	show = mustHT(t, "--config", cfg, "incident", "show", "INC-7")
	if !strings.Contains(show, "incident INC-7: regressed") || !strings.Contains(show, "reverted: line 3 is back: PermitRootLogin yes") {
		t.Errorf("after revert:\n%s", show)
	}
	if list := mustHT(t, "--config", cfg, "incident", "list"); !strings.Contains(list, "INC-7     regressed  web1") {
		t.Errorf("incident list:\n%s", list)
	}

	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"incident", "show", "INC-404"}, "unknown incident INC-404"},
		{[]string{"incident", "show", "404"}, `incident ID "404" is invalid`},
		{[]string{"tag", "web1", "--incident", "INC 7", "--phase", "before"}, `incident ID "INC 7" is invalid`},
		{[]string{"tag", "web1", "--incident", "INC-7", "--phase", "during"}, `phase "during" is invalid`},
		{[]string{"tag", "web1", "--incident", "INC-7"}, "tag needs --incident ID and --phase before|after"},
		{[]string{"diff", "INC-404:before", "web1"}, "unknown incident INC-404"},
		{[]string{"diff", "web1~9", "web1"}, `target "web1" has only 3 snapshots, so web1~9 does not exist`},
		{[]string{"diff", "web1", "web1", "--artifact", "nope"}, `neither snapshot has an artifact "nope"`},
		{[]string{"snapshot", "--incident", "INC-7"}, "--incident and --phase go together"},
	} {
		_, errOut, code := ht(t, append([]string{"--config", cfg}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.err) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errOut, tc.err)
		}
	}
}

// A mistaken link is withdrawn by a void record: incident show still lists it, as voided,
// with who voided it and why, and the status no longer counts it.
func TestVoidLink(t *testing.T) {
	cfg, dir := fileTarget(t)
	write := func(s string) { os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(s), 0o644) }
	write("PermitRootLogin yes\n")
	mustHT(t, "--config", cfg, "snapshot", "--incident", "INC-8", "--phase", "before", "--by", "alice")
	write("PermitRootLogin yes\n# touched\n")
	var l struct {
		ID string `json:"id"`
	}
	mustHT(t, "--config", cfg, "snapshot")
	if err := json.Unmarshal([]byte(mustHT(t, "--config", cfg, "tag", "web1", "--incident", "INC-8", "--phase", "after", "--by", "bob", "--format", "json")), &l); err != nil || l.ID == "" {
		t.Fatalf("tag: %v %+v", err, l)
	}
	if _, errOut, code := ht(t, "--config", cfg, "tag", "--void", l.ID[:8]); code != 2 || !strings.Contains(errOut, "--void needs --reason") {
		t.Errorf("void without a reason: exit %d %s", code, errOut)
	}
	out := mustHT(t, "--config", cfg, "tag", "--void", l.ID[:8], "--reason", "tagged before the change was applied", "--by", "carol")
	if !strings.Contains(out, "voided link "+l.ID[:12]) {
		t.Errorf("void: %s", out)
	}
	if _, errOut, code := ht(t, "--config", cfg, "tag", "--void", l.ID, "--reason", "again"); code != 2 || !strings.Contains(errOut, "already void") {
		t.Errorf("void twice: exit %d %s", code, errOut)
	}
	show := mustHT(t, "--config", cfg, "incident", "show", "inc-8")
	for _, want := range []string{"incident INC-8: open", "link " + l.ID[:12], "VOIDED by carol", ": tagged before the change was applied", "void  by carol"} {
		if !strings.Contains(show, want) {
			t.Errorf("incident show lacks %q:\n%s", want, show)
		}
	}
	var st struct {
		Links   []struct{ Phase string }
		LinkIDs []string `json:"link_ids"`
		Voids   []struct{ Link, Reason, By string }
	}
	json.Unmarshal([]byte(mustHT(t, "--config", cfg, "incident", "show", "INC-8", "--format", "json")), &st)
	if len(st.Links) != 2 || len(st.LinkIDs) != 2 || st.LinkIDs[1] != l.ID || len(st.Voids) != 1 || st.Voids[0].Link != l.ID || st.Voids[0].By != "carol" {
		t.Errorf("incident show JSON: %+v", st)
	}
	mustHT(t, "--config", cfg, "store", "verify")
	if _, errOut, code := ht(t, "--config", cfg, "incident", "close", "INC-8", "--approver", "dave"); code != 1 || !strings.Contains(errOut, "incident INC-8 is open, not verified, so it cannot be closed") {
		t.Errorf("close while open: exit %d %s", code, errOut)
	}
	// A rule naming an incident the store does not know is warned of.
	rf := filepath.Join(t.TempDir(), "r.toml")
	os.WriteFile(rf, []byte("[[rule]]\nid = \"r1\"\ntitle = \"t\"\nseverity = \"low\"\ncontrols = [\"X\"]\nincidents = [\"INC-8\", \"INC-9\"]\n[rule.file]\npath = \"sshd/config\"\nabsent = 'x'\n"), 0o644)
	_, errOut, code := ht(t, "--config", cfg, "rules", "lint", rf)
	if code != 0 || !strings.Contains(errOut, `rule "r1" names incident INC-9, which the store does not know`) || strings.Contains(errOut, "incident INC-8,") {
		t.Errorf("rules lint: exit %d %s", code, errOut)
	}
}

// Under sudo the operator is the user who ran sudo, and the link keeps both that user and the
// effective one.
func TestWhoUnderSudo(t *testing.T) {
	cfg, dir := fileTarget(t)
	os.WriteFile(filepath.Join(dir, "sshd_config"), []byte("PermitRootLogin yes\n"), 0o644)
	mustHT(t, "--config", cfg, "snapshot")
	out, errOut, code := htRun(t, []string{"SUDO_USER=alice"}, "", "--config", cfg, "tag", "web1", "--incident", "INC-5", "--phase", "before", "--format", "json")
	if code != 0 {
		t.Fatalf("tag: exit %d %s", code, errOut)
	}
	var l struct {
		By  string
		Who struct{ Invoker, Effective string }
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	u, _ := user.Current()
	if l.By != "alice" || l.Who.Invoker != "alice" || !strings.HasPrefix(l.Who.Effective, u.Username+" (uid "+u.Uid+")") {
		t.Errorf("link by %q, who %+v", l.By, l.Who)
	}
	// --by names the operator; who ran hardtrail is kept beside it.
	out = mustHT(t, "--config", cfg, "incident", "open", "INC-5", "--title", "t", "--by", "mallory", "--format", "json")
	if !strings.Contains(out, `"by": "mallory"`) || !strings.Contains(out, `"effective": "`+u.Username) {
		t.Errorf("record: %s", out)
	}
}
