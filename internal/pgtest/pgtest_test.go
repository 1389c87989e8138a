package pgtest

import (
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

func TestMain(m *testing.M) { Main(m) }

// The shared cluster takes connections on its socket, as the superuser and in a new database.
func TestShared(t *testing.T) {
	c := Shared(t)
	db, err := sql.Open("pgx", c.DSN(c.NewDB(t, ""), c.User))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var one int
	if err := db.QueryRow(`SELECT 1`).Scan(&one); err != nil || one != 1 {
		t.Fatalf("query: %d %v", one, err)
	}
	if st, err := os.Stat(filepath.Join(c.Dir, ".s.PGSQL.5432")); err != nil || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no socket in %s: %v", c.Dir, err)
	}
}

// A cluster whose test process is gone is removed; one whose process lives is left alone.
func TestReapOrphans(t *testing.T) {
	testutil.Tool(t, "pg_ctl")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	orphan, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(orphan)
	os.WriteFile(filepath.Join(orphan, ownerFile), []byte(strconv.Itoa(dead.Process.Pid)), 0o644)
	live, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(live)
	os.WriteFile(filepath.Join(live, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644)
	reapOrphans()
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("the orphan's directory is still there: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the live cluster's directory was removed: %v", err)
	}
}
