package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/internal/pgtest"
)

// fixture is a store with records in every table: two targets' snapshots, links, status
// events, results, held spans, and two recorded heads: early (taken before the later records)
// and final (the store's head at the end).
type fixture struct {
	path         string // a closed store file, WAL checkpointed
	early, final string // head digests
}

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureVal  fixture
	fixtureErr  error
)

func TestMain(m *testing.M) {
	if path := os.Getenv("HARDTRAIL_BOMB_STORE"); path != "" {
		if err := bombSubprocess(path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	pgtest.Main(m, func() {
		if fixtureDir != "" {
			os.RemoveAll(fixtureDir)
		}
	})
}

func buildFixture(dir string) (fixture, error) {
	ctx := context.Background()
	path := filepath.Join(dir, "fixture.db")
	s, err := Open(ctx, path)
	if err != nil {
		return fixture{}, err
	}
	defer s.Close()
	f, err := fillFixture(ctx, s)
	if err != nil {
		return fixture{}, err
	}
	if _, err := s.w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fixture{}, err
	}
	f.path = path
	return f, nil
}

// fillFixture writes the fixture's records into an empty store, on either engine.
func fillFixture(ctx context.Context, s *Store) (fixture, error) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var ids []string
	for i, tc := range []struct {
		target, a, b, note string
	}{
		{"web1", "permitrootlogin yes\n", "tcp 22\n", "first"},
		{"db1", "permitrootlogin yes\n", "tcp 5432\n", ""},
		{"web1", "permitrootlogin no\n", "tcp 22\n", "hardened"},
		{"db1", "permitrootlogin no\n", "tcp 5432\n", "db hardened"},
		{"web1", "permitrootlogin no\n", "tcp 22\ntcp 80\n", ""},
	} {
		m := manifest(tc.target, "sshd/effective", "net/listening")
		m.TakenAt, m.Started, m.Note = t0.Add(time.Duration(i)*time.Minute), t0, tc.note
		sv, err := s.Save(ctx, m, [][]byte{[]byte(tc.a), []byte(tc.b)})
		if err != nil {
			return fixture{}, err
		}
		ids = append(ids, sv.ID)
	}
	for _, l := range []Link{
		{Incident: "INC-1", Phase: Before, Snapshot: ids[0], By: "alice"},
		{Incident: "INC-1", Phase: After, Snapshot: ids[2], By: "alice", Note: "fixed"},
		{Incident: "INC-2", Phase: Before, Snapshot: ids[1], By: "bob"},
	} {
		if _, err := s.Tag(ctx, l); err != nil {
			return fixture{}, err
		}
	}
	for _, e := range []StatusEvent{
		{Incident: "INC-1", Target: "web1", Status: "open", Cause: "no after"},
		{Incident: "INC-1", Target: "web1", Status: "remediated", Cause: "after differs", Snapshot: ids[2]},
	} {
		if _, err := s.RecordStatus(ctx, e); err != nil {
			return fixture{}, err
		}
	}
	for i, r := range []struct{ snap, digest string }{{ids[2], "sha256:r1"}, {ids[2], "sha256:r1"}, {ids[3], "sha256:r2"}} {
		if err := s.SaveResults(ctx, r.snap, r.digest, t0.Add(time.Duration(10+i)*time.Minute), fmt.Appendf(nil, `{"results":[{"rule":"x","pass":%v}]}`, i > 0)); err != nil {
			return fixture{}, err
		}
	}
	for _, rs := range []struct{ digest, text string }{{"sha256:r1", "[[rule]]\n"}, {"sha256:r2", "# none\n"}} {
		if err := s.SaveRuleSet(ctx, rs.digest, []RuleFile{{Name: "rules.toml", Text: []byte(rs.text)}}, t0); err != nil {
			return fixture{}, err
		}
	}
	links, err := s.Links(ctx, "INC-2")
	if err != nil {
		return fixture{}, err
	}
	for _, r := range []Record{
		{Incident: "INC-1", Kind: KindOpen, Title: "root login", Severity: "high", By: "alice"},
		{Incident: "INC-1", Kind: KindNote, Text: "root cause", By: "alice"},
		{Incident: "INC-2", Kind: KindVoid, Link: links[0].ID, Text: "wrong snapshot", By: "bob"},
	} {
		if _, err := s.AddRecord(ctx, r); err != nil {
			return fixture{}, err
		}
	}
	p := HoldPolicy{MaxAge: 24 * time.Hour, MaxGap: time.Hour}
	for i, h := range []struct{ target, a, b string }{
		{"web1", "permitrootlogin no\n", "tcp 22\ntcp 80\n"},
		{"db1", "permitrootlogin no\n", "tcp 5432\n"},
		{"web1", "permitrootlogin no\n", "tcp 22\ntcp 80\n"},
	} {
		m := manifest(h.target, "sshd/effective", "net/listening")
		m.TakenAt = t0.Add(time.Duration(20+i) * time.Minute)
		sv, err := s.SaveOrHold(ctx, m, [][]byte{[]byte(h.a), []byte(h.b)}, p)
		if err != nil {
			return fixture{}, err
		}
		if !sv.Held {
			return fixture{}, fmt.Errorf("capture %d was not held", i)
		}
	}
	early, err := s.Head(ctx)
	if err != nil {
		return fixture{}, err
	}
	if _, err := s.RecordStatus(ctx, StatusEvent{Incident: "INC-1", Target: "web1", Status: "verified", Cause: "rules pass", Snapshot: ids[4]}); err != nil {
		return fixture{}, err
	}
	if _, err := s.Tag(ctx, Link{Incident: "INC-2", Phase: After, Snapshot: ids[3], By: "bob"}); err != nil {
		return fixture{}, err
	}
	final, err := s.Head(ctx)
	if err != nil {
		return fixture{}, err
	}
	return fixture{early: early.Digest, final: final.Digest}, nil
}

