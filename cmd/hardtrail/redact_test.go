package main

import (
	"bytes"
	"compress/flate"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// Secrets that reach the collector on a command's stderr and in a profile's argv.
const (
	stderrToken = "ghp_St0derrT0kenQ9w8e7r6t5y4u3i2o1p0aZxC"
	stderrURLPw = "StderrUrlPw-7781"
	argvPw      = "ArgvPassw0rd-4412"
	argvKey     = "ArgvApiKey-99ab12cd"
	argvURLPw   = "ArgvUrlPw-3377"
	noteToken   = "glpat-N0teT0kenAbCdEf123456"
	tagNotePw   = "TagNotePw-5531"
	voidToken   = "xoxb-123456789012-VoidReasonTok"
	titleToken  = "ghp_T1tleT0kenQ9w8e7r6t5y4u3i2o1p0aZxCvB"
	recordPw    = "RecordNotePw-6620"
	ticketPw    = "TicketUrlPw-8812"
)

// A real snapshot of every redaction fixture into a real store, through the local transport:
// no fixture secret, nor one printed on stderr or written in a profile's argv, is in any stored
// byte (the database file and its WAL, every decompressed blob, manifest, result, link and
// event) or any log line, nor one typed in a snapshot's or a link's note, an incident's title,
// ticket or note, or a void's reason; every known non-secret line reads exactly as captured.
func TestNoFixtureSecretStored(t *testing.T) {
	fx := testutil.LoadRedactFixtures(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "h.db")
	files, err := filepath.Abs(fx.Dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`store = %q
[[target]]
name = "local"
profiles = ["fixtures"]
[[profile]]
name = "fixtures"
[[profile.source]]
name = "files"
files = [%q, %q]
[[profile.source]]
name = "cmd/stderr"
command = ["sh", "-c", "echo 'fetch failed: Authorization: token %s' >&2; echo 'curl: (22) 401 for https://deploy:%s@repo.example.net/x' >&2; exit 3"]
[[profile.source]]
name = "cmd/argv"
command = ["echo", "--password", %q, "--api-key=%s", "https://ci:%s@registry.example.net/"]
[[profile.source]]
name = "cmd/missing"
command = ["/nonexistent/bin/tool", "--token", %q]
`, store, files+"/*", files+"/.*", stderrToken, stderrURLPw, argvPw, argvKey, argvURLPw, argvPw)), 0o600)
	rules := filepath.Join(dir, "rules.toml")
	os.WriteFile(rules, []byte(`[[rule]]
id = "REDIS-AUTH"
title = "Redis asks for a password"
severity = "high"
controls = ["ISO27001:2022 A.8.5"]
[rule.file]
path = "files`+files+`/redis.conf"
present = '(?m)^requirepass \S+'
`), 0o600)
	var logs strings.Builder
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := ht(t, append([]string{"--config", cfg, "--log-level", "debug"}, args...)...)
		logs.WriteString(errOut)
		if code != 0 {
			t.Fatalf("hardtrail %v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	run("incident", "open", "INC-1", "--title", "leaked CI token "+titleToken, "--ticket", "https://ops:"+ticketPw+"@tickets.example/T-1")
	run("incident", "note", "INC-1", "rotated; the old admin_password="+recordPw+" is dead")
	run("snapshot", "--incident", "INC-1", "--phase", "before", "--note", "rotated the CI token "+noteToken)
	run("snapshot")
	var link struct{ ID string }
	if err := json.Unmarshal([]byte(run("--format", "json", "tag", "local", "--incident", "INC-1", "--phase", "after", "--note", "db_password="+tagNotePw+" was reset")), &link); err != nil || link.ID == "" {
		t.Fatalf("tag: %v %+v", err, link)
	}
	run("tag", "--void", link.ID, "--reason", "wrong snapshot; the token "+voidToken+" was still live")
	run("check", "--rules", rules)
	run("--format", "json", "check", "--snapshot", "local", "--rules", rules)

	secrets := append(fx.AllSecrets(), stderrToken, stderrURLPw, argvPw, argvKey, argvURLPw, noteToken, tagNotePw, voidToken, titleToken, recordPw, ticketPw)
	if len(secrets) < 60 {
		t.Fatalf("only %d secrets", len(secrets))
	}
	grep := func(where string, b []byte) {
		t.Helper()
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("secret %q found in %s", s, where)
			}
		}
	}
	for _, f := range []string{store, store + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		grep(f, b)
	}
	// Every value of every table, and every compressed one decompressed.
	db, err := sql.Open("sqlite", "file:"+store+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables := map[string]int{}
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		names = append(names, n)
	}
	rows.Close()
	inflated := 0
	for _, n := range names {
		rs, err := db.Query(`SELECT * FROM "` + n + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rs.Columns()
		for rs.Next() {
			tables[n]++
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rs.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				var b []byte
				switch x := v.(type) {
				case []byte:
					b = x
				case string:
					b = []byte(x)
				default:
					continue
				}
				where := n + "." + cols[i]
				grep(where, b)
				if z, err := io.ReadAll(flate.NewReader(bytes.NewReader(b))); err == nil && len(z) > 0 {
					inflated++
					grep(where+" (decompressed)", z)
				}
			}
		}
		rs.Close()
	}
	for _, n := range []string{"blobs", "snapshots", "links", "results"} {
		if tables[n] == 0 {
			t.Errorf("table %s is empty: the test did not store what it means to grep (%v)", n, tables)
		}
	}
	if inflated < len(fx.Files()) {
		t.Errorf("only %d values decompressed", inflated)
	}
	grep("the log", []byte(logs.String()))
	if !strings.Contains(logs.String(), "level=") {
		t.Errorf("no log line was written to check:\n%s", logs.String())
	}

	// The stored artifacts read as captured where nothing is secret.
	for _, name := range fx.Files() {
		orig, err := os.ReadFile(filepath.Join(files, name))
		if err != nil {
			t.Fatal(err)
		}
		out := run("show", "local", "files"+files+"/"+name)
		fx.CheckStored(t, name, orig, []byte(out))
	}
	// The manifest holds the redacted stderr and argv, with their placeholders.
	var m struct {
		Manifest struct {
			Artifacts []struct {
				Name, Stderr, Unavailable string
				Command                   []string
			}
		}
	}
	if err := json.Unmarshal([]byte(run("--format", "json", "show", "local")), &m); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, a := range m.Manifest.Artifacts {
		switch a.Name {
		case "cmd/stderr":
			seen++
			if !strings.Contains(a.Stderr, "Authorization: token <redacted:") || !strings.Contains(a.Stderr, "https://deploy:<redacted:") {
				t.Errorf("stderr %q", a.Stderr)
			}
		case "cmd/argv":
			seen++
			if len(a.Command) != 5 || a.Command[1] != "--password" || !strings.HasPrefix(a.Command[2], "<redacted:") || !strings.HasPrefix(a.Command[3], "--api-key=<redacted:") {
				t.Errorf("argv %q", a.Command)
			}
		case "cmd/missing":
			seen++
			if !strings.HasPrefix(a.Command[2], "<redacted:") {
				t.Errorf("argv %q", a.Command)
			}
		}
	}
	if seen != 3 {
		t.Errorf("manifest lacks the command artifacts: %+v", m.Manifest.Artifacts)
	}
}

