package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// The PostgreSQL engine: one code path with SQLite, through database/sql. The dialect
// differences live here: placeholders (rebound from ? to $n by the connector below), column
// types (pgDDL), the schema version (a table, not PRAGMA user_version) and the write lock
// (advisory transaction locks, not BEGIN IMMEDIATE).

// openPostgres opens the PostgreSQL database of loc. The password comes from the connection
// string, $PGPASSWORD or a passfile ($PGPASSFILE, ~/.pgpass), as with libpq.
func openPostgres(loc Location) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(loc.DSN)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadLocation, loc, redactPGErr(err, loc.DSN))
	}
	db := sql.OpenDB(rebinder{stdlib.GetConnector(*cfg)})
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	return db, nil
}

// redactPGErr is the message of a pgx configuration error, which may quote the connection
// string, with the password removed.
func redactPGErr(err error, dsn string) string {
	msg := err.Error()
	if cfg, perr := pgconn.ParseConfig(dsn); perr == nil && cfg.Password != "" {
		msg = strings.ReplaceAll(msg, cfg.Password, "xxxxx")
	}
	return strings.ReplaceAll(msg, dsn, Redact(dsn))
}

// rebinder is a connector whose connections take ? placeholders, as SQLite's do.
type rebinder struct{ driver.Connector }

func (r rebinder) Connect(ctx context.Context) (driver.Conn, error) {
	c, err := r.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &rebindConn{c.(*stdlib.Conn)}, nil
}

// rebindConn is a pgx connection whose queries are rebound before they are sent.
type rebindConn struct{ *stdlib.Conn }

func (c *rebindConn) Prepare(q string) (driver.Stmt, error) { return c.Conn.Prepare(rebind(q)) }
func (c *rebindConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(q))
}
func (c *rebindConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	if len(args) > 0 {
		q = rebind(q)
	}
	return c.Conn.ExecContext(ctx, q, args)
}
func (c *rebindConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	if len(args) > 0 {
		q = rebind(q)
	}
	rows, err := c.Conn.QueryContext(ctx, q, args)
	if err != nil && ctx.Err() == nil && c.Conn.Conn().IsClosed() {
		// The connection was lost (the server restarted, or ended it): the store's queries
		// only read, so database/sql may run this one again on a new connection. Inside a
		// transaction the error ends it, and writeTx runs it again.
		return nil, driver.ErrBadConn
	}
	return rows, err
}

// rebind turns the ? placeholders of q into $1, $2, ..., leaving quoted text and comments alone.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c == '\'' || c == '"':
			j := strings.IndexByte(q[i+1:], c)
			if j < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+j+2])
			i += j + 1
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+j+1])
			i += j
		case c == '?':
			n++
			b.WriteString("$" + strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

var (
	ddlBlob    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\bBLOB\b`) })
	ddlInteger = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\bINTEGER\b`) })
	ddlText    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\bTEXT\b`) })
	ddlRowid   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\)\s*WITHOUT ROWID`) })
)

// pgDDL is a schema step written for SQLite in PostgreSQL's types: BYTEA for BLOB, BIGINT for
// INTEGER, and text compared byte by byte (COLLATE "C"), so that both engines order alike.
func pgDDL(q string) string {
	q = ddlRowid().ReplaceAllString(q, ")")
	q = ddlBlob().ReplaceAllString(q, "BYTEA")
	q = ddlInteger().ReplaceAllString(q, "BIGINT")
	return ddlText().ReplaceAllString(q, `TEXT COLLATE "C"`)
}

// lockKey is the advisory lock key of a name: a chain, or the store.
func lockKey(name string) int64 {
	h := sha256.Sum256([]byte("hardtrail/" + name))
	return int64(binary.BigEndian.Uint64(h[:8]))
}

// storeLock names the lock that every write of a store-wide chain takes.
const storeLock = "store"

// pgCode is the SQLSTATE of a PostgreSQL error, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// retryable reports whether a write that failed with err may be run again from the start:
// PostgreSQL rolled it back (serialisation failure, deadlock), or the connection was lost.
func retryable(err error) bool {
	switch code := pgCode(err); code {
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return true
	case "57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
		return true
	case "":
	default:
		return strings.HasPrefix(code, "08") // connection exceptions
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// isPermission reports whether err is PostgreSQL refusing the role a privilege.
func isPermission(err error) bool { return pgCode(err) == "42501" }
