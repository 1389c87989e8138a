package store

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/internal/pgtest"
)

// storeAs opens the store in database db as role.
func storeAs(t *testing.T, c *pgtest.Cluster, db, role string) *Store {
	t.Helper()
	s, err := Open(t.Context(), c.DSN(db, role))
	if err != nil {
		t.Fatalf("open as %s: %v", role, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rolesDB is a database laid out as deploy/postgres says: the roles, owned by the owner, the
// grants run in it.
func rolesDB(t *testing.T, c *pgtest.Cluster) string {
	t.Helper()
	for _, f := range []string{"roles.sql", "grants.sql"} {
		if _, err := os.Stat("../../deploy/postgres/" + f); err != nil {
			t.Fatal(err)
		}
	}
	c.Exec(t, "postgres", sqlOf(t, "roles.sql"))
	db := c.NewDB(t, "")
	c.Exec(t, "postgres", `ALTER DATABASE `+db+` OWNER TO hardtrail_owner`)
	c.Exec(t, db, sqlOf(t, "grants.sql"))
	return db
}

// sqlOf is the text of a file of deploy/postgres.
func sqlOf(t *testing.T, f string) string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/postgres/" + f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The writer role does everything an agent and an operator do, and cannot rewrite or remove
// any history; the reader verifies and writes nothing; neither may migrate.
func TestRolesAppendOnly(t *testing.T) {
	c := pgtest.Shared(t)
	db := rolesDB(t, c)
	// The writer cannot create the schema: the owner must migrate first.
	if _, err := Open(t.Context(), c.DSN(db, "hardtrail_writer")); err == nil || !strings.Contains(err.Error(), "run hardtrail store migrate as the store's owner") || !isPermission(err) {
		t.Fatalf("the writer opened an unmigrated store: %v", err)
	}
	storeAs(t, c, db, "hardtrail_owner")
	w := storeAs(t, c, db, "hardtrail_writer")
	f, err := fillFixture(t.Context(), w) // snapshots, held spans, links, status events, results, heads
	if err != nil {
		t.Fatalf("the writer cannot write what an agent writes: %v", err)
	}
	r := storeAs(t, c, db, "hardtrail_reader")
	for _, s := range []*Store{w, r} {
		rep, err := s.VerifyWith(t.Context(), VerifyOptions{Head: f.early})
		if err != nil || len(rep.Problems) > 0 {
			t.Fatalf("verify: %v %v", err, rep.Problems)
		}
	}
	for _, q := range []string{
		`UPDATE snapshots SET note = 'approved' WHERE seq = 1`,
		`DELETE FROM snapshots WHERE seq = 3`,
		`UPDATE blobs SET data = data || '\x00'::bytea`,
		`DELETE FROM blobs`,
		`UPDATE links SET incident = 'INC-9'`,
		`DELETE FROM links WHERE seq = 1`,
		`UPDATE results SET report_sha256 = 'x'`,
		`DELETE FROM results`,
		`UPDATE held SET count = 500`,
		`DELETE FROM held`,
		`DELETE FROM status_events`,
		`DELETE FROM heads`,
		`TRUNCATE snapshots CASCADE`,
		`DROP TABLE links`,
		`INSERT INTO hardtrail_schema (version) VALUES (999)`,
		`UPDATE hardtrail_schema SET version = 1`,
		`DELETE FROM hardtrail_schema`,
		`TRUNCATE hardtrail_schema`,
	} {
		for _, s := range []*Store{w, r} {
			if _, err := s.w.ExecContext(t.Context(), q); !isPermission(err) {
				t.Errorf("%s as the %s role: %v, want permission denied", q, map[*Store]string{w: "writer", r: "reader"}[s], err)
			}
		}
	}
	if _, err := r.Save(t.Context(), manifest("web1", "a"), [][]byte{[]byte("x")}); !isPermission(err) || !strings.Contains(err.Error(), "the role may not do this") {
		t.Errorf("the reader saved a snapshot: %v", err)
	}
	// The lease table alone is the writer's to change: renew, release, update and delete.
	checkLeaseRights(t, w, r)
	if rep, err := w.Verify(t.Context()); err != nil || len(rep.Problems) > 0 || rep.Snapshots != 5 {
		t.Fatalf("after the refused edits: %+v %v", rep, err)
	}
	// grants.sql run again on the migrated store still leaves the schema version the owner's.
	c.Exec(t, db, sqlOf(t, "grants.sql"))
	if _, err := w.w.ExecContext(t.Context(), `INSERT INTO hardtrail_schema (version) VALUES (999)`); !isPermission(err) {
		t.Errorf("the writer changed the schema version after grants.sql ran again: %v", err)
	}
	if v, err := w.SchemaVersion(t.Context()); err != nil || v != SchemaSteps() {
		t.Errorf("schema version %d (%v), want %d", v, err, SchemaSteps())
	}
}

// A schema version table holding more than one row was altered: opening the store says so.
func TestSchemaVersionRows(t *testing.T) {
	c := pgtest.Shared(t)
	db := c.NewDB(t, "")
	storeAs(t, c, db, c.User)
	c.Exec(t, db, `INSERT INTO hardtrail_schema (version) VALUES (1)`)
	if _, err := Open(t.Context(), c.DSN(db, c.User)); err == nil || !strings.Contains(err.Error(), "hardtrail_schema holds 2 rows") {
		t.Fatalf("open with two schema versions: %v", err)
	}
}

// checkLeaseRights: the writer w claims, renews and releases leases and may update and delete
// the lease table's rows, but not truncate or drop it; the reader r may do none of it.
func checkLeaseRights(t *testing.T, w, r *Store) {
	t.Helper()
	req := LeaseRequest{Agent: "a1", Targets: []string{"web1", "db1"}, TTL: time.Minute, Every: time.Minute}
	for i := range 2 {
		l, err := w.Lease(t.Context(), req)
		if err != nil || len(l.Held) != 2 {
			t.Fatalf("the writer's lease %d: %+v %v", i, l, err)
		}
	}
	if err := w.ReleaseLeases(t.Context(), "a1"); err != nil {
		t.Fatalf("the writer's release: %v", err)
	}
	for _, q := range []string{`UPDATE leases SET holder = 'x'`, `DELETE FROM leases WHERE kind = 'agent'`} {
		if _, err := w.w.ExecContext(t.Context(), q); err != nil {
			t.Errorf("%s as the writer: %v", q, err)
		}
		if _, err := r.w.ExecContext(t.Context(), q); !isPermission(err) {
			t.Errorf("%s as the reader: %v, want permission denied", q, err)
		}
	}
	for _, q := range []string{`TRUNCATE leases`, `DROP TABLE leases`} {
		if _, err := w.w.ExecContext(t.Context(), q); !isPermission(err) {
			t.Errorf("%s as the writer: %v, want permission denied", q, err)
		}
	}
	if _, err := r.Lease(t.Context(), req); !isPermission(err) {
		t.Errorf("the reader leased: %v", err)
	}
}

// grants.sql run on a store the owner migrated before it gives the writer the same rights.
func TestRolesGrantedAfterMigration(t *testing.T) {
	c := pgtest.Shared(t)
	sqlOf := func(f string) string {
		b, err := os.ReadFile("../../deploy/postgres/" + f)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	c.Exec(t, "postgres", sqlOf("roles.sql"))
	db := c.NewDB(t, "")
	c.Exec(t, "postgres", `ALTER DATABASE `+db+` OWNER TO hardtrail_owner`)
	storeAs(t, c, db, "hardtrail_owner")
	c.Exec(t, db, sqlOf("grants.sql"))
	w := storeAs(t, c, db, "hardtrail_writer")
	if _, err := fillFixture(t.Context(), w); err != nil {
		t.Fatalf("the writer cannot write what an agent writes: %v", err)
	}
	for _, q := range []string{`UPDATE snapshots SET note = 'x'`, `DELETE FROM held`} {
		if _, err := w.w.ExecContext(t.Context(), q); !isPermission(err) {
			t.Errorf("%s as the writer: %v, want permission denied", q, err)
		}
	}
	checkLeaseRights(t, w, storeAs(t, c, db, "hardtrail_reader"))
}