// redact check on the fixtures: everything is redacted (exit 0), what it prints holds no
// secret and keeps the non-secret lines; a file with secrets no rule knows gives each as
// FILE:LINE:COLUMN and exit 1; a source with redact_entropy redacts them; bad use exits 2.
func TestRedactCheck(t *testing.T) {
	fx := testutil.LoadRedactFixtures(t)
	var args []string
	for _, n := range fx.Files() {
		args = append(args, filepath.Join(fx.Dir, n))
	}
	store := filepath.Join(t.TempDir(), "h.db")
	out, errOut, code := ht(t, append([]string{"--store", store, "redact", "check"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d on the fixtures:\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(store + ".key"); err == nil {
		t.Error("redact check created a redaction key")
	}
	parts := strings.Split(out, "==> ")
	for _, p := range parts[1:] {
		head, body, _ := strings.Cut(p, " <==\n")
		name := filepath.Base(head)
		orig, err := os.ReadFile(head)
		if err != nil {
			t.Fatal(err)
		}
		fx.CheckStored(t, name, orig, []byte(body))
	}
	if len(parts)-1 != len(args) {
		t.Errorf("%d files printed, want %d", len(parts)-1, len(args))
	}

	dir := t.TempDir()
	leak := filepath.Join(dir, "app.ini")
	os.WriteFile(leak, []byte("[app]\nname = shop\ncookie_salt = 9fK2mQ7xLp3Zr8Vt\nlicense_key_v2 = none\nFOO=aB3dE5fG7hJ9kL1mN3pQ5rS7tV9\npassword = Tr0ub4dor&3\n"), 0o600)
	out, _, code = ht(t, "--store", store, "redact", "check", leak)
	if code != 1 {
		t.Errorf("exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{
		leak + `:3:15: looks secret but would be stored as it is: value of "cookie_salt" (9fK… 16 characters)`,
		leak + ":5:5: looks secret but would be stored as it is: high-entropy string (aB3… 27 characters)",
		"2 value(s) look secret",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Tr0ub4dor&3") || strings.Contains(out, ":6:") {
		t.Errorf("a redacted password was reported or printed:\n%s", out)
	}
	// The same file read by a source that opts in to entropy; the salt still needs a pattern.
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`[[target]]
name = "local"
[[profile]]
name = "app"
[[profile.source]]
name = "app/config"
files = [%q]
redact_entropy = true
redact = ['cookie_salt = (\S+)']
`, dir+"/*.ini")), 0o600)
	if out, errOut, code := ht(t, "--config", cfg, "--store", store, "redact", "check", "--profile", "app", leak); code != 0 || strings.Contains(out, "aB3dE5fG7hJ9kL1mN3pQ5rS7tV9") || strings.Contains(out, "9fK2mQ7xLp3Zr8Vt") {
		t.Errorf("with the app profile: exit %d\n%s%s", code, out, errOut)
	}
	var res []struct {
		Path     string
		Findings []struct{ Line, Column int }
	}
	out, _, code = ht(t, "--store", store, "--format", "json", "redact", "check", leak)
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || len(res) != 1 || len(res[0].Findings) != 2 || res[0].Findings[0].Line != 3 {
		t.Errorf("json: exit %d, %v, %+v\n%s", code, err, res, out)
	}
	for _, bad := range [][]string{
		{"redact", "check"},
		{"redact", "check", filepath.Join(dir, "missing.conf")},
		{"redact", "check", "--profile", "no-such-profile", leak},
	} {
		if _, errOut, code := ht(t, append([]string{"--store", store}, bad...)...); code != 2 || !strings.Contains(errOut, "hardtrail:") {
			t.Errorf("%v: exit %d, want 2: %s", bad, code, errOut)
		}
	}
}
