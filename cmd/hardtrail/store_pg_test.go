package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/internal/pgtest"
)

// A store value with a URL scheme other than postgres is an error, never a path; the
// password of a PostgreSQL URL is never printed.
func TestStoreLocations(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"mysql://u:hunter2@db/h", "http://u:hunter2@example.test/h", "sqlite:///x.db"} {
		_, stderr, code := htRun(t, nil, dir, "--store", v, "log")
		if code != exitUsage || !strings.Contains(stderr, "bad store location") || strings.Contains(stderr, "hunter2") {
			t.Errorf("--store %s: exit %d, %s", v, code, stderr)
		}
	}
	// Nothing listens on port 1: the error names the store without its password.
	_, stderr, code := htRun(t, nil, dir, "--store", "postgres://u:hunter2@127.0.0.1:1/h?connect_timeout=5", "log")
	if code == 0 || strings.Contains(stderr, "hunter2") || !strings.Contains(stderr, "postgres://u:xxxxx@127.0.0.1:1/h") {
		t.Errorf("unreachable PostgreSQL: exit %d, %s", code, stderr)
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Errorf("the working directory gained %v", es)
	}
	cfg := filepath.Join(dir, "h.toml")
	os.WriteFile(cfg, []byte("store = \"mysql://db/h\"\n"), 0o600)
	if _, stderr, code := htRun(t, nil, dir, "--config", cfg, "log"); code != exitUsage || !strings.Contains(stderr, "h.toml:1:") {
		t.Errorf("config store mysql://: exit %d, %s", code, stderr)
	}
}

func TestUnknownCommands(t *testing.T) {
	for _, args := range [][]string{{"nosuch"}, {"store", "nosuch"}, {"incident", "nosuch"}} {
		_, stderr, code := ht(t, args...)
		if code != exitUsage || !strings.Contains(stderr, `unknown command "nosuch"`) {
			t.Errorf("%v: exit %d, %s", args, code, stderr)
		}
	}
}

// store copy takes a store from SQLite to PostgreSQL and back, keeping its head; run again it
// copies nothing; store migrate reports the schema on both.
func TestStoreCopyCLI(t *testing.T) {
	src := storeWithHistory(t)
	c := pgtest.Shared(t)
	pg := c.DSN(c.NewDB(t, ""), c.User)
	back := filepath.Join(t.TempDir(), "back.db")
	mustHT(t, "--store", src, "tag", "web1", "--incident", "INC-1", "--phase", "after", "--by", "bob")
	head := strings.Fields(mustHT(t, "--store", src, "store", "head"))[0]
	out := mustHT(t, "store", "copy", src, pg)
	if !strings.Contains(out, "copied ") || !strings.Contains(out, "ok: ") || !strings.Contains(out, "head "+head) {
		t.Errorf("copy to PostgreSQL:\n%s", out)
	}
	if out := mustHT(t, "store", "copy", src, pg); !strings.HasPrefix(out, "copied 0 rows") {
		t.Errorf("copy again:\n%s", out)
	}
	if out := mustHT(t, "--store", pg, "store", "verify", "--head", head); !strings.Contains(out, "extends head "+head) {
		t.Errorf("verify the copy:\n%s", out)
	}
	if out := mustHT(t, "--store", pg, "log"); strings.Count(out, "web1") != 2 {
		t.Errorf("log of the copy:\n%s", out)
	}
	if out := mustHT(t, "store", "copy", pg, back); !strings.Contains(out, "head "+head) {
		t.Errorf("copy back:\n%s", out)
	}
	// What the commands show, and the evidence bundle, are the same on both engines.
	for _, args := range [][]string{{"incident", "show", "INC-1"}, {"show", "web1"}, {"diff", "web1~1", "web1"}} {
		a, b := mustHT(t, append([]string{"--store", src}, args...)...), mustHT(t, append([]string{"--store", pg}, args...)...)
		if a != b {
			t.Errorf("%v differs between the engines:\n%s\n---\n%s", args, a, b)
		}
	}
	dir := t.TempDir()
	mustHT(t, "--store", src, "evidence", "export", "INC-1", "-o", filepath.Join(dir, "sqlite.tar.gz"))
	mustHT(t, "--store", pg, "evidence", "export", "INC-1", "-o", filepath.Join(dir, "pg.tar.gz"))
	a, _ := os.ReadFile(filepath.Join(dir, "sqlite.tar.gz"))
	b, _ := os.ReadFile(filepath.Join(dir, "pg.tar.gz"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("the evidence bundles differ between the engines (%d and %d bytes)", len(a), len(b))
	}
	for _, s := range []string{pg, back} {
		if out := mustHT(t, "--store", s, "store", "migrate"); !strings.Contains(out, "schema version ") {
			t.Errorf("migrate %s:\n%s", s, out)
		}
	}
}
