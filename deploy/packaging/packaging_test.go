// Package packaging tests the .deb and .rpm that `make package` builds by installing them.
package packaging

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// build runs `make package` for amd64 at version v into dist and returns the .deb and .rpm.
func build(t *testing.T, dist, v string) (deb, rpm string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Tool(t, "make"), "-C", "../..", "package",
		"ARCHES=amd64", "DIST="+dist, "PKG_VERSION="+v, "REVISION=test-revision-"+v)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, out)
	}
	deb = filepath.Join(dist, "hardtrail_"+v+"_amd64.deb")
	rpm = filepath.Join(dist, "hardtrail-"+v+".x86_64.rpm")
	for _, p := range []string{deb, rpm} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("make package did not write %s: %v", p, err)
		}
	}
	return deb, rpm
}

// file is what an installed path must be.
type file struct {
	path, owner, group string
	mode               os.FileMode // permission bits, plus os.ModeDir for directories
}

// installed lists every path the package installs or makes, with its owner and mode.
var installed = []file{
	{"/usr/bin/hardtrail", "root", "root", 0o755},
	{"/usr/lib/systemd/system/hardtrail-agent.service", "root", "root", 0o644},
	{"/usr/lib/systemd/system/hardtrail-agent.service.d/sudo.conf", "root", "root", 0o644},
	{"/etc/sudoers.d/hardtrail", "root", "root", 0o440},
	{"/etc/hardtrail", "root", "root", os.ModeDir | 0o755},
	{"/etc/hardtrail/hardtrail.toml", "root", "hardtrail", 0o640},
	{"/usr/share/hardtrail/hardtrail.example.toml", "root", "root", 0o644},
	{"/usr/share/hardtrail/web-config.yml", "root", "root", 0o644},
	{"/usr/share/hardtrail/prometheus/hardtrail.rules.yml", "root", "root", 0o644},
	{"/usr/share/hardtrail/prometheus/hardtrail.rules.test.yml", "root", "root", 0o644},
	{"/usr/share/hardtrail/prometheus/prometheus.yml", "root", "root", 0o644},
	{"/usr/share/hardtrail/grafana/hardtrail.json", "root", "root", 0o644},
	{"/usr/share/hardtrail/postgres/roles.sql", "root", "root", 0o644},
	{"/usr/share/hardtrail/postgres/grants.sql", "root", "root", 0o644},
	{"/usr/share/bash-completion/completions/hardtrail", "root", "root", 0o644},
	{"/usr/share/zsh/vendor-completions/_hardtrail", "root", "root", 0o644},
	{"/usr/share/fish/vendor_completions.d/hardtrail.fish", "root", "root", 0o644},
	{"/usr/share/doc/hardtrail/copyright", "root", "root", 0o644},
	{"/var/lib/hardtrail", "hardtrail", "hardtrail", os.ModeDir | 0o700},
}

