package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// The incident record an auditor signs off, end to end through the binary, on a real firewall
// (iptables in a network namespace) and a real sshd configuration read by sshd -T: before
// (weak), after (fixed), three revert/restore cycles captured by the CLI and by the agent,
// a signed close, a signed export and its verification; then the bundle tampered with.
func TestIncidentEvidenceEndToEnd(t *testing.T) {
	testutil.Root(t)
	ip := testutil.Tool(t, "ip")
	sshd := testutil.Tool(t, "sshd")
	keygen := testutil.Tool(t, "ssh-keygen")
	testutil.Tool(t, "iptables")
	testutil.Tool(t, "iptables-save")
	const incident = "INC-2026-0042"
	dir := t.TempDir()
	ns := fmt.Sprintf("htinc%d", os.Getpid())
	testutil.Run(t, ip, "netns", "add", ns)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	iptables := func(args ...string) {
		testutil.Run(t, ip, append([]string{"netns", "exec", ns, "iptables"}, args...)...)
	}
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	testutil.Run(t, keygen, "-q", "-t", "ed25519", "-N", "", "-f", hostKey)
	sshdConfig := filepath.Join(dir, "sshd_config")
	// Written whole (temporary file, rename), so that the agent never captures half a file.
	setPasswords := func(v string) {
		tmp := sshdConfig + ".tmp"
		os.WriteFile(tmp, []byte("HostKey "+hostKey+"\nPermitRootLogin no\nPasswordAuthentication "+v+"\n"), 0o600)
		if err := os.Rename(tmp, sshdConfig); err != nil {
			t.Fatal(err)
		}
	}
	telnet := func(from, to string) {
		iptables("-D", "INPUT", "-p", "tcp", "--dport", "23", "-j", from)
		iptables("-A", "INPUT", "-p", "tcp", "--dport", "23", "-j", to)
	}
	// The operator's SSH key and the allowed signers naming it.
	opKey := filepath.Join(dir, "id_ed25519")
	testutil.Run(t, keygen, "-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f", opKey)
	pub, _ := os.ReadFile(opKey + ".pub")
	allowed := filepath.Join(dir, "allowed_signers")
	os.WriteFile(allowed, []byte("alice@example.org namespaces=\"hardtrail\" "+string(pub)), 0o644)

	store := filepath.Join(dir, "h.db")
	rulesFile := filepath.Join(dir, "rules.toml")
	os.WriteFile(rulesFile, []byte(fmt.Sprintf(`[[rule]]
id = "inc42-no-passwords"
title = "SSH does not accept passwords"
severity = "high"
controls = ["ISO27001:2022 A.8.5"]
incidents = [%q]
[rule.sshd]
option = "passwordauthentication"
equals = "no"

[[rule]]
id = "inc42-telnet-dropped"
title = "Telnet is dropped"
severity = "high"
controls = ["ISO27001:2022 A.8.20"]
incidents = [%q]
[rule.firewall]
family = "iptables"
chain = "INPUT"
rule_absent = "--dport 23 -j ACCEPT"
`, incident, incident)), 0o600)
	cfg := filepath.Join(dir, "hardtrail.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`store = %q
rules = [%q]
[[target]]
name = "netns"
profiles = ["netns"]
timeout = "20s"
[[profile]]
name = "netns"
[[profile.source]]
name = "firewall/iptables"
command = ["ip", "netns", "exec", %q, "iptables-save"]
normalise = ["iptables-save"]
[[profile.source]]
name = "sshd/effective"
command = [%q, "-T", "-f", %q]
`, store, rulesFile, ns, sshd, sshdConfig)), 0o600)
	run := func(args ...string) string {
		t.Helper()
		return mustHT(t, append([]string{"--config", cfg}, args...)...)
	}

	// The incident: telnet open and passwords accepted; then closed and refused.
	run("incident", "open", incident, "--title", "telnet open and SSH passwords accepted", "--severity", "high",
		"--ticket", "https://tickets.example/SEC-42", "--category", "weak-remote-access", "--by", "alice")
	if _, errOut, code := ht(t, "--config", cfg, "incident", "open", strings.ToLower(incident), "--title", "again"); code != 2 || !strings.Contains(errOut, "the store has it as "+incident) {
		t.Errorf("the same ID in another case: exit %d %s", code, errOut)
	}
	iptables("-A", "INPUT", "-p", "tcp", "--dport", "23", "-j", "ACCEPT")
	setPasswords("yes")
	run("snapshot", "--incident", incident, "--phase", "before", "--by", "alice")
	// Tagging the before snapshot as after is refused: a non-change proves nothing.
	if _, errOut, code := ht(t, "--config", cfg, "tag", incident+":before", "--incident", incident, "--phase", "after"); code != 2 || !strings.Contains(errOut, "cannot be both before and after") {
		t.Errorf("same snapshot as after: exit %d %s", code, errOut)
	}
	telnet("ACCEPT", "DROP")
	setPasswords("no")
	run("snapshot")
	run("tag", "netns", "--incident", incident, "--phase", "after", "--by", "alice", "--sign-key", opKey, "--note", "CHG-42")
	run("incident", "note", incident, "root cause: the golden image enabled telnet and passwords", "--by", "alice")
	// The rules are evaluated once: from now on the store knows the incident's linked rules.
	run("check")
	listed := func(args ...string) string {
		t.Helper()
		var rows []struct {
			Incident, Status string
			Reopened         bool
		}
		if err := json.Unmarshal([]byte(run(append([]string{"incident", "list", "--format", "json"}, args...)...)), &rows); err != nil || len(rows) != 1 {
			t.Fatalf("incident list: %v %+v", err, rows)
		}
		if rows[0].Reopened {
			return rows[0].Status + " (reopened)"
		}
		return rows[0].Status
	}
	// The same status without rules, and with rules that do not name the incident.
	empty := filepath.Join(dir, "none.toml")
	os.WriteFile(empty, []byte(strings.ReplaceAll(string(mustRead(t, rulesFile)), incident, "INC-OTHER")), 0o600)
	for _, args := range [][]string{nil, {"--rules", empty}} {
		if got := mustHT(t, append([]string{"--store", store, "incident", "list", "--format", "json"}, args...)...); !strings.Contains(got, `"status": "verified"`) {
			t.Errorf("incident list --store %v: %s", args, got)
		}
	}
	if got := listed(); got != "verified" {
		t.Fatalf("after the fix: %s", got)
	}

	// Two revert/restore cycles captured by the CLI.
	for range 2 {
		telnet("DROP", "ACCEPT")
		run("snapshot")
		telnet("ACCEPT", "DROP")
		run("snapshot")
	}
	// The third by the agent.
	a := startAgent(t, []string{"--config", cfg}, "--interval", "1s")
	a.waitLog(t, `msg="cycle done"`, 1, 20*time.Second)
	setPasswords("yes")
	a.waitLog(t, `to=regressed cause="[^"]*linked rules failing: \[inc42-no-passwords\]"`, 1, 20*time.Second)
	setPasswords("no")
	a.waitLog(t, `from=regressed to=verified`, 1, 20*time.Second)
	if code := a.stop(t); code != 0 {
		t.Errorf("agent exit %d", code)
	}
	show := run("incident", "show", incident, "--allowed-signers", allowed)
	for _, want := range []string{
		"incident " + incident + ": verified now; regressed 3 times since the fix, ",
		"regression 1: first seen ", "regression 3: first seen ",
		"reverted firewall/iptables: line ", "-A INPUT -p tcp -m tcp --dport 23 -j ACCEPT",
		"rule failed: inc42-no-passwords",
		"link ", "by alice: good (SHA256:", "allowed as alice@example.org",
		"linked rules: 2, from the store",
	} {
		if !strings.Contains(show, want) {
			t.Errorf("incident show lacks %q:\n%s", want, show)
		}
	}

	// Closed only when verified, with an approver, lessons and a signature.
	lessons := filepath.Join(dir, "lessons.md")
	os.WriteFile(lessons, []byte("Build images from the hardened baseline; alert on port 23.\n"), 0o600)
	run("incident", "close", incident, "--approver", "carol", "--lessons", lessons, "--sign-key", opKey, "--by", "carol")

	// Export, signed, and verify.
	evKey := filepath.Join(dir, "ev")
	run("keygen", "-o", evKey)
	bundle := filepath.Join(dir, "b.tar.gz")
	run("evidence", "export", incident, "-o", bundle, "--sign-key", evKey)
	again := filepath.Join(dir, "b2.tar.gz")
	run("evidence", "export", incident, "-o", again, "--sign-key", evKey)
	if !bytes.Equal(mustRead(t, bundle), mustRead(t, again)) {
		t.Error("two exports of the same evidence differ")
	}
	out := run("evidence", "verify", bundle, "--pubkey", evKey+".pub", "--allowed-signers", allowed)
	if !strings.Contains(out, "verified now; regressed 3 times since the fix") || strings.Count(out, "operator signature:") != 2 {
		t.Errorf("evidence verify:\n%s", out)
	}
	entries := testutil.ReadTarGz(t, mustRead(t, bundle))
	files := map[string][]byte{}
	for _, e := range entries {
		files[strings.TrimPrefix(e.H.Name, incident+"/")] = e.Data
	}
	var m struct {
		Format    string
		StoreHead string `json:"store_head"`
		Targets   []struct {
			History struct {
				Episodes []struct {
					Reverted    []string `json:"reverted"`
					RulesFailed []string `json:"rules_failed"`
					RestoredBy  string   `json:"restored_by"`
				}
			}
		}
		Links []struct{ Signature string }
	}
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil {
		t.Fatal(err)
	}
	if m.Format != "hardtrail-evidence/2" || len(m.Targets) != 1 || len(m.StoreHead) != 64 {
		t.Fatalf("manifest: %+v", m)
	}
	// The store still extends the head the bundle names.
	run("store", "verify", "--head", m.StoreHead)
	eps := m.Targets[0].History.Episodes
	if len(eps) != 3 {
		t.Fatalf("manifest lists %d episodes", len(eps))
	}
	for i, e := range eps[:2] {
		if len(e.Reverted) == 0 || !strings.Contains(strings.Join(e.Reverted, "\n"), "--dport 23 -j ACCEPT") || e.RestoredBy == "" {
			t.Errorf("episode %d: %+v", i+1, e)
		}
	}
	if len(eps[2].RulesFailed) != 1 || !strings.Contains(strings.Join(eps[2].Reverted, "\n"), "passwordauthentication yes") || eps[2].RestoredBy == "" {
		t.Errorf("episode 3: %+v", eps[2])
	}
	report := string(files["report.md"])
	for _, want := range []string{"| Status | **verified now; regressed 3 times since the fix,", "\n| 1 | ", "\n| 2 | ", "\n| 3 | ",
		"is back: -A INPUT -p tcp -m tcp --dport 23 -j ACCEPT`", "is back: passwordauthentication yes`", "`rule inc42-no-passwords fails`",
		"| Closed | ", "approved by carol", "Build images from the hardened baseline"} {
		if !strings.Contains(report, want) {
			t.Errorf("report.md lacks %q:\n%s", want, report)
		}
	}
	// Snapshot IDs recompute from snapshots/ID.json; the operator's signatures verify with
	// ssh-keygen as an auditor would.
	sigs := 0
	for p, c := range files {
		if id, ok := strings.CutSuffix(strings.TrimPrefix(p, "snapshots/"), ".json"); ok && strings.HasPrefix(p, "snapshots/") {
			if h := sha256.Sum256(c); hex.EncodeToString(h[:]) != id {
				t.Errorf("%s hashes to %x", p, h)
			}
		}
		if base, ok := strings.CutSuffix(p, ".sig"); ok && strings.HasPrefix(p, "records/") {
			sigs++
			sigFile := filepath.Join(dir, filepath.Base(p))
			os.WriteFile(sigFile, c, 0o600)
			cmd := exec.Command(keygen, "-Y", "verify", "-f", allowed, "-I", "alice@example.org", "-n", "hardtrail", "-s", sigFile)
			cmd.Stdin = bytes.NewReader(files[base+".json"])
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("ssh-keygen -Y verify %s: %v\n%s", p, err, out)
			}
		}
	}
	if sigs != 2 {
		t.Errorf("%d operator signatures in the bundle, want the link's and the close's", sigs)
	}

	// The README's recipe for checking a bundle without hardtrail, as an auditor runs it.
	for _, tool := range []string{"tar", "openssl", "jq", "sha256sum", "patch", "diff", "bash"} {
		testutil.Tool(t, tool)
	}
	audit := filepath.Join(dir, "audit")
	os.Mkdir(audit, 0o700)
	os.WriteFile(filepath.Join(audit, "b.tar.gz"), mustRead(t, bundle), 0o600)
	os.WriteFile(filepath.Join(audit, incident+".pub"), mustRead(t, evKey+".pub"), 0o600)
	recipe := `set -eu -o pipefail
tar xzf b.tar.gz && cp "$1.pub" "$1/evidence.pub" && cp "$2" "$1/allowed_signers" && cd "$1"
openssl pkeyutl -verify -pubin -inkey evidence.pub -rawin -in manifest.json -sigfile manifest.json.sig
jq -r '.files[] | "\(.sha256)  \(.path)"' manifest.json | sha256sum -c --quiet
for f in snapshots/*.json; do [ "$(sha256sum < "$f" | cut -d' ' -f1).json" = "$(basename "$f")" ] || { echo "BAD $f"; exit 1; }; done
r=$(mktemp -d) && cp -r before/. "$r" && (cd "$r" && patch -p1 --batch --quiet < "$OLDPWD/diff/combined.diff") && diff -r "$r" after
for s in records/*.sig; do ssh-keygen -Y verify -f allowed_signers -I alice@example.org -n hardtrail -s "$s" < "${s%.sig}.json"; done
`
	cmd := exec.Command("bash", "-c", recipe, "recipe", incident, allowed)
	cmd.Dir = audit
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the README's recipe: %v\n%s", err, out)
	} else if strings.Count(string(out), "Good \"hardtrail\" signature for alice@example.org") != 2 {
		t.Errorf("the README's recipe checked no operator signature:\n%s", out)
	}

	// Tampering: results.json says a rule passed before the fix, the manifest's hash list
	// rewritten to match (no signature): the rules re-run from the bundle say otherwise.
	tampered := filepath.Join(dir, "t.tar.gz")
	rewrite := func(f func(map[string][]byte)) {
		t.Helper()
		es := testutil.ReadTarGz(t, mustRead(t, bundle))
		fs := map[string][]byte{}
		for _, e := range es {
			fs[strings.TrimPrefix(e.H.Name, incident+"/")] = e.Data
		}
		f(fs)
		var man map[string]any
		json.Unmarshal(fs["manifest.json"], &man)
		for _, fl := range man["files"].([]any) {
			fm := fl.(map[string]any)
			c := fs[fm["path"].(string)]
			h := sha256.Sum256(c)
			fm["sha256"], fm["size"] = hex.EncodeToString(h[:]), len(c)
		}
		delete(man, "signed_by")
		raw, _ := json.MarshalIndent(man, "", "  ")
		fs["manifest.json"] = append(raw, '\n')
		var out []testutil.TarEntry
		for _, e := range es {
			name := strings.TrimPrefix(e.H.Name, incident+"/")
			if name == "manifest.json.sig" {
				continue
			}
			if c, ok := fs[name]; ok && e.H.Typeflag != 0 && !strings.HasSuffix(e.H.Name, "/") {
				e.Data, e.H.Size = c, int64(len(c))
			}
			out = append(out, e)
		}
		os.WriteFile(tampered, testutil.WriteTarGz(t, out), 0o600)
	}
	rewrite(func(fs map[string][]byte) {
		fs["results.json"] = bytes.Replace(fs["results.json"], []byte(`"outcome": "fail"`), []byte(`"outcome": "pass"`), 1)
	})
	if out, errOut, code := ht(t, "evidence", "verify", tampered); code != 1 || !strings.Contains(errOut, "results.json says \"pass\", but evaluating rules/ over before/netns gives \"fail\"") {
		t.Errorf("results.json tampered: exit %d\n%s%s", code, out, errOut)
	}
	// Deleting an episode from the signed manifest breaks the signature.
	es := testutil.ReadTarGz(t, mustRead(t, bundle))
	for i := range es {
		if es[i].H.Name == incident+"/manifest.json" {
			var man map[string]any
			json.Unmarshal(es[i].Data, &man)
			h := man["targets"].([]any)[0].(map[string]any)["history"].(map[string]any)
			h["episodes"] = h["episodes"].([]any)[1:]
			raw, _ := json.MarshalIndent(man, "", "  ")
			es[i].Data = append(raw, '\n')
			es[i].H.Size = int64(len(es[i].Data))
		}
	}
	os.WriteFile(tampered, testutil.WriteTarGz(t, es), 0o600)
	if _, errOut, code := ht(t, "evidence", "verify", tampered, "--pubkey", evKey+".pub"); code != 1 || !strings.Contains(errOut, "signature does not verify") {
		t.Errorf("episode deleted: exit %d %s", code, errOut)
	}

	// A closed incident that regresses reopens, and its metric pages as before.
	telnet("DROP", "ACCEPT")
	run("snapshot")
	if got := listed(); got != "regressed (reopened)" {
		t.Errorf("closed, then regressed: %s", got)
	}
	a = startAgent(t, []string{"--config", cfg}, "--interval", "1s")
	a.waitLog(t, `msg="cycle done"`, 1, 20*time.Second)
	_, metrics, _ := get(t, "http://"+a.addr+"/metrics")
	if !strings.Contains(metrics, `hardtrail_incident_status{incident="`+incident+`",status="regressed",target="netns"} 1`) {
		t.Errorf("metrics of the reopened incident:\n%s", metrics)
	}
	a.stop(t)
	run("store", "verify")
}