// copyFixture gives the test a store file of its own, equal to the fixture.
func copyFixture(t *testing.T) (string, fixture) {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "hardtrail-fixture-")
		if fixtureErr == nil {
			fixtureVal, fixtureErr = buildFixture(fixtureDir)
		}
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	b, err := os.ReadFile(fixtureVal.path)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "h.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, fixtureVal
}

type column struct {
	name string
	pk   bool
}

// schema reads the live schema: every table and its columns.
func schema(t *testing.T, db *sql.DB) map[string][]column {
	t.Helper()
	if isPG(db) {
		return pgSchema(t, db)
	}
	out := map[string][]column{}
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
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
	for _, n := range names {
		cr, err := db.Query(`SELECT name, pk FROM pragma_table_info(?)`, n)
		if err != nil {
			t.Fatal(err)
		}
		for cr.Next() {
			var c column
			var pk int
			if err := cr.Scan(&c.name, &pk); err != nil {
				t.Fatal(err)
			}
			c.pk = pk > 0
			out[n] = append(out[n], c)
		}
		cr.Close()
	}
	return out
}

func pkOf(t *testing.T, cols []column) string {
	for _, c := range cols {
		if c.pk {
			return c.name
		}
	}
	t.Fatal("table without a primary key")
	return ""
}

// uncovered lists what the live schema has and verification's coverage does not name, and
// what the coverage names that the schema lacks.
func uncovered(live map[string][]column) []string {
	var out []string
	for table, cols := range live {
		if _, ok := coordination[table]; ok {
			if _, ok := tables[table]; ok {
				out = append(out, "table "+table+" is both coordination state and evidence")
			}
			continue // not evidence: verification does not claim it
		}
		cov, ok := tables[table]
		if !ok {
			out = append(out, "table "+table+" is not covered by verification: register it (registerChain or registerTable)")
			continue
		}
		for _, c := range cols {
			if cov[c.name] == "" {
				out = append(out, "column "+table+"."+c.name+" is not covered by verification: cover it and say how in its registration")
			}
		}
		for name := range cov {
			if !slices.ContainsFunc(cols, func(c column) bool { return c.name == name }) {
				out = append(out, "coverage names column "+table+"."+name+", which the schema does not have")
			}
		}
	}
	for table := range tables {
		if _, ok := live[table]; !ok {
			out = append(out, "coverage names table "+table+", which the schema does not have")
		}
	}
	for table := range coordination {
		if _, ok := live[table]; !ok {
			out = append(out, "coordination names table "+table+", which the schema does not have")
		}
	}
	slices.Sort(out)
	return out
}

