package store

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/hardtrail/hardtrail/internal/pgtest"
)

// opener gives a test a new, empty store.
type opener func(t testing.TB) *Store

// engine is a database engine the contract tests run against.
type engine struct {
	name string
	open opener
	// fixture gives the test a store of its own equal to the fixture, and the fixture.
	fixture func(t *testing.T) (string, fixture)
}

var engines = []engine{
	{name: "sqlite", open: open, fixture: copyFixture},
	{name: "postgres", open: openPGTest, fixture: copyPGFixture},
}

// onEngines runs test on every engine, each in a subtest named after it.
func onEngines(t *testing.T, test func(t *testing.T, open opener)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { test(t, e.open) })
	}
}

// openPGTest opens a store in a new database of the shared test cluster.
func openPGTest(t testing.TB) *Store {
	t.Helper()
	c := pgtest.Shared(t)
	db := c.NewDB(t, "")
	testFunctions(t, c, db)
	s, err := Open(t.Context(), c.DSN(db, c.User))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testFunctions gives a test database what the tests' tampering SQL takes from SQLite:
// replace() over the bytes of a record.
func testFunctions(t testing.TB, c *pgtest.Cluster, db string) {
	c.Exec(t, db, `CREATE FUNCTION replace(b bytea, f text, r text) RETURNS bytea LANGUAGE SQL IMMUTABLE
		AS $$ SELECT convert_to(replace(convert_from(b, 'UTF8'), f, r), 'UTF8') $$`)
}

var (
	pgFixtureOnce sync.Once
	pgFixtureDB   string
	pgFixtureVal  fixture
	pgFixtureErr  error
)

// copyPGFixture gives the test a PostgreSQL database of its own, equal to the fixture.
func copyPGFixture(t *testing.T) (string, fixture) {
	t.Helper()
	c := pgtest.Shared(t)
	pgFixtureOnce.Do(func() {
		pgFixtureDB = "fixture_" + strings.ReplaceAll(filepath.Base(os.Args[0]), ".", "_")
		c.Exec(t, "postgres", `DROP DATABASE IF EXISTS `+pgFixtureDB)
		c.Exec(t, "postgres", `CREATE DATABASE `+pgFixtureDB)
		testFunctions(t, c, pgFixtureDB)
		var s *Store
		if s, pgFixtureErr = Open(context.Background(), c.DSN(pgFixtureDB, c.User)); pgFixtureErr != nil {
			return
		}
		pgFixtureVal, pgFixtureErr = fillFixture(context.Background(), s)
		s.Close()
	})
	if pgFixtureErr != nil {
		t.Fatal(pgFixtureErr)
	}
	return c.DSN(c.NewDB(t, pgFixtureDB), c.User), pgFixtureVal
}

// isPG reports whether db is a PostgreSQL handle.
func isPG(db *sql.DB) bool {
	_, ok := db.Driver().(*stdlib.Driver)
	return ok
}

// rawDB opens the store at loc (a SQLite path or a PostgreSQL connection string) beneath the
// store's checks, as an attacker with the file or the superuser would: foreign keys are not
// enforced.
func rawDB(t *testing.T, loc string) *sql.DB {
	t.Helper()
	l, err := ParseLocation(loc)
	if err != nil {
		t.Fatal(err)
	}
	var db *sql.DB
	if l.Engine == Postgres {
		l.DSN += " options='-c session_replication_role=replica'"
		db, err = openPostgres(l)
	} else {
		db, err = sql.Open("sqlite", "file:"+uriPath.Replace(loc))
	}
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// pgSchema reads the live schema of a PostgreSQL store: every table but the schema version's,
// and its columns.
func pgSchema(t *testing.T, db *sql.DB) map[string][]column {
	t.Helper()
	rows, err := db.Query(`SELECT c.table_name, c.column_name,
			EXISTS (SELECT 1 FROM information_schema.table_constraints tc
				JOIN information_schema.key_column_usage k ON k.constraint_name = tc.constraint_name AND k.table_name = tc.table_name
				WHERE tc.table_name = c.table_name AND tc.constraint_type = 'PRIMARY KEY' AND k.column_name = c.column_name)
		FROM information_schema.columns c JOIN information_schema.tables tb ON tb.table_name = c.table_name AND tb.table_schema = c.table_schema
		WHERE c.table_schema = 'public' AND tb.table_type = 'BASE TABLE' AND c.table_name <> ?
		ORDER BY c.table_name, c.ordinal_position`, pgVersionTable)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]column{}
	for rows.Next() {
		var table string
		var c column
		if err := rows.Scan(&table, &c.name, &c.pk); err != nil {
			t.Fatal(err)
		}
		out[table] = append(out[table], c)
	}
	return out
}
