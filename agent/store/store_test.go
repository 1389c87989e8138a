package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "sub", "dir", "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func manifest(target string, names ...string) *Manifest {
	m := &Manifest{Target: target, Transport: "local", Started: time.Now(), TakenAt: time.Now(), Profiles: []string{"linux"}, ToolVersion: "test"}
	for _, n := range names {
		m.Artifacts = append(m.Artifacts, ArtifactEntry{Name: n, Source: n})
	}
	return m
}

func save(t testing.TB, s *Store, target string, contents map[string]string) *Saved {
	t.Helper()
	var names []string
	var cs [][]byte
	for n, c := range contents {
		names = append(names, n)
		cs = append(cs, []byte(c))
	}
	saved, err := s.Save(context.Background(), manifest(target, names...), cs)
	if err != nil {
		t.Fatal(err)
	}
	return saved
}

func TestSaveChainAndDedupe(t *testing.T) { onEngines(t, testSaveChainAndDedupe) }

func testSaveChainAndDedupe(t *testing.T, open opener) {
	s := open(t)
	ctx := t.Context()
	a := save(t, s, "web1", map[string]string{"sshd/effective": "permitrootlogin no\n", "net/listening": "tcp LISTEN 0.0.0.0:22\n"})
	if a.Seq != 1 || a.Changed != 2 || a.NewBlobs != 2 {
		t.Errorf("first: %+v", a)
	}
	b := save(t, s, "web1", map[string]string{"sshd/effective": "permitrootlogin no\n", "net/listening": "tcp LISTEN 0.0.0.0:22\n"})
	if b.Seq != 2 || b.Changed != 0 || b.NewBlobs != 0 {
		t.Errorf("unchanged: %+v", b)
	}
	c := save(t, s, "web1", map[string]string{"sshd/effective": "permitrootlogin yes\n"})
	if c.Changed != 2 || c.NewBlobs != 1 {
		t.Errorf("one changed, one removed: %+v", c)
	}
	snap, err := s.Get(ctx, c.ID)
	if err != nil || snap.Manifest.Prev != b.ID || snap.Manifest.Seq != 3 {
		t.Fatalf("chain: %+v %v", snap, err)
	}
	if Hash(snap.Raw) != c.ID {
		t.Error("ID is not the manifest's hash")
	}
	got, e, err := s.Content(ctx, snap, "sshd/effective")
	if err != nil || string(got) != "permitrootlogin yes\n" || e.Size != int64(len(got)) {
		t.Errorf("content %q %v", got, err)
	}
	if _, _, err := s.Content(ctx, snap, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing artifact: %v", err)
	}
	rep, err := s.Verify(ctx)
	if err != nil || len(rep.Problems) != 0 || rep.Snapshots != 3 || rep.Blobs != 3 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	if s.Engine() == SQLite {
		st, _ := os.Stat(s.Path())
		if st.Mode().Perm() != 0o600 {
			t.Errorf("store mode %v", st.Mode())
		}
	}
}

func TestResolve(t *testing.T) { onEngines(t, testResolve) }

func testResolve(t *testing.T, open opener) {
	s := open(t)
	ctx := t.Context()
	var ids []string
	for i := range 3 {
		ids = append(ids, save(t, s, "web1", map[string]string{"a": fmt.Sprint(i)}).ID)
	}
	other := save(t, s, "db1", map[string]string{"a": "x"}).ID
	for _, tc := range []struct{ ref, want, err string }{
		{ref: "web1", want: ids[2]},
		{ref: "web1~0", want: ids[2]},
		{ref: "web1~2", want: ids[0]},
		{ref: "db1", want: other},
		{ref: ids[1], want: ids[1]},
		{ref: ids[1][:8], want: ids[1]},
		{ref: strings.ToUpper(ids[1][:10]), want: ids[1]},
		{ref: "web1~3", err: `target "web1" has only 3 snapshots, so web1~3 does not exist`},
		{ref: "nosuch", err: `no snapshot or target matches "nosuch"`},
		{ref: "abc", err: `a prefix needs at least 6 hex digits`},
		{ref: "abcde", err: "a prefix needs at least 6 hex digits"},
		{ref: "000000", err: `no snapshot matches "000000"`},
		{ref: strings.Repeat("0", 64), err: "no snapshot 0000"},
	} {
		got, err := s.Resolve(ctx, tc.ref)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Resolve(%q) err = %v, want %q", tc.ref, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q) = %s, %v; want %s", tc.ref, got, err, tc.want)
		}
	}
}