// The .deb installs a working agent: every file with its owner and mode, a system user, a
// unit systemd accepts, a snapshot taken as that user through the sudo rules; an upgrade
// keeps a changed config and the evidence; a purge leaves nothing, and keeps the evidence
// store only when asked to.
func TestDebInstallUpgradePurge(t *testing.T) {
	testutil.Root(t)
	dpkg := testutil.Tool(t, "dpkg")
	setpriv := testutil.Tool(t, "setpriv")
	analyze := testutil.Tool(t, "systemd-analyze")
	testutil.Tool(t, "sudo")
	testutil.Tool(t, "sshd")
	testutil.Tool(t, "iptables-save")
	// The test owns the machine's hardtrail package, user and /var/lib/hardtrail: refuse to
	// run where they exist already rather than purge somebody's evidence.
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "hardtrail").Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Fatalf("the hardtrail package is installed on this machine (%s): this test installs and purges it; remove it first", out)
	}
	for _, p := range []string{"/var/lib/hardtrail", "/etc/hardtrail"} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists on this machine: this test installs and purges the package, which would delete it; move it away first", p)
		}
	}
	if _, err := user.Lookup("hardtrail"); err == nil {
		t.Fatal("a user hardtrail exists on this machine: this test creates and removes it; remove it first")
	}
	t.Cleanup(func() {
		exec.Command(dpkg, "--purge", "hardtrail").Run()
		os.RemoveAll("/var/lib/hardtrail")
		os.RemoveAll("/etc/hardtrail")
		exec.Command("userdel", "hardtrail").Run()
		exec.Command("groupdel", "hardtrail").Run()
	})

	dist := t.TempDir()
	deb1, rpm1 := build(t, dist, "1.0.0")
	t.Run("rpm", func(t *testing.T) { checkRPM(t, rpm1) })

	run(t, dpkg, "-i", deb1)
	checkFiles(t)
	u, err := user.Lookup("hardtrail")
	if err != nil {
		t.Fatalf("no user hardtrail after install: %v", err)
	}
	if pw := passwdLine(t, "hardtrail"); !strings.HasSuffix(pw, ":/var/lib/hardtrail:/usr/sbin/nologin") {
		t.Errorf("user hardtrail: %s, want home /var/lib/hardtrail and shell /usr/sbin/nologin", pw)
	}
	if uid := atoi(u.Uid); uid >= 1000 || uid == 0 {
		t.Errorf("user hardtrail has uid %d, want a system uid", uid)
	}
	// Installing never enables or starts the agent.
	if m, _ := filepath.Glob("/etc/systemd/system/*.wants/hardtrail-agent.service"); len(m) > 0 {
		t.Errorf("the install enabled the agent: %v", m)
	}

	t.Run("systemd-analyze verify", func(t *testing.T) {
		cmd := exec.Command(analyze, "verify", "/usr/lib/systemd/system/hardtrail-agent.service")
		cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=warning")
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify the installed unit: %v\n%s", err, out)
		}
	})

	asAgent := func(args ...string) (string, error) {
		argv := append([]string{"--reuid", u.Uid, "--regid", u.Gid, "--init-groups", "--", "/usr/bin/hardtrail", "--config", "/etc/hardtrail/hardtrail.toml"}, args...)
		cmd := exec.Command(setpriv, argv...)
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/var/lib/hardtrail"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out := run(t, "/usr/bin/hardtrail", "version"); !strings.Contains(out, "1.0.0") || !strings.Contains(out, "test-revision-1.0.0") {
		t.Errorf("hardtrail version after install:\n%s\nwant version 1.0.0 and its revision", out)
	}
	out, err := asAgent("snapshot")
	if err != nil {
		t.Fatalf("snapshot as the user hardtrail: %v\n%s", err, out)
	}
	// The privileged artifacts came through sudo: shown as captured, not as unavailable.
	show, err := asAgent("show", "local")
	if err != nil {
		t.Fatalf("show local: %v\n%s", err, show)
	}
	for _, a := range []string{"firewall/iptables", "sshd/effective"} {
		line := lineWith(show, a)
		if line == "" {
			t.Errorf("show local has no %s:\n%s", a, show)
		} else if !strings.HasSuffix(strings.TrimSpace(line), " ok") {
			t.Errorf("%s was not captured through sudo: %s", a, line)
		}
	}
	if out, err := asAgent("store", "verify"); err != nil {
		t.Fatalf("store verify as the user hardtrail: %v\n%s", err, out)
	}
	if fi, err := os.Stat("/var/lib/hardtrail/hardtrail.db"); err != nil {
		t.Fatalf("no store in /var/lib/hardtrail: %v", err)
	} else if owner(fi) != "hardtrail" || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("store %s owned by %s, want the user hardtrail and no access for others", fi.Mode(), owner(fi))
	}

	// An upgrade keeps the operator's configuration and the evidence.
	changed := append(readFile(t, "/etc/hardtrail/hardtrail.toml"), []byte("# changed by the operator\n")...)
	if err := os.WriteFile("/etc/hardtrail/hardtrail.toml", changed, 0o640); err != nil {
		t.Fatal(err)
	}
	deb2, _ := build(t, dist, "1.0.1")
	run(t, dpkg, "-i", deb2)
	if got := readFile(t, "/etc/hardtrail/hardtrail.toml"); !bytes.Equal(got, changed) {
		t.Errorf("the upgrade replaced the changed config:\n%s", got)
	}
	checkFiles(t)
	if out := run(t, "/usr/bin/hardtrail", "version"); !strings.Contains(out, "1.0.1") {
		t.Errorf("hardtrail version after the upgrade:\n%s", out)
	}
	if out, err := asAgent("store", "verify"); err != nil {
		t.Errorf("store verify after the upgrade: %v\n%s", err, out)
	}
	if out, err := asAgent("log"); err != nil || !strings.Contains(out, "local") {
		t.Errorf("the snapshot taken before the upgrade is gone: %v\n%s", err, out)
	}

	// A purge asked to keep the store keeps it and nothing else of the package.
	if err := os.WriteFile("/var/lib/hardtrail/KEEP", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, dpkg, "--purge", "hardtrail")
	if _, err := os.Stat("/var/lib/hardtrail/hardtrail.db"); err != nil {
		t.Errorf("purge with KEEP deleted the store: %v", err)
	}
	checkGone(t, "/var/lib/hardtrail")

	// A plain purge leaves nothing.
	run(t, dpkg, "-i", deb2)
	os.Remove("/var/lib/hardtrail/KEEP")
	run(t, dpkg, "--purge", "hardtrail")
	checkGone(t, "")
	if _, err := os.Lstat("/var/lib/hardtrail"); err == nil {
		t.Error("purge left /var/lib/hardtrail")
	}
	if _, err := user.Lookup("hardtrail"); err == nil {
		t.Error("purge left the user hardtrail")
	}
	if _, err := user.LookupGroup("hardtrail"); err == nil {
		t.Error("purge left the group hardtrail")
	}
}

