package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/store"
)

// storeWithHistory writes a store of two snapshots, a link and an incident's status history.
func storeWithHistory(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "h.db")
	st, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var ids []string
	for i, c := range []string{"permitrootlogin yes\n", "permitrootlogin no\n"} {
		m := &store.Manifest{Target: "web1", Transport: "local", Started: t0, TakenAt: t0.Add(time.Duration(i) * time.Hour), Profiles: []string{"linux"}, ToolVersion: "test",
			Artifacts: []store.ArtifactEntry{{Name: "sshd/effective", Source: "sshd/effective"}}}
		sv, err := st.Save(ctx, m, [][]byte{[]byte(c)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sv.ID)
	}
	if _, err := st.Tag(ctx, store.Link{Incident: "INC-1", Phase: store.Before, Snapshot: ids[0], By: "alice"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"open", "remediated"} {
		if _, err := st.RecordStatus(ctx, store.StatusEvent{Incident: "INC-1", Target: "web1", Status: s, Snapshot: ids[1]}); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func sqlExec(t *testing.T, path, q string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q); err != nil {
		t.Fatal(err)
	}
}

// store head prints a digest that store verify --head checks: appending passes, removing the
// newest status event (the incident back to open) fails, also after the recorded heads are
// removed.
func TestStoreHeadAndVerify(t *testing.T) {
	path := storeWithHistory(t)
	out := mustHT(t, "--store", path, "store", "head")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	digest := lines[0]
	if !store.ValidHeadDigest(digest) || len(lines) != 4 || !strings.HasPrefix(lines[1], "  links 1 ") || !strings.HasPrefix(lines[2], "  snapshots/web1 2 ") || !strings.HasPrefix(lines[3], "  status_events 2 ") {
		t.Fatalf("store head:\n%s", out)
	}
	var h struct {
		Format string `json:"format"`
		Digest string `json:"digest"`
		Chains []struct {
			Chain string `json:"chain"`
			Seq   int64  `json:"seq"`
		} `json:"chains"`
	}
	if err := json.Unmarshal([]byte(mustHT(t, "--store", path, "store", "head", "--format", "json")), &h); err != nil || h.Digest != digest || h.Format != store.HeadFormat || len(h.Chains) != 3 {
		t.Fatalf("store head --format json: %+v %v", h, err)
	}
	v := mustHT(t, "--store", path, "store", "verify", "--head", digest)
	if !strings.Contains(v, "ok: 2 snapshots") || !strings.Contains(v, "extends head "+digest) || !strings.HasSuffix(v, "\nhead "+digest+"\n") {
		t.Errorf("store verify --head:\n%s", v)
	}
	// Appending is not forgery.
	mustHT(t, "--store", path, "tag", "web1", "--incident", "INC-1", "--phase", "after", "--by", "bob")
	v = mustHT(t, "--store", path, "store", "verify", "--head", digest)
	if strings.HasSuffix(v, "\nhead "+digest+"\n") || !strings.Contains(v, "extends head "+digest) {
		t.Errorf("the head did not move after a tag:\n%s", v)
	}
	sqlExec(t, path, `DELETE FROM status_events WHERE seq = 2`)
	for _, args := range [][]string{{"store", "verify"}, {"store", "verify", "--head", digest}} {
		out, _, code := ht(t, append([]string{"--store", path}, args...)...)
		if code != 1 || !strings.Contains(out, "FAIL status_events: the store does not extend head "+digest[:12]+": chain status_events ends at seq 1, the head has seq 2") {
			t.Errorf("%v after the newest status event was removed: exit %d\n%s", args, code, out)
		}
	}
	sqlExec(t, path, `DELETE FROM heads`)
	if _, _, code := ht(t, "--store", path, "store", "verify"); code != 0 {
		t.Errorf("plain verify without recorded heads: exit %d", code)
	}
	out, _, code := ht(t, "--store", path, "store", "verify", "--head", digest)
	if code != 1 || !strings.Contains(out, "FAIL heads: head "+digest+" is neither this store's head nor recorded in it") {
		t.Errorf("verify --head after the heads were removed: exit %d\n%s", code, out)
	}
	if _, errOut, code := ht(t, "--store", path, "store", "verify", "--head", "abc"); code != 2 || !strings.Contains(errOut, `--head "abc" is not a head digest`) {
		t.Errorf("a malformed --head: exit %d %s", code, errOut)
	}
}

// The forgeries that log and show once printed unnoticed now fail store verify, naming the
// table, the record and what differs.
func TestStoreVerifyNamesForgedColumns(t *testing.T) {
	path := storeWithHistory(t)
	sqlExec(t, path, `UPDATE snapshots SET taken_at = '2031-01-01T00:00:00Z', note = 'approved' WHERE seq = 2`)
	out, _, code := ht(t, "--store", path, "store", "verify")
	for _, w := range []string{`FAIL snapshots: target web1: snapshot `, `column taken_at is "2031-01-01T00:00:00Z", the manifest says "2026-03-01T11:00:00Z"`, `column note is "approved", the manifest says ""`} {
		if code != 1 || !strings.Contains(out, w) {
			t.Errorf("exit %d, output lacks %q:\n%s", code, w, out)
		}
	}
}

// log shows the newest 1,000 snapshots unless -n says how many, and says on stderr when that
// default left older ones out.
func TestLogDefaultNewest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	st, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	const n = logDefault + 1
	var newest string
	web1 := 0
	for i := range n {
		if i%3 == 1 {
			web1++
		}
		m := &store.Manifest{Target: fmt.Sprintf("web%d", i%3), Transport: "local", Started: t0, TakenAt: t0.Add(time.Duration(i) * time.Second),
			Profiles: []string{"linux"}, ToolVersion: "test", Artifacts: []store.ArtifactEntry{{Name: "a", Source: "a"}}}
		sv, err := st.Save(t.Context(), m, [][]byte{[]byte("same")})
		if err != nil {
			t.Fatal(err)
		}
		newest = sv.ID
	}
	st.Close()
	for _, c := range []struct {
		args  []string
		lines int
		note  bool
	}{
		{nil, logDefault, true},
		{[]string{"-n", "0"}, n, false},
		{[]string{"-n", "5"}, 5, false},
		{[]string{"-n", fmt.Sprint(n + 10)}, n, false},
		{[]string{"web1"}, web1, false},
	} {
		out, stderr, code := ht(t, append([]string{"--store", path, "log"}, c.args...)...)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if code != 0 || len(lines) != c.lines || strings.Contains(stderr, "-n 0 shows every one") != c.note {
			t.Errorf("log %v: exit %d, %d lines (want %d), stderr %q", c.args, code, len(lines), c.lines, stderr)
		}
		if c.args == nil && !strings.HasPrefix(lines[0], store.Short(newest)) {
			t.Errorf("log: first line %q, want the newest snapshot %s", lines[0], store.Short(newest))
		}
	}
}