func TestResolveAmbiguousPrefix(t *testing.T) { onEngines(t, testResolveAmbiguousPrefix) }

func testResolveAmbiguousPrefix(t *testing.T, open opener) {
	s := open(t)
	ctx := t.Context()
	seen := map[string]string{}
	for i := 0; ; i++ {
		id := save(t, s, "t", map[string]string{"a": fmt.Sprint(i)}).ID
		if prev, ok := seen[id[:2]]; ok {
			// Two IDs share two digits; pad the shared prefix to six with what they share.
			n := 0
			for n < len(id) && id[n] == prev[n] {
				n++
			}
			if n >= 6 {
				_, err := s.Resolve(ctx, id[:6])
				if err == nil || !strings.Contains(err.Error(), "ambiguous") {
					t.Fatalf("ambiguous prefix: %v", err)
				}
			}
			return
		}
		seen[id[:2]] = id
	}
}

// tamper runs SQL against the store file from outside the Store, as an attacker with write
// access to the file would.
// tamper runs SQL on the store at loc beneath the store's checks (see rawDB).
func tamper(t *testing.T, loc, query string, args ...any) {
	t.Helper()
	db := rawDB(t, loc)
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyFindsTampering(t *testing.T) { onEngines(t, testVerifyFindsTampering) }

func testVerifyFindsTampering(t *testing.T, open opener) {
	for _, tc := range []struct {
		name, query string
		want        []string
	}{
		{"blob content", `UPDATE blobs SET data = ? WHERE hash = ?`,
			[]string{"blobs: target web1: snapshot ", "artifact sshd/effective: stored content is corrupt: content hashes to"}},
		{"manifest", `UPDATE snapshots SET manifest = ? WHERE seq = 2`,
			[]string{"manifest hashes to", "not its ID: the manifest was altered"}},
		{"deleted snapshot", `DELETE FROM snapshots WHERE seq = 2`,
			[]string{"snapshots: target web1: snapshot ", "chain gap: seq 3 follows seq 1 (a snapshot was removed"}},
		{"deleted blob", `DELETE FROM blobs WHERE hash = ?`,
			[]string{"artifact net/listening: content", "is missing from the store"}},
		{"prev column", `UPDATE snapshots SET prev = '' WHERE seq = 3`,
			[]string{"column prev is \"\", the manifest says"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			var first *Saved
			for i := range 3 {
				sv := save(t, s, "web1", map[string]string{"sshd/effective": fmt.Sprintf("maxauthtries %d\n", i), "net/listening": "tcp LISTEN 0.0.0.0:22\n"})
				if first == nil {
					first = sv
				}
			}
			snap, _ := s.Get(t.Context(), first.ID)
			var args []any
			switch tc.name {
			case "blob content":
				e, _ := snap.Entry("sshd/effective")
				args = []any{compress([]byte("maxauthtries 9\n")), e.SHA256}
			case "manifest":
				second, _ := s.Resolve(t.Context(), "web1~1")
				m, _ := s.Get(t.Context(), second)
				args = []any{compress([]byte(strings.Replace(string(m.Raw), `"tool_version":"test"`, `"tool_version":"evil"`, 1)))}
			case "deleted blob":
				e, _ := snap.Entry("net/listening")
				args = []any{e.SHA256}
			}
			tamper(t, s.Path(), tc.query, args...)
			rep, err := s.Verify(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var all []string
			for _, p := range rep.Problems {
				all = append(all, p.String())
			}
			text := strings.Join(all, "\n")
			if len(rep.Problems) == 0 {
				t.Fatal("tampering not found")
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("problems:\n%s\nlack %q", text, w)
				}
			}
			if tc.name == "blob content" && !strings.Contains(text, "snapshot "+Short(first.ID)) {
				t.Errorf("problem does not name the snapshot %s:\n%s", Short(first.ID), text)
			}
			if tc.name == "blob content" {
				if _, _, err := s.Content(t.Context(), snap, "sshd/effective"); err == nil || !strings.Contains(err.Error(), "does not match its hash") {
					t.Errorf("reading a tampered blob: %v", err)
				}
			}
		})
	}
}

func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	const writers, each = 4, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), path)
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			for i := range each {
				m := manifest("shared", "a")
				if _, err := s.Save(context.Background(), m, [][]byte{[]byte(fmt.Sprintf("%d-%d", w, i))}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := s.Verify(t.Context())
	if err != nil || len(rep.Problems) != 0 || rep.Snapshots != writers*each {
		t.Fatalf("verify after concurrent writers: %+v %v", rep, err)
	}
}

func TestOpenErrors(t *testing.T) {
	if os.Geteuid() == 0 {
		// Root writes through permissions; a read-only bind is not portable. The CLI test covers
		// the message with a file in a read-only directory as a non-root user where possible.
		t.Log("running as root: permission checks do not apply")
	} else {
		dir := t.TempDir()
		testutil.Must(t, os.Chmod(dir, 0o500))
		defer os.Chmod(dir, 0o700)
		if _, err := Open(t.Context(), filepath.Join(dir, "h.db")); err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("read-only dir: %v", err)
		}
	}
	f := filepath.Join(t.TempDir(), "file")
	testutil.Must(t, os.WriteFile(f, nil, 0o600))
	if _, err := Open(t.Context(), filepath.Join(f, "h.db")); err == nil || !strings.Contains(err.Error(), "cannot create its directory") {
		t.Errorf("store under a file: %v", err)
	}
}