// TestCoverageOfSchema holds the live schema against the coverage that verification
// declares: every column of every table must be covered, and nothing covered may be missing.
// The tamper table then proves each coverage by editing every column.
func TestCoverageOfSchema(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { testCoverageOfSchema(t, e) })
	}
}

func testCoverageOfSchema(t *testing.T, e engine) {
	path, _ := e.fixture(t)
	db := rawDB(t, path)
	for _, u := range uncovered(schema(t, db)) {
		t.Error(u)
	}
	// A column or table added without coverage is caught.
	for _, q := range []string{`ALTER TABLE links ADD COLUMN reviewer TEXT NOT NULL DEFAULT ''`, `CREATE TABLE voids (id TEXT PRIMARY KEY)`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	got := strings.Join(uncovered(schema(t, db)), "\n")
	if got != "column links.reviewer is not covered by verification: cover it and say how in its registration\n"+
		"table voids is not covered by verification: register it (registerChain or registerTable)" {
		t.Errorf("an uncovered column and table give:\n%s", got)
	}
}

// tamperCase is one edit of the store file and the table verification must name.
type tamperCase struct {
	name  string
	table string
	edit  func(db execer) error
	head  string // the head to verify against; the fixture's final head when empty
	pass  bool   // the edit loses nothing, so verification passes
}

// tamperCases generates, from the live schema, a change of every column of every row (two for
// a binary column: a flipped byte and an appended one), the deletion of every row, and for
// every table ordered by seq the swap of two neighbours' places.
func tamperCases(t *testing.T, e engine) []tamperCase {
	path, f := e.fixture(t)
	db := rawDB(t, path)
	var out []tamperCase
	for table, cols := range schema(t, db) {
		if _, ok := coordination[table]; ok {
			continue // not evidence; TestLeasesAreNotEvidence edits it
		}
		pk := pkOf(t, cols)
		keys := queryAll(t, db, `SELECT `+pk+` FROM `+table+` ORDER BY `+pk)
		if len(keys) == 0 {
			t.Fatalf("the fixture has no rows in %s", table)
		}
		for _, key := range keys {
			for _, c := range cols {
				var v any
				if err := db.QueryRow(`SELECT `+c.name+` FROM `+table+` WHERE `+pk+` = ?`, key).Scan(&v); err != nil {
					t.Fatal(err)
				}
				for i, nv := range mutations(t, db, table, c.name, v) {
					out = append(out, tamperCase{
						name:  fmt.Sprintf("%s/%s=%s/change %s %d", table, pk, short(fmt.Sprint(key)), c.name, i),
						table: table,
						edit: func(db execer) error {
							var errs []error
							for _, cand := range nv {
								_, err := db.Exec(`UPDATE `+table+` SET `+c.name+` = ? WHERE `+pk+` = ?`, cand, key)
								if err == nil {
									return nil
								}
								errs = append(errs, err)
							}
							return errors.Join(errs...)
						},
					})
				}
			}
			tc := tamperCase{
				name:  fmt.Sprintf("%s/%s=%s/delete", table, pk, short(fmt.Sprint(key))),
				table: table,
				edit: func(db execer) error {
					_, err := db.Exec(`DELETE FROM `+table+` WHERE `+pk+` = ?`, key)
					return err
				},
			}
			if table == "heads" {
				// A recorded head is checked when its digest is asked for; removing the row of
				// the store's current head loses nothing (the store still is that head).
				tc.head = fmt.Sprint(key)
				tc.pass = key == f.final
			}
			out = append(out, tc)
		}
		if !slices.ContainsFunc(cols, func(c column) bool { return c.name == "seq" }) {
			// Not ordered: every such table is keyed by the hash of its content.
			if !strings.Contains(tables[table][pk], "SHA-256") {
				t.Errorf("table %s has no seq and its key %s is not a hash", table, pk)
			}
			continue
		}
		same := ""
		if table == "snapshots" {
			same = " AND b.target = a.target" // each target's snapshots are a chain of their own
		}
		pairs, err := db.Query(`SELECT a.` + pk + `, b.` + pk + ` FROM ` + table + ` a JOIN ` + table + ` b ON b.seq = a.seq + 1` + same + ` ORDER BY a.seq`)
		if err != nil {
			t.Fatal(err)
		}
		for pairs.Next() {
			var a, b string
			pairs.Scan(&a, &b)
			out = append(out, tamperCase{
				name:  fmt.Sprintf("%s/swap %s and %s", table, short(a), short(b)),
				table: table,
				edit: func(db execer) error {
					for _, q := range []struct {
						sql  string
						args []any
					}{
						{`UPDATE ` + table + ` SET seq = -seq WHERE ` + pk + ` IN (?, ?)`, []any{a, b}},
						{`UPDATE ` + table + ` SET seq = (SELECT -seq FROM ` + table + ` WHERE ` + pk + ` = ?) WHERE ` + pk + ` = ?`, []any{a, b}},
						{`UPDATE ` + table + ` SET seq = (SELECT -seq FROM ` + table + ` WHERE ` + pk + ` = ?) WHERE ` + pk + ` = ?`, []any{b, a}},
					} {
						if _, err := db.Exec(q.sql, q.args...); err != nil {
							return err
						}
					}
					return nil
				},
			})
		}
		pairs.Close()
	}
	slices.SortFunc(out, func(a, b tamperCase) int { return strings.Compare(a.name, b.name) })
	return out
}

func queryAll(t *testing.T, db *sql.DB, q string, args ...any) []any {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []any
	for rows.Next() {
		var v any
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		out = append(out, v)
	}
	return out
}

// mutations are the changes tried for one value: each a list of candidates, the first the
// subtlest, later ones for when a constraint refuses it (the other values of the column).
func mutations(t *testing.T, db *sql.DB, table, col string, v any) [][]any {
	others := queryAll(t, db, `SELECT DISTINCT `+col+` FROM `+table+` WHERE `+col+` IS DISTINCT FROM ?`, v)
	switch v := v.(type) {
	case int64:
		return [][]any{append([]any{v + 1, v + 1000}, others...)}
	case string:
		subtle := v + "x"
		if tm, err := time.Parse(time.RFC3339Nano, v); err == nil {
			subtle = tm.Add(time.Millisecond).UTC().Format(time.RFC3339Nano)
		} else if len(v) > 0 {
			last := v[len(v)-1]
			repl := byte('a')
			if last == 'a' {
				repl = 'b'
			}
			subtle = v[:len(v)-1] + string(repl)
		}
		return [][]any{append([]any{subtle}, others...)}
	case []byte:
		flipped := slices.Clone(v)
		flipped[len(flipped)/2] ^= 0x01
		return [][]any{{flipped}, {append(slices.Clone(v), 0)}}
	}
	t.Fatalf("%s.%s: value of type %T", table, col, v)
	return nil
}

// TestTamperTable makes every generated edit on a copy of the fixture and requires
// verification to fail naming the table (or to pass, for an edit that loses nothing).
func TestTamperTable(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { testTamperTable(t, e) })
	}
}

