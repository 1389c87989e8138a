package main

import (
	"archive/tar"
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// htIn runs the binary in dir and returns stdout, stderr and the exit code.
func htIn(t testing.TB, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HARDTRAIL_CONFIG=", "HARDTRAIL_STORE=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func runTool(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// listTree lists every path under dir, for checking that nothing was written there.
func listTree(t testing.TB, dir string) string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// tarEntry and the helpers below take a bundle apart and put it back together, to alter
// one file inside it.
type tarEntry = testutil.TarEntry

func readBundle(t testing.TB, file string) []tarEntry {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return testutil.ReadTarGz(t, data)
}

func writeBundle(t testing.TB, file string, es []tarEntry) {
	t.Helper()
	if err := os.WriteFile(file, testutil.WriteTarGz(t, es), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A real incident, end to end: sshd's effective configuration from the real `sshd -T` over a
// config and drop-in directory the test writes, and an iptables ruleset in a network
// namespace the test creates; both change between the before and after snapshots. The bundle
// verifies, GNU patch applies its combined diff to give after/ byte for byte, and any altered
// byte is named.
func TestEvidenceEndToEnd(t *testing.T) {
	testutil.Root(t)
	sshd := testutil.Tool(t, "sshd")
	sshKeygen := testutil.Tool(t, "ssh-keygen")
	ip := testutil.Tool(t, "ip")
	iptables := testutil.Tool(t, "iptables")
	iptablesSave := testutil.Tool(t, "iptables-save")
	patch := testutil.Tool(t, "patch")
	diffTool := testutil.Tool(t, "diff")
	tarTool := testutil.Tool(t, "tar")

	dir := t.TempDir()
	ns := fmt.Sprintf("ht-evidence-%d", os.Getpid())
	runTool(t, dir, ip, "netns", "add", ns)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })

	runTool(t, dir, sshKeygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "hostkey"))
	dropins := filepath.Join(dir, "sshd_config.d")
	sshdConfig := filepath.Join(dir, "sshd_config")
	write(t, sshdConfig, fmt.Sprintf("Include %s/*.conf\nHostKey %s/hostkey\n", dropins, dir))
	write(t, filepath.Join(dropins, "40-legacy.conf"), "X11Forwarding yes\n")
	write(t, filepath.Join(dropins, "50-hardening.conf"), "PasswordAuthentication yes\nPermitRootLogin yes\n")
	store := filepath.Join(dir, "h.db")
	cfg := filepath.Join(dir, "hardtrail.toml")
	write(t, cfg, fmt.Sprintf(`store = %q
[[target]]
name = "web1"
profiles = ["sshd-test"]
[[target]]
name = "fw1"
profiles = ["netns-firewall"]

[[profile]]
name = "sshd-test"
[[profile.source]]
name = "sshd/effective"
command = [%q, "-T", "-f", %q]
[[profile.source]]
name = "sshd/config"
files = [%q, "%s/*.conf"]
[[profile.source]]
name = "tool/missing"
command = ["/nonexistent/hardtrail-test-tool"]

[[profile]]
name = "netns-firewall"
[[profile.source]]
name = "firewall/iptables"
command = [%q, "netns", "exec", %q, %q]
normalise = ["iptables-save"]
`, store, sshd, sshdConfig, sshdConfig, dropins, ip, ns, iptablesSave))
	write(t, filepath.Join(dir, "rules", "inc.toml"), `
[[rule]]
id = "inc7-sshd-no-passwords"
title = "SSH does not accept passwords"
severity = "high"
controls = ["ISO27001:2022 A.8.5"]
incidents = ["INC-7"]
targets = ["web1"]
[rule.sshd]
option = "passwordauthentication"
equals = "no"

[[rule]]
id = "inc7-telnet-dropped"
title = "Telnet is dropped"
severity = "high"
controls = ["ISO27001:2022 A.8.20"]
incidents = ["INC-7"]
targets = ["fw1"]
[rule.firewall]
family = "iptables"
chain = "INPUT"
rule_present = "--dport 23 -j DROP"
`)
	rulesDir := filepath.Join(dir, "rules")
	keys := filepath.Join(dir, "keys")
	testutil.Must(t, os.Mkdir(keys, 0o700))
	mustHT(t, "keygen", "-o", filepath.Join(keys, "evidence"))
	key, pub := filepath.Join(keys, "evidence"), filepath.Join(keys, "evidence.pub")

	mustHT(t, "--config", cfg, "snapshot", "--incident", "INC-7", "--phase", "before", "--by", "alice", "--note", "telnet open, passwords allowed")
	write(t, filepath.Join(dropins, "50-hardening.conf"), "PasswordAuthentication no\nPermitRootLogin no\n")
	write(t, filepath.Join(dropins, "60-new.conf"), "MaxAuthTries 3\n")
	write(t, filepath.Join(dropins, "70-empty.conf"), "")
	testutil.Must(t, os.Remove(filepath.Join(dropins, "40-legacy.conf")))
	runTool(t, dir, ip, "netns", "exec", ns, iptables, "-A", "INPUT", "-p", "tcp", "--dport", "23", "-j", "DROP")
	mustHT(t, "--config", cfg, "snapshot", "--incident", "INC-7", "--phase", "after", "--by", "bob", "--note", "CHG-12")

	out := filepath.Join(dir, "out")
	testutil.Must(t, os.Mkdir(out, 0o755))
	bundle := filepath.Join(out, "INC-7.tar.gz")
	stdout := mustHT(t, "--config", cfg, "evidence", "export", "INC-7", "-o", bundle, "--sign-key", key, "--rules", rulesDir)
	// Verified: each target's applicable linked rule passes; the rule that skips a target (its
	// targets glob leaves the target out) neither proves nor disproves the fix there.
	if !strings.Contains(stdout, "incident INC-7 (verified), targets fw1, web1") || !strings.Contains(stdout, "signed by SHA256:") {
		t.Errorf("export:\n%s", stdout)
	}
	// The same evidence gives the same bytes; only the bundle was written.
	again := filepath.Join(out, "again.tar.gz")
	mustHT(t, "--config", cfg, "evidence", "export", "INC-7", "-o", again, "--sign-key", key, "--rules", rulesDir)
	b1, _ := os.ReadFile(bundle)
	b2, _ := os.ReadFile(again)
	if !bytes.Equal(b1, b2) {
		t.Error("two exports of the same evidence differ")
	}
	if got := listTree(t, out); got != strings.Join([]string{out, bundle, again}, "\n") {
		t.Errorf("export wrote more than the bundle:\n%s", got)
	}

	stdout = mustHT(t, "evidence", "verify", bundle, "--pubkey", pub)
	if !strings.Contains(stdout, "ok: "+bundle+": incident INC-7 (verified now; never regressed since the fix)") || !strings.Contains(stdout, "signature: good, signed by SHA256:") {
		t.Errorf("verify:\n%s", stdout)
	}
	if stdout := mustHT(t, "evidence", "verify", bundle); !strings.Contains(stdout, "signature: NOT CHECKED (no --pubkey)") {
		t.Errorf("verify without a key:\n%s", stdout)
	}

	// GNU tar extracts it; GNU patch applies the combined diff inside before/ to give after/.
	x := filepath.Join(dir, "x")
	testutil.Must(t, os.Mkdir(x, 0o755))
	runTool(t, x, tarTool, "-xzf", bundle)
	top := filepath.Join(x, "INC-7")
	work := filepath.Join(x, "work")
	runTool(t, x, "cp", "-a", filepath.Join(top, "before"), work)
	runTool(t, work, patch, "-p1", "--batch", "--no-backup-if-mismatch", "-i", filepath.Join(top, "diff", "combined.diff"))
	if out, err := exec.Command(diffTool, "-r", work, filepath.Join(top, "after")).CombinedOutput(); err != nil {
		t.Errorf("patched before/ differs from after/: %v\n%s", err, out)
	}
	// The artifacts are the real captures, byte for byte as stored.
	afterSSHD, _ := os.ReadFile(filepath.Join(top, "after", "web1", "sshd", "effective"))
	beforeSSHD, _ := os.ReadFile(filepath.Join(top, "before", "web1", "sshd", "effective"))
	if !bytes.Contains(beforeSSHD, []byte("\npasswordauthentication yes\n")) || !bytes.Contains(afterSSHD, []byte("\npasswordauthentication no\n")) {
		t.Errorf("sshd -T captures:\nbefore:\n%s\nafter:\n%s", beforeSSHD, afterSSHD)
	}
	if stored := mustHT(t, "--config", cfg, "show", "INC-7:after:web1", "sshd/effective"); stored != string(afterSSHD) {
		t.Error("after/web1/sshd/effective is not the stored artifact")
	}
	if fw, _ := os.ReadFile(filepath.Join(top, "after", "fw1", "firewall", "iptables")); !bytes.Contains(fw, []byte("-A INPUT -p tcp -m tcp --dport 23 -j DROP")) {
		t.Errorf("after/fw1/firewall/iptables:\n%s", fw)
	}
	if _, err := os.Stat(filepath.Join(top, "after", "web1", "tool", "missing")); !os.IsNotExist(err) {
		t.Error("an unavailable artifact was written as a file")
	}
	manifest, _ := os.ReadFile(filepath.Join(top, "manifest.json"))
	if !bytes.Contains(manifest, []byte(`"unavailable": "not installed: /nonexistent/hardtrail-test-tool"`)) {
		t.Error("manifest does not list the unavailable artifact with its reason")
	}
	report, _ := os.ReadFile(filepath.Join(top, "report.md"))
	for _, want := range []string{
		"| Status | **verified now; never regressed since the fix** |",
		"## Target web1: verified", "## Target fw1: verified",
		"| `inc7-sshd-no-passwords` | high | fail | pass | pass | SSH does not accept passwords |",
		"| `inc7-telnet-dropped` | high | fail | pass | pass | Telnet is dropped |",
		"| tagged before | web1 |", "| alice (as ", " | telnet open, passwords allowed |", "| bob (as ", " | CHG-12 |",
		"+passwordauthentication no", "+-A INPUT -p tcp -m tcp --dport 23 -j DROP",
	} {
		if !bytes.Contains(report, []byte(want)) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	var junit struct {
		Suites []struct {
			Name  string `xml:"name,attr"`
			Tests int    `xml:"tests,attr"`
		} `xml:"testsuite"`
	}
	raw, _ := os.ReadFile(filepath.Join(top, "results.junit.xml"))
	if err := xml.Unmarshal(raw, &junit); err != nil {
		t.Fatal(err)
	}
	var suites []string
	for _, s := range junit.Suites {
		suites = append(suites, fmt.Sprintf("%s:%d", s.Name, s.Tests))
	}
	if got := strings.Join(suites, " "); got != "fw1:before:2 fw1:after:2 fw1:newest:2 web1:before:2 web1:after:2 web1:newest:2" {
		t.Errorf("JUnit suites: %s", got)
	}

	// Packed again by GNU tar (its own order, owners and format), it still verifies.
	repacked := filepath.Join(dir, "repacked.tar.gz")
	y := filepath.Join(dir, "y")
	testutil.Must(t, os.Mkdir(y, 0o755))
	runTool(t, y, tarTool, "-xzf", bundle)
	runTool(t, y, tarTool, "-czf", repacked, "INC-7")
	mustHT(t, "evidence", "verify", repacked, "--pubkey", pub)

	// One byte altered inside the archive: verify names that file.
	alter := func(name string) string {
		es := readBundle(t, bundle)
		found := false
		for i := range es {
			if es[i].H.Name == name {
				d := bytes.Clone(es[i].Data)
				d[len(d)/2] ^= 0x01
				es[i].Data, found = d, true
			}
		}
		if !found {
			t.Fatalf("no entry %s", name)
		}
		p := filepath.Join(dir, "altered.tar.gz")
		writeBundle(t, p, es)
		return p
	}
	for _, tc := range []struct{ entry, err string }{
		{"INC-7/after/web1/sshd/effective", "INC-7/after/web1/sshd/effective: sha256 mismatch"},
		{"INC-7/diff/web1/sshd/effective.diff", "INC-7/diff/web1/sshd/effective.diff: sha256 mismatch"},
		{"INC-7/diff/combined.diff", "INC-7/diff/combined.diff: sha256 mismatch"},
		{"INC-7/manifest.json", "INC-7/manifest.json: signature does not verify"},
	} {
		t.Run("altered "+tc.entry, func(t *testing.T) {
			_, errOut, code := ht(t, "evidence", "verify", alter(tc.entry), "--pubkey", pub)
			if code != 1 || !strings.Contains(errOut, tc.err) {
				t.Errorf("exit %d, stderr %q, want 1 and %q", code, errOut, tc.err)
			}
		})
	}
	// Another key: the signature fails.
	mustHT(t, "keygen", "-o", filepath.Join(keys, "other"))
	if _, errOut, code := ht(t, "evidence", "verify", bundle, "--pubkey", filepath.Join(keys, "other.pub")); code != 1 || !strings.Contains(errOut, "INC-7/manifest.json: signature does not verify with key") {
		t.Errorf("wrong key: exit %d, %s", code, errOut)
	}
	// Unreadable input: exit 2.
	truncated := filepath.Join(dir, "truncated.tar.gz")
	testutil.Must(t, os.WriteFile(truncated, b1[:len(b1)*2/3], 0o644))
	notGzip := filepath.Join(dir, "report.md")
	testutil.Must(t, os.WriteFile(notGzip, report, 0o644))
	for _, f := range []string{truncated, notGzip} {
		if _, errOut, code := ht(t, "evidence", "verify", f, "--pubkey", pub); code != 2 || !strings.Contains(errOut, "cannot read the bundle") {
			t.Errorf("%s: exit %d, %s", f, code, errOut)
		}
	}
}

// Hostile archives are refused, and verify writes nothing, anywhere.
func TestEvidenceVerifyHostile(t *testing.T) {
	base := t.TempDir()
	cwd := filepath.Join(base, "a", "b")
	testutil.Must(t, os.MkdirAll(cwd, 0o755))
	abs := filepath.Join(base, "abs-evil")
	evil := func(name string, hs ...*tar.Header) string {
		var es []tarEntry
		for _, h := range hs {
			es = append(es, tarEntry{H: h, Data: []byte("pwned\n")})
		}
		p := filepath.Join(base, name+".tar.gz")
		writeBundle(t, p, es)
		return p
	}
	file := func(name string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}
	}
	before := listTree(t, base)
	for _, tc := range []struct {
		name, archive, err string
	}{
		{"parent", evil("parent", &tar.Header{Name: "INC-7/", Typeflag: tar.TypeDir, Mode: 0o755}, file("INC-7/../evil")), `INC-7/../evil: a path with ".."`},
		{"parent first", evil("parent-first", file("../evil")), `../evil: a path with ".."`},
		{"absolute", evil("absolute", file(abs)), abs + ": an absolute path"},
		{"symlink", evil("symlink", &tar.Header{Name: "INC-7/", Typeflag: tar.TypeDir, Mode: 0o755},
			&tar.Header{Name: "INC-7/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow", Mode: 0o777}), `INC-7/link: a link (to "/etc/shadow")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := htIn(t, cwd, "evidence", "verify", tc.archive)
			if code != 1 || !strings.Contains(errOut, tc.err) {
				t.Errorf("exit %d, stderr %q, want 1 and %q", code, errOut, tc.err)
			}
		})
	}
	// Only the archives the test wrote are new.
	after := listTree(t, base)
	for _, line := range strings.Split(after, "\n") {
		if !strings.Contains(before, line) && !strings.HasSuffix(line, ".tar.gz") {
			t.Errorf("written during verify: %s", line)
		}
	}
	if _, err := os.Stat(abs); !os.IsNotExist(err) {
		t.Errorf("%s exists", abs)
	}
}

// Export and keygen refuse what they cannot do with exit 2, and leave nothing behind.
func TestEvidenceErrors(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "etc.conf")
	write(t, conf, "PermitRootLogin yes\n")
	store := filepath.Join(dir, "h.db")
	cfg := filepath.Join(dir, "hardtrail.toml")
	write(t, cfg, fmt.Sprintf(`store = %q
[[target]]
name = "web1"
profiles = ["one"]
[[profile]]
name = "one"
[[profile.source]]
name = "etc/conf"
files = [%q]
`, store, conf))
	mustHT(t, "--config", cfg, "snapshot", "--incident", "INC-8", "--phase", "before", "--by", "alice")
	out := filepath.Join(dir, "out")
	testutil.Must(t, os.Mkdir(out, 0o755))
	key := filepath.Join(dir, "k")
	mustHT(t, "keygen", "-o", key)
	loose := filepath.Join(dir, "loose")
	data, _ := os.ReadFile(key)
	testutil.Must(t, os.WriteFile(loose, data, 0o644))
	pubCopy := filepath.Join(dir, "pub-as-private")
	data, _ = os.ReadFile(key + ".pub")
	testutil.Must(t, os.WriteFile(pubCopy, data, 0o600))
	missingStore := filepath.Join(dir, "nostore", "h.db")
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--config", cfg, "evidence", "export", "INC-404", "-o", filepath.Join(out, "b.tar.gz")}, "unknown incident INC-404"},
		{[]string{"--config", cfg, "evidence", "export", "INC-8", "-o", filepath.Join(out, "b.tar.gz")}, "incident INC-8: no target has both a before and an after snapshot"},
		{[]string{"--config", cfg, "evidence", "export", "9-bad", "-o", filepath.Join(out, "b.tar.gz")}, `incident ID "9-bad" is invalid`},
		{[]string{"--config", cfg, "evidence", "export", "INC-8"}, "-o FILE.tar.gz is required"},
		{[]string{"--config", cfg, "evidence", "export", "INC-8", "-o", filepath.Join(out, "b.tar.gz"), "--sign-key", loose}, "readable by others"},
		{[]string{"--config", cfg, "evidence", "export", "INC-8", "-o", filepath.Join(out, "b.tar.gz"), "--sign-key", pubCopy}, `want "PRIVATE KEY"`},
		{[]string{"--store", missingStore, "evidence", "export", "INC-8", "-o", filepath.Join(out, "b.tar.gz")}, "does not exist: nothing to export"},
		{[]string{"keygen", "-o", key}, "already exists"},
		{[]string{"keygen"}, "-o PREFIX is required"},
		{[]string{"evidence", "verify", filepath.Join(dir, "none.tar.gz")}, "no such file"},
		{[]string{"evidence", "verify", filepath.Join(dir, "none.tar.gz"), "--pubkey", key}, `want "PUBLIC KEY"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, errOut, code := ht(t, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.err) {
				t.Errorf("exit %d, stderr %q, want 2 and %q", code, errOut, tc.err)
			}
		})
	}
	if got := listTree(t, out); got != out {
		t.Errorf("a failed export left files:\n%s", got)
	}
	if _, err := os.Stat(filepath.Dir(missingStore)); !os.IsNotExist(err) {
		t.Error("export created a store")
	}
	// An after snapshot, then -o into a directory that does not exist.
	write(t, conf, "PermitRootLogin no\n")
	mustHT(t, "--config", cfg, "snapshot", "--incident", "INC-8", "--phase", "after", "--by", "bob")
	_, errOut, code := ht(t, "--config", cfg, "evidence", "export", "INC-8", "-o", filepath.Join(dir, "missing", "b.tar.gz"))
	if code != 2 || !strings.Contains(errOut, "missing does not exist") {
		t.Errorf("missing directory: exit %d, %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Error("export created the missing directory")
	}
	// Now it exports, unsigned, and verifies; with a key the unsigned bundle fails.
	b := filepath.Join(out, "b.tar.gz")
	if stdout := mustHT(t, "--config", cfg, "evidence", "export", "INC-8", "-o", b); !strings.Contains(stdout, "not signed") {
		t.Errorf("unsigned export:\n%s", stdout)
	}
	if stdout := mustHT(t, "evidence", "verify", b); !strings.Contains(stdout, "signature: none") {
		t.Errorf("verify unsigned:\n%s", stdout)
	}
	if _, errOut, code := ht(t, "evidence", "verify", b, "--pubkey", key+".pub"); code != 1 || !strings.Contains(errOut, "INC-8/manifest.json.sig: missing: the bundle is not signed") {
		t.Errorf("unsigned with --pubkey: exit %d, %s", code, errOut)
	}
	st, _ := os.Stat(b)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("bundle mode %v", st.Mode())
	}
}
