package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/internal/pgtest"
)

// A role that must give a password gets it from PGPASSWORD or a passfile, as with libpq; no
// error shows it.
func TestPasswordFromEnvironment(t *testing.T) {
	c := pgtest.Shared(t)
	const pw = "Tr0ub4dor-and-3"
	c.Exec(t, "postgres", `DROP ROLE IF EXISTS agent_pw`)
	c.Exec(t, "postgres", `CREATE ROLE agent_pw LOGIN SUPERUSER PASSWORD '`+pw+`' IN ROLE password_auth`)
	db := c.NewDB(t, "")
	dsn := c.DSN(db, "agent_pw")
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "none"))
	if _, err := Open(t.Context(), dsn); err == nil {
		t.Fatal("opened without a password")
	}
	// A wrong password in the URL: refused, and not shown.
	url := "postgres://agent_pw:wrong-" + pw + "@/" + db + "?host=" + c.Dir
	if _, err := Open(t.Context(), url); err == nil || strings.Contains(err.Error(), "wrong-") || !strings.Contains(err.Error(), "agent_pw:xxxxx@") {
		t.Fatalf("a wrong password: %v", err)
	}
	t.Run("PGPASSWORD", func(t *testing.T) {
		t.Setenv("PGPASSWORD", pw)
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if strings.Contains(s.Path(), pw) {
			t.Error("the store's name shows the password")
		}
	})
	t.Run("passfile", func(t *testing.T) {
		pass := filepath.Join(t.TempDir(), "pgpass")
		if err := os.WriteFile(pass, []byte("*:*:*:agent_pw:"+pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PGPASSFILE", pass)
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
	t.Run("in the URL", func(t *testing.T) {
		s, err := Open(t.Context(), "postgres://agent_pw:"+pw+"@/"+db+"?host="+c.Dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if strings.Contains(s.Path(), pw) || !strings.Contains(s.Path(), "agent_pw:xxxxx@") {
			t.Errorf("the store's name: %s", s.Path())
		}
	})
}

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct {
		in     string
		engine Engine
		shown  string
		bad    bool
	}{
		{in: "/var/lib/hardtrail/hardtrail.db", engine: SQLite, shown: "/var/lib/hardtrail/hardtrail.db"},
		{in: "h.db", engine: SQLite, shown: "h.db"},
		{in: "postgres:", bad: true}, // a URL missing its "//", not a file name
		{in: "postgresql:/db.example/h", bad: true},
		{in: "./postgres:", engine: SQLite, shown: "./postgres:"},
		{in: "postgres://u:pw@db.example/h?sslmode=verify-full", engine: Postgres, shown: "postgres://u:xxxxx@db.example/h?sslmode=verify-full"},
		{in: "postgresql://db.example/h?password=pw", engine: Postgres, shown: "postgresql://db.example/h?password=xxxxx"},
		{in: "PostgreSQL://u@db.example/h", engine: Postgres, shown: "PostgreSQL://u@db.example/h"},
		{in: "host=/run/postgresql dbname=h", engine: Postgres, shown: "host=/run/postgresql dbname=h"},
		{in: "dbname=h user=a password='p w'", engine: Postgres, shown: "dbname=h user=a password=xxxxx"},
		{in: "mysql://u:pw@db/h", bad: true},
		{in: "http://example.test/h", bad: true},
		{in: "file:///tmp/h.db", bad: true},
		{in: "", bad: true},
	} {
		l, err := ParseLocation(tc.in)
		if tc.bad {
			if err == nil || strings.Contains(err.Error(), "pw@") {
				t.Errorf("%q: %v", tc.in, err)
			}
			continue
		}
		if err != nil || l.Engine != tc.engine || l.String() != tc.shown {
			t.Errorf("%q: %+v %q %v, want %s %q", tc.in, l, l.String(), err, tc.engine, tc.shown)
		}
	}
}

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT 1`:                                    `SELECT 1`,
		`SELECT a FROM t WHERE b = ? AND c = ?`:       `SELECT a FROM t WHERE b = $1 AND c = $2`,
		`SELECT '?' , "?", ? -- what?` + "\n" + `, ?`: `SELECT '?' , "?", $1 -- what?` + "\n" + `, $2`,
	} {
		if got := rebind(in); got != want {
			t.Errorf("rebind(%q) = %q, want %q", in, got, want)
		}
	}
}