// Store growth per unchanged snapshot: a manifest and its index rows, no blobs.
func TestUnchangedSnapshotGrowth(t *testing.T) {
	s := open(t)
	contents := map[string]string{}
	for i := range 11 {
		contents[fmt.Sprintf("art/%d", i)] = strings.Repeat(fmt.Sprintf("line %d\n", i), 2000)
	}
	save(t, s, "web1", contents)
	size := func() int64 {
		s.w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
		st, _ := os.Stat(s.Path())
		return st.Size()
	}
	before := size()
	const n = 50
	for range n {
		if sv := save(t, s, "web1", contents); sv.NewBlobs != 0 || sv.Changed != 0 {
			t.Fatalf("unchanged snapshot wrote %+v", sv)
		}
	}
	per := float64(size()-before) / n
	t.Logf("store growth per unchanged snapshot of 11 artifacts: %.0f bytes", per)
	if per > 8192 {
		t.Errorf("unchanged snapshots cost %.0f bytes each", per)
	}
}

// A store path may hold characters that an SQLite URI gives a meaning: the store is still
// that file.
func TestOpenPathWithURICharacters(t *testing.T) {
	dir := t.TempDir()
	names := []string{"a#b.db", "a?b=c.db", "a%20b.db"}
	for _, n := range names {
		s, err := Open(t.Context(), filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		save(t, s, "web1", map[string]string{"a": "b"})
		s.Close()
	}
	for _, n := range names {
		if st, err := os.Stat(filepath.Join(dir, n)); err != nil || st.Size() == 0 {
			t.Errorf("store %s: %v", n, err)
		}
	}
	if es, _ := os.ReadDir(dir); len(es) != len(names) {
		t.Errorf("%d files in the directory, want %d", len(es), len(names))
	}
}

// SQLite's errors are told apart by their result codes: real ones from two connections, one
// holding the write lock, and a read-only one.
func TestSQLiteErrorCodes(t *testing.T) {
	s := open(t)
	save(t, s, "web1", map[string]string{"a": "x"})
	conn := func(pragmas string) *sql.DB {
		db, err := sql.Open("sqlite", "file:"+uriPath.Replace(s.Path())+"?"+pragmas)
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		t.Cleanup(func() { db.Close() })
		return db
	}
	holder := conn("_pragma=busy_timeout(0)&_txlock=immediate")
	tx, err := holder.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	other := conn("_pragma=busy_timeout(0)&_txlock=immediate")
	_, err = other.Begin()
	if !isBusy(err) || !strings.Contains(s.wrapBusy(err).Error(), "is locked by another process for more than 30s") {
		t.Errorf("a second writer: %v (busy %v)", s.wrapBusy(err), isBusy(err))
	}
	tx.Rollback()
	ro := conn("mode=ro")
	_, err = ro.Exec(`DELETE FROM blobs`)
	if isBusy(err) || !strings.Contains(s.wrapBusy(err).Error(), "is read-only") {
		t.Errorf("a write to a read-only store: %v", s.wrapBusy(err))
	}
	if err := s.wrapBusy(errors.New("database is locked")); err.Error() != "database is locked" {
		t.Errorf("an error that only reads like SQLite's was classified: %v", err)
	}
}

// OpenRead reads what Open wrote, creates a missing store as Open does, and still writes, and
// checks blobs against their hashes.
func TestOpenRead(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "h.db")
	s, err := Open(ctx, path)
	testutil.Must(t, err)
	content := strings.Repeat("permitrootlogin no\n", 1000)
	saved := save(t, s, "web1", map[string]string{"sshd/effective": content})
	testutil.Must(t, s.Close())

	r, err := OpenRead(ctx, path)
	testutil.Must(t, err)
	defer r.Close()
	id, err := r.Resolve(ctx, "web1")
	testutil.Must(t, err)
	snap, err := r.Get(ctx, id)
	testutil.Must(t, err)
	if id != saved.ID || len(snap.Manifest.Artifacts) != 1 {
		t.Fatalf("resolved %s (%d artifacts), saved %s", id, len(snap.Manifest.Artifacts), saved.ID)
	}
	b, err := r.Blob(ctx, snap.Manifest.Artifacts[0].SHA256)
	testutil.Must(t, err)
	if string(b) != content {
		t.Fatalf("blob: %d bytes, want %d", len(b), len(content))
	}
	// A store opened to be read is still written through its write handle.
	if _, err := r.Save(ctx, manifest("web2", "a"), [][]byte{[]byte("x\n")}); err != nil {
		t.Fatal(err)
	}
	// A blob altered in place is refused, as with Open.
	_, err = s2w(t, path).ExecContext(ctx, `UPDATE blobs SET data = ? WHERE hash = ?`, compress([]byte(strings.ToUpper(content))), snap.Manifest.Artifacts[0].SHA256)
	testutil.Must(t, err)
	if _, err := r.Blob(ctx, snap.Manifest.Artifacts[0].SHA256); err == nil || !strings.Contains(err.Error(), "does not match its hash") {
		t.Errorf("altered blob: %v", err)
	}

	missing := filepath.Join(t.TempDir(), "new", "h.db")
	m, err := OpenRead(ctx, missing)
	testutil.Must(t, err)
	defer m.Close()
	if v, err := m.SchemaVersion(ctx); err != nil || v != SchemaSteps() {
		t.Errorf("created store: schema %d, %v", v, err)
	}
}

// s2w opens the SQLite file directly, as someone altering it would.
func s2w(t *testing.T, path string) *sql.DB {
	db, err := sql.Open("sqlite", "file:"+path)
	testutil.Must(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// ValidTarget is the target name pattern, checked by hand.
func TestValidTargetIsThePattern(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)
	cases := []string{"", "a", "web-1.example.com", "root@host", "-a", ".a", "_a", "@a", "a b", "a/b", "a\n", "é",
		strings.Repeat("a", 128), strings.Repeat("a", 129), "a~1", "A.B_C@D-E"}
	r := rand.New(rand.NewPCG(5, 6))
	alphabet := "aZ09._@-/ ~\n\x00\xff"
	for range 5000 {
		b := make([]byte, r.IntN(6))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, c := range cases {
		if got, want := ValidTarget(c), re.MatchString(c); got != want {
			t.Errorf("ValidTarget(%q) = %v, the pattern says %v", c, got, want)
		}
	}
}
