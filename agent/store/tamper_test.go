package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func problemsText(rep *VerifyReport) string {
	var all []string
	for _, p := range rep.Problems {
		all = append(all, p.String())
	}
	return strings.Join(all, "\n")
}

// verifyFails runs verification (with head when set) and requires every want in its problems.
func verifyFails(t *testing.T, s *Store, head string, want ...string) {
	t.Helper()
	rep, err := s.VerifyWith(t.Context(), VerifyOptions{Head: head})
	if err != nil {
		t.Fatal(err)
	}
	text := problemsText(rep)
	if len(rep.Problems) == 0 {
		t.Fatal("verification passed")
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("problems lack %q:\n%s", w, text)
		}
	}
}

// rewriteRecord replaces a chain row's record by edit's version of it, with its ID and index
// columns recomputed to match, as an attacker who knows the format would.
func rewriteRecord(t *testing.T, s *Store, c *chain, seq int64, edit func(map[string]any)) {
	t.Helper()
	db := rawDB(t, s.Path())
	var id string
	var raw []byte
	if err := db.QueryRow(`SELECT id, record FROM `+c.table+` WHERE seq = ?`, seq).Scan(&id, &raw); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	edit(m)
	nraw, _ := json.Marshal(m)
	nid := Hash(nraw)
	sets := []string{"id = ?", "record = ?"}
	args := []any{nid, nraw}
	for _, col := range c.columns {
		sets = append(sets, col+" = ?")
		args = append(args, m[col])
	}
	if _, err := db.Exec(`UPDATE `+c.table+` SET `+strings.Join(sets, ", ")+` WHERE id = ?`, append(args, id)...); err != nil {
		t.Fatal(err)
	}
	db.Exec(`UPDATE ` + c.table + ` SET prev = '` + nid + `' WHERE prev = '` + id + `'`)
}

// The edits that passed verification in an earlier version of the store.
func TestVerifyFindsEarlierForgeries(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, s *Store)
		head bool // verify against the fixture's final head (else plain verify)
		want []string
	}{
		{"snapshot time", func(t *testing.T, s *Store) {
			tamper(t, s.Path(), `UPDATE snapshots SET taken_at = '2031-01-01T00:00:00Z' WHERE target = 'web1' AND seq = 3`)
		}, false, []string{"snapshots: target web1: snapshot ", `column taken_at is "2031-01-01T00:00:00Z", the manifest says "2026-03-01T10:04:00Z"`}},
		{"snapshot note", func(t *testing.T, s *Store) {
			tamper(t, s.Path(), `UPDATE snapshots SET note = 'approved by CISO' WHERE target = 'web1' AND seq = 2`)
		}, false, []string{`column note is "approved by CISO", the manifest says "hardened"`}},
		{"snapshot changed count", func(t *testing.T, s *Store) {
			tamper(t, s.Path(), `UPDATE snapshots SET changed = 0 WHERE target = 'web1' AND seq = 2`)
		}, false, []string{"column changed is 0, but 1 artifacts differ from the previous snapshot"}},
		{"held span end and count", func(t *testing.T, s *Store) {
			tamper(t, s.Path(), `UPDATE held SET last_at = '2031-01-01T00:00:00Z', count = 500 WHERE seq = 3`)
		}, false, []string{"held: held record 3 (", `column last_at is "2031-01-01T00:00:00Z"`, "column count is 500, the record says 2"}},
		{"held record rewritten with its hash", func(t *testing.T, s *Store) {
			rewriteRecord(t, s, heldChain, 3, func(m map[string]any) { m["count"], m["last_at"] = 500, "2031-01-01T00:00:00Z" })
		}, false, []string{"held: target web1: snapshot ", "held record 3 (", "count is 500, but it is capture 2 of the span"}},
		{"held record appended", func(t *testing.T, s *Store) {
			db := rawDB(t, s.Path())
			var snap, target string
			db.QueryRow(`SELECT snapshot, target FROM held WHERE seq = 3`).Scan(&snap, &target)
			tx, _ := db.Begin()
			rec := &heldRecord{Format: HeldFormat, Snapshot: snap, Target: target, LastAt: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), Count: 500, MaxGapMS: 1}
			if _, _, err := appendRecord(t.Context(), tx, heldChain, rec); err != nil {
				t.Fatal(err)
			}
			tx.Commit()
		}, false, []string{"held: target web1: snapshot ", "held record 4 (", "count is 500, but it is capture 3 of the span"}},
		{"result report with its hash recomputed", func(t *testing.T, s *Store) {
			forged := []byte(`{"results":[{"rule":"x","pass":true}]}!`)
			tamper(t, s.Path(), `UPDATE results SET report = ?, report_sha256 = ? WHERE seq = 1`, compress(forged), Hash(forged))
		}, false, []string{"results: results 1 (", "column report_sha256 is "}},
		{"result record rewritten with its hash", func(t *testing.T, s *Store) {
			forged := []byte(`{"results":[{"rule":"x","pass":true}]}`)
			tamper(t, s.Path(), `UPDATE results SET report = ? WHERE seq = 3`, compress(forged))
			rewriteRecord(t, s, resultChain, 3, func(m map[string]any) { m["report_sha256"], m["report_size"] = Hash(forged), len(forged) })
		}, false, []string{"results: the store does not extend head", "record 3 of chain results is "}},
		{"results deleted", func(t *testing.T, s *Store) {
			tamper(t, s.Path(), `DELETE FROM results WHERE seq >= 2`)
		}, false, []string{"results: the store does not extend head", "chain results ends at seq 1, the head has seq 3"}},
		{"newest link deleted", func(t *testing.T, s *Store) {
			tamper(t, s.Path(), `DELETE FROM links WHERE seq = 4`)
		}, true, []string{"links: the store does not extend head", "chain links ends at seq 3, the head has seq 4"}},
		{"newest status event deleted", func(t *testing.T, s *Store) {
			tamper(t, s.Path(), `DELETE FROM status_events WHERE seq = 3`)
		}, true, []string{"status_events: the store does not extend head", "chain status_events ends at seq 2, the head has seq 3"}},
		{"newest snapshot deleted", func(t *testing.T, s *Store) {
			tamper(t, s.Path(), `DELETE FROM held WHERE snapshot IN (SELECT id FROM snapshots WHERE target = 'db1' AND seq = 2)`)
			tamper(t, s.Path(), `DELETE FROM links WHERE snapshot IN (SELECT id FROM snapshots WHERE target = 'db1' AND seq = 2)`)
			tamper(t, s.Path(), `DELETE FROM results WHERE snapshot IN (SELECT id FROM snapshots WHERE target = 'db1' AND seq = 2)`)
			tamper(t, s.Path(), `DELETE FROM snapshots WHERE target = 'db1' AND seq = 2`)
		}, true, []string{"snapshots: target db1: the store does not extend head", "chain snapshots/db1 ends at seq 1, the head has seq 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, f := copyFixture(t)
			s, err := Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			tc.edit(t, s)
			head := ""
			if tc.head {
				head = f.final
			}
			verifyFails(t, s, head, tc.want...)
		})
	}
}