func testTamperTable(t *testing.T, e engine) {
	_, f := e.fixture(t)
	cases := tamperCases(t, e)
	t.Logf("%d tamper cases", len(cases))
	perTable := map[string]int{}
	verify := tamperer(t, e)
	for _, tc := range cases {
		perTable[tc.table]++
		t.Run(tc.name, func(t *testing.T) {
			head := tc.head
			if head == "" {
				head = f.final
			}
			rep, err := verify(t, tc.edit, VerifyOptions{Head: head})
			if err != nil {
				t.Fatal(err)
			}
			if tc.pass {
				if len(rep.Problems) > 0 {
					t.Fatalf("verification failed: %v", rep.Problems)
				}
				return
			}
			var named []string
			for _, p := range rep.Problems {
				if p.Table == tc.table {
					named = append(named, p.String())
				}
			}
			if len(named) == 0 {
				t.Fatalf("verification does not name table %s; problems: %v", tc.table, rep.Problems)
			}
		})
	}
	t.Logf("cases per table: %v", perTable)
}

// execer runs SQL: a database handle, or a transaction.
type execer interface {
	Exec(query string, args ...any) (sql.Result, error)
}

// tamperer returns how engine e's tamper cases run: each edit is made on a store equal to the
// fixture, which is then verified. On SQLite the store is a copy of the fixture's file, edited
// and opened. On PostgreSQL it is one copy of the fixture's database for all cases: each edit
// is made inside a transaction that verification reads and that is then rolled back.
func tamperer(t *testing.T, e engine) func(t *testing.T, edit func(execer) error, opts VerifyOptions) (*VerifyReport, error) {
	if e.name == "sqlite" {
		return func(t *testing.T, edit func(execer) error, opts VerifyOptions) (*VerifyReport, error) {
			path, _ := e.fixture(t)
			db := rawDB(t, path)
			if err := edit(db); err != nil {
				t.Fatalf("edit: %v", err)
			}
			db.Close()
			s, err := Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			return s.VerifyWith(t.Context(), opts)
		}
	}
	loc, _ := e.fixture(t)
	s, err := Open(t.Context(), loc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	db := rawDB(t, loc)
	return func(t *testing.T, edit func(execer) error, opts VerifyOptions) (*VerifyReport, error) {
		tx, err := db.BeginTx(t.Context(), &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if err := edit(savepoints{tx}); err != nil {
			t.Fatalf("edit: %v", err)
		}
		return s.verifyIn(t.Context(), tx, opts)
	}
}

// savepoints runs each statement in a savepoint of a PostgreSQL transaction, so that one a
// constraint refuses leaves the transaction usable for the next candidate.
type savepoints struct{ tx *sql.Tx }

func (sp savepoints) Exec(query string, args ...any) (sql.Result, error) {
	if _, err := sp.tx.Exec(`SAVEPOINT edit`); err != nil {
		return nil, err
	}
	res, err := sp.tx.Exec(query, args...)
	if err != nil {
		sp.tx.Exec(`ROLLBACK TO SAVEPOINT edit`)
		return nil, err
	}
	_, rerr := sp.tx.Exec(`RELEASE SAVEPOINT edit`)
	return res, rerr
}

// TestFixtureVerifies: the untampered fixture passes against both its heads, and the heads
// differ from each other.
func TestFixtureVerifies(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { testFixtureVerifies(t, e) })
	}
}

func testFixtureVerifies(t *testing.T, e engine) {
	path, f := e.fixture(t)
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, h := range []string{"", f.early, f.final} {
		rep, err := s.VerifyWith(t.Context(), VerifyOptions{Head: h})
		if err != nil || len(rep.Problems) > 0 {
			t.Fatalf("head %q: %v %v", h, err, rep.Problems)
		}
		if rep.Head.Digest != f.final || rep.Heads != 2 {
			t.Errorf("verified head %s, %d recorded heads; want %s and 2", rep.Head.Digest, rep.Heads, f.final)
		}
	}
	if f.early == f.final {
		t.Error("the heads are equal")
	}
	for _, c := range sortedChains() {
		if n := s.countRows(t, c.table); n == 0 {
			t.Errorf("the fixture has no %s", c.table)
		}
	}
}

func (s *Store) countRows(t *testing.T, table string) int {
	var n int
	if err := s.r.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