// checkRPM reads the .rpm with rpm itself: its files, their modes and owners, its scripts.
func checkRPM(t *testing.T, rpm string) {
	bin := testutil.Tool(t, "rpm")
	list := run(t, bin, "-qp", "--qf", `[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]`, rpm)
	for _, f := range installed {
		if f.path == "/var/lib/hardtrail" || f.path == "/usr/share/doc/hardtrail/copyright" {
			continue // made by the scripts; the rpm carries the licence elsewhere
		}
		want := fmt.Sprintf("%s %s %s %s", perms(f.mode), f.owner, f.group, f.path)
		if !strings.Contains(list, want+"\n") {
			t.Errorf("rpm -qlp: no line %q in\n%s", want, list)
		}
	}
	if !strings.Contains(list, " /usr/share/licenses/hardtrail/LICENSE\n") {
		t.Errorf("rpm has no licence file:\n%s", list)
	}
	cfg := run(t, bin, "-qcp", rpm)
	for _, c := range []string{"/etc/hardtrail/hardtrail.toml", "/etc/sudoers.d/hardtrail"} {
		if !strings.Contains(cfg, c+"\n") {
			t.Errorf("rpm -qcp: %s is not a config file:\n%s", c, cfg)
		}
	}
	scripts := run(t, bin, "-qp", "--scripts", rpm)
	for _, want := range []string{"preinstall scriptlet", "useradd --system", "postinstall scriptlet", "install -d -m 0700 -o hardtrail", "preuninstall scriptlet", "postuninstall scriptlet"} {
		if !strings.Contains(scripts, want) {
			t.Errorf("rpm -qp --scripts has no %q:\n%s", want, scripts)
		}
	}
	for _, l := range strings.Split(scripts, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "#") && (strings.Contains(l, "systemctl start") || strings.Contains(l, "systemctl enable")) {
			t.Errorf("the rpm's scripts start or enable the agent: %s", l)
		}
	}
	info := run(t, bin, "-qip", rpm)
	if !strings.Contains(info, "Version     : 1.0.0") || !strings.Contains(info, "Architecture: x86_64") {
		t.Errorf("rpm -qip:\n%s", info)
	}
}

func checkFiles(t *testing.T) {
	t.Helper()
	for _, f := range installed {
		fi, err := os.Lstat(f.path)
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		mode := fi.Mode() & (os.ModeDir | os.ModeType | os.ModePerm)
		if mode != f.mode || owner(fi) != f.owner || group(fi) != f.group {
			t.Errorf("%s: %v %s:%s, want %v %s:%s", f.path, mode, owner(fi), group(fi), f.mode, f.owner, f.group)
		}
	}
}

// checkGone fails for every installed path still there, but keep.
func checkGone(t *testing.T, keep string) {
	t.Helper()
	for _, f := range installed {
		if f.path == keep {
			continue
		}
		if _, err := os.Lstat(f.path); err == nil {
			t.Errorf("purge left %s", f.path)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput() // stdin is /dev/null: a conffile prompt fails instead of waiting
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func passwdLine(t *testing.T, name string) string {
	for _, l := range strings.Split(string(readFile(t, "/etc/passwd")), "\n") {
		if strings.HasPrefix(l, name+":") {
			return l
		}
	}
	return ""
}

func lineWith(text, word string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			return l
		}
	}
	return ""
}

func owner(fi os.FileInfo) string {
	st := fi.Sys().(*syscall.Stat_t)
	if u, err := user.LookupId(fmt.Sprint(st.Uid)); err == nil {
		return u.Username
	}
	return fmt.Sprint(st.Uid)
}

func group(fi os.FileInfo) string {
	st := fi.Sys().(*syscall.Stat_t)
	if g, err := user.LookupGroupId(fmt.Sprint(st.Gid)); err == nil {
		return g.Name
	}
	return fmt.Sprint(st.Gid)
}

// perms is a mode as rpm's FILEMODES:perms writes it, such as -rw-r--r-- or drwxr-xr-x.
func perms(m os.FileMode) string {
	s := []byte("-rwxrwxrwx")
	if m&os.ModeDir != 0 {
		s[0] = 'd'
	}
	for i := 0; i < 9; i++ {
		if m&(1<<uint(8-i)) == 0 {
			s[i+1] = '-'
		}
	}
	return string(s)
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}