// A head's digest alone checks truncation, even when the recorded heads are gone: only
// extension passes.
func TestVerifyHead(t *testing.T) {
	path, f := copyFixture(t)
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	// Appending is not forgery.
	if _, err := s.Tag(ctx, Link{Incident: "INC-3", Phase: Before, Snapshot: mustLatest(t, s, "web1"), By: "carol"}); err != nil {
		t.Fatal(err)
	}
	save(t, s, "mail1", map[string]string{"a": "b"})
	for _, h := range []string{f.early, f.final} {
		if rep, err := s.VerifyWith(ctx, VerifyOptions{Head: h}); err != nil || len(rep.Problems) > 0 {
			t.Fatalf("after appending, head %s: %v %v", short(h), err, rep.Problems)
		}
	}
	h, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Digest == f.final || Hash([]byte(h.Text())) != h.Digest || !strings.HasPrefix(h.Text(), HeadFormat+"\n") {
		t.Errorf("head %+v", h)
	}
	names := []string{}
	for _, c := range h.Chains {
		names = append(names, c.Chain)
	}
	if got := strings.Join(names, " "); got != "held incident_records links results rule_sets snapshots/db1 snapshots/mail1 snapshots/web1 status_events" {
		t.Errorf("chains %s", got)
	}
	if again, _ := s.Head(ctx); again.Digest != h.Digest {
		t.Error("the head moved without a write")
	}
	// Remove the newest link and every recorded head: plain verification cannot tell, the
	// digest can.
	tamper(t, s.Path(), `DELETE FROM links WHERE seq = (SELECT max(seq) FROM links)`)
	tamper(t, s.Path(), `DELETE FROM heads`)
	if rep, err := s.Verify(ctx); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("plain verify: %v %v", err, rep.Problems)
	}
	verifyFails(t, s, h.Digest, "heads: head "+h.Digest+" is neither this store's head nor recorded in it")
	if _, err := s.VerifyWith(ctx, VerifyOptions{Head: "xyz"}); err == nil {
		t.Error("a malformed head digest was accepted")
	}
}

// deflateBomb is a deflate stream, about a 158th of its size, that decompresses to n zero
// bytes (rounded up to 258 after the first): one fixed-Huffman block of the longest match at
// distance 1, repeated.
func deflateBomb(n int) []byte {
	var out []byte
	var acc uint64
	var nb uint
	bits := func(v uint64, n uint) {
		acc |= v << nb
		nb += n
		for nb >= 8 {
			out = append(out, byte(acc))
			acc >>= 8
			nb -= 8
		}
	}
	huff := func(code uint64, n uint) { // Huffman codes go most significant bit first
		var r uint64
		for i := range n {
			r = r<<1 | (code>>i)&1
		}
		bits(r, n)
	}
	bits(1, 1)          // final block
	bits(1, 2)          // fixed Huffman codes
	huff(0x30, 8)       // literal 0
	for range n / 258 { // length 258 (code 285), distance 1 (code 0)
		huff(0xc0+5, 8)
		huff(0, 5)
	}
	huff(0, 7) // end of block
	if nb > 0 {
		out = append(out, byte(acc))
	}
	return out
}

