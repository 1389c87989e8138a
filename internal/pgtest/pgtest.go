// Package pgtest starts a throwaway PostgreSQL cluster for tests: initdb into a temporary
// directory as an unprivileged user, listening only on a unix socket in that directory. Roles
// are trusted, but members of role password_auth must authenticate with their password.
package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// Cluster is a running PostgreSQL cluster.
type Cluster struct {
	Dir  string // the socket directory, and the data directory's parent
	User string // the superuser
	bin  string
	run  func(name string, args ...string) *exec.Cmd
	n    atomic.Int64
}

var (
	mu      sync.Mutex
	shared  *Cluster
	inMain  bool
	started error
)

// Main runs a package's tests, then the cleanups given, and stops the shared cluster. Call it
// from TestMain.
func Main(m *testing.M, cleanups ...func()) {
	mu.Lock()
	inMain = true
	mu.Unlock()
	code := m.Run()
	for _, f := range cleanups {
		f()
	}
	mu.Lock()
	if shared != nil {
		shared.stop()
	}
	mu.Unlock()
	os.Exit(code)
}

// Shared is the package's cluster, started on first use (Main stops it). Without PostgreSQL
// the test is skipped, or fails under CI=true.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if !inMain {
		t.Fatal("pgtest.Shared needs pgtest.Main in the package's TestMain")
	}
	if shared == nil && started == nil {
		shared, started = start()
	}
	if started != nil {
		if _, err := testutil.LookPath("initdb"); err != nil {
			testutil.Skip(t, "initdb", "PostgreSQL is not installed: %v", err)
		}
		t.Fatalf("start PostgreSQL: %v", started)
	}
	return shared
}

// ownerFile names, in a cluster's directory, the file holding the test process's PID.
const ownerFile = "owner.pid"

func start() (*Cluster, error) {
	reapOrphans()
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	initdb, err := testutil.LookPath("initdb") // Debian keeps it in /usr/lib/postgresql/N/bin
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &Cluster{Dir: dir, bin: filepath.Dir(initdb)}
	c.run = func(name string, args ...string) *exec.Cmd {
		return exec.Command(filepath.Join(c.bin, name), args...)
	}
	c.User = "postgres"
	if os.Geteuid() == 0 {
		// The server refuses to run as root: run it as the postgres system user.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		c.run = func(name string, args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(c.bin, name)}, args...)...)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run("initdb", "-D", data, "-U", c.User, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	// Members of role password_auth must give a password; every other role is trusted.
	hba := "local all +password_auth scram-sha-256\nlocal all all trust\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", "postgres:", filepath.Join(data, "pg_hba.conf")).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chown pg_hba.conf: %v: %s", err, out)
		}
	}
	opts := fmt.Sprintf("-k %s -c listen_addresses='' -c fsync=off -c max_connections=300", dir)
	if out, err := c.run("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		return nil, fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, log)
	}
	if err := c.exec("postgres", `CREATE ROLE password_auth NOLOGIN`); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// reapOrphans stops the clusters of test processes that were killed before they could.
func reapOrphans() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) == nil || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue // its test is still running (or it is not ours to judge)
		}
		c := &Cluster{Dir: dir}
		if initdb, err := testutil.LookPath("pg_ctl"); err == nil {
			c.bin = filepath.Dir(initdb)
			c.run = func(name string, args ...string) *exec.Cmd {
				if os.Geteuid() == 0 {
					return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(c.bin, name)}, args...)...)
				}
				return exec.Command(filepath.Join(c.bin, name), args...)
			}
			c.stop()
		}
	}
}

func (c *Cluster) stop() {
	c.run("pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "-w", "stop").Run()
	os.RemoveAll(c.Dir)
}

// DSN is the key=value connection string of database db as role user.
func (c *Cluster) DSN(db, user string) string {
	return fmt.Sprintf("host=%s dbname=%s user=%s sslmode=disable", c.Dir, db, user)
}

// URL is the postgres:// URL of database db as the superuser.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://%s@/%s?host=%s&sslmode=disable", c.User, db, c.Dir)
}

// NewDB creates a database for one test, dropped when it ends, and returns its name: empty,
// or a copy of database template when that is set.
func (c *Cluster) NewDB(t testing.TB, template string) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.n.Add(1))
	q := `CREATE DATABASE ` + name
	if template != "" {
		q += ` TEMPLATE ` + template
	}
	// A template's last connection may still be closing: retry while it is "being accessed".
	for i := 0; ; i++ {
		err := c.exec("postgres", q)
		if err == nil {
			break
		}
		var pe *pgconn.PgError
		if i == 50 || !errors.As(err, &pe) || pe.Code != "55006" { // object_in_use
			t.Fatalf("%s: %v", q, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", c.DSN("postgres", c.User))
		if err != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
	})
	return name
}

// Exec runs SQL as the superuser in database db.
func (c *Cluster) Exec(t testing.TB, db, query string, args ...any) {
	t.Helper()
	if err := c.exec(db, query, args...); err != nil {
		t.Fatalf("%s: %v", firstLine(query), err)
	}
}

func (c *Cluster) exec(db, query string, args ...any) error {
	conn, err := sql.Open("pgx", c.DSN(db, c.User))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = conn.ExecContext(ctx, query, args...)
	return err
}

func firstLine(q string) string {
	if i := bytes.IndexByte([]byte(q), '\n'); i >= 0 {
		return q[:i]
	}
	return q
}