func TestDeflateBomb(t *testing.T) {
	b, err := inflate(deflateBomb(2580), 5000)
	if err != nil || len(b) != 2581 || strings.Trim(string(b), "\x00") != "" {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	if _, err := inflate(deflateBomb(2580), 2580); err == nil || !strings.Contains(err.Error(), "decompresses to more than the 2580 bytes recorded for it") {
		t.Errorf("over the bound: %v", err)
	}
}

// A blob replaced by a deflate bomb of 1 GiB fails verification, and reading it fails, without
// decompressing more than the size recorded for it, nor holding more than a few MB when its
// recorded size is forged too: a subprocess's peak RSS stays small.
func TestVerifyDeflateBombBounded(t *testing.T) {
	s := open(t)
	sv := save(t, s, "web1", map[string]string{"sshd/effective": "permitrootlogin no\n"})
	snap, _ := s.Get(t.Context(), sv.ID)
	e, _ := snap.Entry("sshd/effective")
	bomb := deflateBomb(1 << 30)
	tamper(t, s.Path(), `UPDATE blobs SET data = ? WHERE hash = ?`, bomb, e.SHA256)
	s.Close()
	start := time.Now()
	cmd := exec.CommandContext(t.Context(), os.Args[0])
	cmd.Env = append(os.Environ(), "HARDTRAIL_BOMB_STORE="+s.Path())
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("subprocess: %v\n%s", err, out)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // kilobytes on Linux
	t.Logf("a %d-byte deflate bomb of 1 GiB: verify and read took %s, peak RSS %.1f MB\n%s", len(bomb), took.Round(time.Millisecond), float64(rss)/1e6, out)
	if rss > 100e6 || took > 20*time.Second {
		t.Errorf("peak RSS %d bytes, %s", rss, took)
	}
	for _, w := range []string{"verify: blobs: target web1: snapshot ", "artifact sshd/effective: stored content is corrupt: decompresses to more than the 19 bytes recorded for it",
		"content: artifact sshd/effective of snapshot", "blob: blob ", "blob of a forged size: blob ", "decompresses to more than the 268435456 bytes recorded for it"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("subprocess output lacks %q", w)
		}
	}
}

// bombSubprocess is the subprocess of TestVerifyDeflateBombBounded: it verifies the store and
// reads the bombed artifact, printing what each said.
func bombSubprocess(path string) error {
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		return err
	}
	defer s.Close()
	rep, err := s.Verify(ctx)
	if err != nil {
		return err
	}
	fmt.Println("verify: " + problemsText(rep))
	id, _ := s.Latest(ctx, "web1")
	snap, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	_, _, err = s.Content(ctx, snap, "sshd/effective")
	fmt.Println("content:", err)
	e, _ := snap.Entry("sshd/effective")
	_, err = s.Blob(ctx, e.SHA256)
	fmt.Println("blob:", err)
	// The blob's own size altered too: Blob checks in constant memory first.
	if _, err := s.w.ExecContext(ctx, `UPDATE blobs SET size = ? WHERE hash = ?`, 256<<20, e.SHA256); err != nil {
		return err
	}
	_, err = s.Blob(ctx, e.SHA256)
	fmt.Println("blob of a forged size:", err)
	return nil
}

// Verification reads one consistent view while another connection keeps writing: a writer
// stores a snapshot, then tags it, then stores results on it, each in a transaction of its
// own, so any one moment has S snapshots, L links and R results with S >= L >= R >= S-1.
func TestVerifyConsistentUnderWrites(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	w, err := Open(ctx, s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var werr error
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m := manifest("web1", "a")
			sv, err := w.Save(ctx, m, [][]byte{fmt.Appendf(nil, "%d", i)})
			if err == nil {
				_, err = w.Tag(ctx, Link{Incident: "INC-1", Phase: After, Snapshot: sv.ID, By: "agent"})
			}
			if err == nil {
				err = w.SaveResults(ctx, sv.ID, "sha256:r", time.Now(), []byte(`{}`))
			}
			if err != nil {
				werr = err
				return
			}
		}
	}()
	verifies := 0
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) || verifies < 5 {
		rep, err := s.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		verifies++
		if len(rep.Problems) > 0 {
			t.Fatalf("verify %d: %v", verifies, rep.Problems)
		}
		S, L, R := rep.Snapshots, rep.Links, rep.Results
		if !(S >= L && L >= R && R >= S-1) {
			t.Fatalf("verify %d saw %d snapshots, %d links, %d results: not one moment of the store", verifies, S, L, R)
		}
		if h := rep.Head; len(h.Chains) > 0 && h.Digest != newHead(h.Chains).Digest {
			t.Fatal("head digest disagrees with its chains")
		}
	}
	close(stop)
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	rep, _ := s.Verify(ctx)
	t.Logf("%d verifications while %d snapshots were written", verifies, rep.Snapshots)
	if rep.Snapshots < 3 {
		t.Errorf("the writer wrote %d snapshots", rep.Snapshots)
	}
}
