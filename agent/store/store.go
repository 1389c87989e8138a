// Package store keeps hardtrail's evidence, in an embedded SQLite file or a PostgreSQL database
// that a fleet shares: content-addressed artifact blobs and hash-chained snapshot manifests,
// written whole or not at all.
package store

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"modernc.org/sqlite" // the pure Go SQLite driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hardtrail/hardtrail/internal/hugemem"
)

// Store is an open evidence store. It is safe for concurrent use, and several processes may
// share one store: on SQLite, writers queue on the file's lock (WAL mode, busy timeout); on
// PostgreSQL, on advisory locks per target chain and for the store-wide chains.
type Store struct {
	path   string // the SQLite file, or the PostgreSQL location without its password
	engine Engine
	w      *sql.DB // writes: BEGIN IMMEDIATE, one connection (SQLite); a pool (PostgreSQL)
	r      *sql.DB // reads: deferred transactions see a consistent snapshot; r == w on PostgreSQL
	// coord renews leases (lease.go): a connection of its own on PostgreSQL, so that renewals
	// never queue behind the writes of a cycle's captures; w on SQLite.
	coord *sql.DB
	// migrated is the number of schema steps Open applied.
	migrated int
	// frozen is set for a SQLite store read where nobody can be writing it (OpenRead):
	// it is read as it is, and cannot be upgraded or written.
	frozen bool
	cache  *blobCache // nil unless CacheBlobs turned it on
}

// busyTimeoutMS is how long a writer waits for another process's write to finish.
const busyTimeoutMS = 30000

// ErrNotFound is returned when a snapshot, blob or reference does not exist.
var ErrNotFound = errors.New("not found")

// Open opens the store at a location (see ParseLocation) and brings its schema up to date. A
// SQLite file (mode 0600) and its directory (0700) are created when missing; a PostgreSQL
// database must exist.
func Open(ctx context.Context, location string) (*Store, error) {
	loc, err := locate(location)
	if err != nil {
		return nil, err
	}
	if loc.Engine == Postgres {
		return openPG(ctx, loc)
	}
	return openSQLite(ctx, loc.Path, openWrite)
}

// locate parses a store location for Open and OpenRead.
func locate(location string) (Location, error) {
	if location == "" {
		return Location{}, errors.New("store: empty path")
	}
	loc, err := ParseLocation(location)
	if err != nil {
		return Location{}, fmt.Errorf("store: %w", err)
	}
	return loc, nil
}

// OpenRead is Open for a command that only reads the store. An existing SQLite file is opened
// without the checks that only writing needs (that its directory takes new files), and its read
// connections set only the busy timeout: journal mode, durability and foreign keys matter to
// writers, and the write handle, should the store be written after all, still sets them. The
// schema version is checked as Open checks it. One that does not open so because this process
// cannot write beside it (see frozen) is read as it is, with no write-ahead log, or refused when
// one is there. A store that is missing, or that does not open for another reason, goes through
// Open, which creates it or says what is wrong. A PostgreSQL store opens as with Open.
func OpenRead(ctx context.Context, location string) (*Store, error) {
	loc, err := locate(location)
	if err != nil {
		return nil, err
	}
	if loc.Engine == Postgres {
		return openPG(ctx, loc)
	}
	if fi, err := os.Stat(loc.Path); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		s, err := openSQLite(ctx, loc.Path, openRead)
		if err == nil {
			return s, nil
		}
		switch frozen(loc.Path) {
		case errNoWrites:
			return openSQLite(ctx, loc.Path, openFrozen)
		case errWALBeside:
			return nil, fmt.Errorf("store %s: %w: copy it into one file with `sqlite3 %s \".backup COPY\"` and read the copy, or read it where it was written",
				loc.Path, errWALBeside, loc.Path)
		}
	}
	// Missing, or failing to open for another reason: Open creates it, or says what is wrong.
	return openSQLite(ctx, loc.Path, openWrite)
}

func openPG(ctx context.Context, loc Location) (*Store, error) {
	db, err := openPostgres(loc)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	coord, err := openPostgres(loc) // connects when first used
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	coord.SetMaxOpenConns(1)
	s := &Store{path: loc.String(), engine: Postgres, w: db, r: db, coord: coord}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store %s: %w", s.path, s.redactErr(err, loc.DSN))
	}
	return s, nil
}

// redactErr removes a password that a driver error may quote.
func (s *Store) redactErr(err error, dsn string) error {
	if err == nil || s.engine != Postgres {
		return err
	}
	if cfg, perr := pgx.ParseConfig(dsn); perr == nil && cfg.Password != "" && strings.Contains(err.Error(), cfg.Password) {
		return &redacted{msg: strings.ReplaceAll(err.Error(), cfg.Password, "xxxxx"), err: err}
	}
	return err
}

// redacted is an error whose message has a password removed; it still matches what it wraps.
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// openMode is how openSQLite opens a store.
type openMode int

const (
	openWrite  openMode = iota // to be written: the file and its directory must take writes
	openRead                   // only read, beside any writer
	openFrozen                 // only read, and nobody can be writing it (SQLite's immutable)
)

// The reasons frozen gives.
var (
	errNoWrites  = errors.New("its directory takes no writes")
	errWALBeside = errors.New("a write-ahead log (-wal) is beside it, and its directory takes no writes, so the store cannot be read together with that log")
)

// frozen says why a SQLite store that does not open for reading may be one nobody can be
// writing: errNoWrites when this process cannot create a file beside it (a copy on read-only
// media or a read-only mount, where SQLite cannot make the shared-memory index a reader of a
// write-ahead-logged database needs) and no write-ahead log is there (a writer holds one while
// it has the store open, and removes it when it closes the store); errWALBeside when such a
// log is there; nil otherwise.
func frozen(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil || writableDir(filepath.Dir(abs)) == nil {
		return nil
	}
	if _, err := os.Lstat(abs + "-wal"); !errors.Is(err, fs.ErrNotExist) {
		return errWALBeside
	}
	return errNoWrites
}

func openSQLite(ctx context.Context, path string, mode openMode) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if err := prepareFile(path, abs, mode != openWrite); err != nil {
		return nil, err
	}
	s := &Store{path: abs, engine: SQLite, frozen: mode == openFrozen}
	dsn := func(lock string, writes bool) string {
		q := url.Values{}
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
		switch {
		case mode == openFrozen:
			// Read as it is: no lock, no journal, no shared memory. Writing fails.
			q.Set("mode", "ro")
			q.Set("immutable", "1")
		case writes:
			q.Add("_pragma", "journal_mode(WAL)")
			q.Add("_pragma", "synchronous(FULL)")
			q.Add("_pragma", "foreign_keys(ON)")
		}
		q.Set("_txlock", lock)
		return "file:" + uriPath.Replace(abs) + "?" + q.Encode()
	}
	if s.w, err = sql.Open("sqlite", dsn("immediate", true)); err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.coord = s.w
	if s.r, err = sql.Open("sqlite", dsn("deferred", mode == openWrite)); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	s.r.SetMaxOpenConns(4)
	// Switching a new store to WAL takes an exclusive lock without waiting on the busy
	// handler, so two processes opening a fresh store at once can see SQLITE_BUSY; retry.
	deadline := time.Now().Add(busyTimeoutMS * time.Millisecond)
	for {
		err = s.migrate(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return s, nil
}

// prepareFile creates a store's directory and file when missing and checks, unless the store
// is only to be read, that both take writes.
func prepareFile(path, abs string, read bool) error {
	if read {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return fmt.Errorf("store %s: cannot create its directory: %w", path, err)
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return fmt.Errorf("store %s is not writable (%v): choose another with --store or fix its permissions", path, err)
		}
		return fmt.Errorf("store %s: %w", path, err)
	}
	f.Close()
	if err := writableDir(filepath.Dir(abs)); err != nil {
		return fmt.Errorf("store %s: its directory is not writable, and SQLite needs to create its journal there: %w", path, err)
	}
	return nil
}

// uriPath escapes what would end a file name in an SQLite URI.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// sqliteCode is the primary SQLite result code of err (such as sqlite3.SQLITE_BUSY), or 0
// when err does not come from SQLite.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() & 0xff // the primary code of an extended one
	}
	return 0
}

func isBusy(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
}

func writableDir(dir string) error {
	f, err := os.CreateTemp(dir, ".hardtrail-probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// Path is the store's file, or its PostgreSQL location without the password.
func (s *Store) Path() string { return s.path }

// Engine is the database engine the store lives in.
func (s *Store) Engine() Engine { return s.engine }

// Close closes the store.
func (s *Store) Close() error {
	var errs []error
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	if s.coord != nil && s.coord != s.w {
		errs = append(errs, s.coord.Close())
	}
	return errors.Join(errs...)
}

// ReadDB is the store's read handle, for tests that inspect the stored bytes themselves.
func (s *Store) ReadDB() *sql.DB { return s.r }

// writeTx runs fn in one write transaction, committed when fn returns nil, holding the store's
// write lock. fn may run more than once (PostgreSQL retries a transaction it rolled back), so it
// must set what it returns afresh each time.
func (s *Store) writeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.writeTxLocked(ctx, []string{storeLock}, fn)
}

// retryFor bounds how long a write is retried after a serialisation failure, deadlock or lost
// connection: as long as a SQLite writer waits for the lock.
const retryFor = busyTimeoutMS * time.Millisecond

// backoff is the wait before attempt+1: growing, at most half a second, with jitter so that
// writers that failed together do not retry together.
func backoff(attempt int) time.Duration {
	d := min(time.Duration(attempt*attempt)*10*time.Millisecond, 500*time.Millisecond)
	return d/2 + rand.N(d/2+1)
}

// writeTxLocked is writeTx holding the named locks: on SQLite the file's write lock (BEGIN
// IMMEDIATE) whatever the names; on PostgreSQL an advisory transaction lock per name, taken in
// the order given (a target's chain before the store's, everywhere, so no two writers wait on
// each other).
func (s *Store) writeTxLocked(ctx context.Context, locks []string, fn func(*sql.Tx) error) error {
	return s.writeTxOn(ctx, s.w, locks, fn)
}

// writeTxOn is writeTxLocked on the pool db.
func (s *Store) writeTxOn(ctx context.Context, db *sql.DB, locks []string, fn func(*sql.Tx) error) error {
	if s.engine != Postgres {
		return s.once(ctx, db, nil, fn)
	}
	var err error
	deadline := time.Now().Add(retryFor)
	for attempt := 1; ; attempt++ {
		err = s.once(ctx, db, locks, fn)
		if err == nil || !retryable(err) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff(attempt)):
		}
	}
	return s.wrapBusy(err)
}

func (s *Store) once(ctx context.Context, db *sql.DB, locks []string, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrapBusy(err)
	}
	defer tx.Rollback()
	for _, l := range locks {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, lockKey(l)); err != nil {
			return err
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	return s.wrapBusy(tx.Commit())
}

// readTx runs fn in a read transaction that sees one consistent view. On PostgreSQL a
// transaction whose connection was lost (the server restarted, or ended the backend while the
// connection sat idle in the pool) is run again from the start on a new connection, for as
// long as a write would be retried.
func (s *Store) readTx(ctx context.Context, fn func(*sql.Tx) error) error {
	deadline := time.Now().Add(retryFor)
	for attempt := 1; ; attempt++ {
		err := s.readOnce(ctx, fn)
		if err == nil || s.engine != Postgres || !retryable(err) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff(attempt)):
		}
	}
}

func (s *Store) readOnce(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, s.readTxOptions())
	if err != nil {
		return s.wrapBusy(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return s.wrapBusy(tx.Commit())
}

// maxIn is the most values one query lists in an IN (...): well under the parameter limits
// of SQLite and PostgreSQL.
const maxIn = 500

// placeholders is the list of n parameters for an IN (...), or NULL for none.
func placeholders(n int) string {
	if n == 0 {
		return "NULL"
	}
	return "?" + strings.Repeat(", ?", n-1)
}

// anys is names as query arguments.
func anys(names []string) []any {
	out := make([]any, len(names))
	for i, n := range names {
		out[i] = n
	}
	return out
}

// readTxOptions are the options of a read transaction that sees one consistent view.
func (s *Store) readTxOptions() *sql.TxOptions {
	if s.engine == Postgres {
		return &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	}
	return &sql.TxOptions{ReadOnly: true}
}

func (s *Store) wrapBusy(err error) error {
	if err == nil {
		return nil
	}
	if s.engine == Postgres {
		if isPermission(err) {
			return fmt.Errorf("store %s: the role may not do this (history is append-only for writers): %w", s.path, err)
		}
		return err
	}
	switch sqliteCode(err) {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return fmt.Errorf("store %s is locked by another process for more than %ds: %w", s.path, busyTimeoutMS/1000, err)
	case sqlite3.SQLITE_READONLY:
		return fmt.Errorf("store %s is read-only: %w", s.path, err)
	case sqlite3.SQLITE_FULL:
		return fmt.Errorf("store %s: disk full, nothing was written: %w", s.path, err)
	}
	return err
}

// Hash is the hex SHA-256 of b.
func Hash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// deflaters are reused: a new flate writer allocates about 1 MB, more than most contents it
// compresses. A reset writer writes the same bytes as a new one.
var deflaters = sync.Pool{New: func() any {
	zw, _ := flate.NewWriter(nil, flate.DefaultCompression)
	return zw
}}

func compress(b []byte) []byte {
	var buf bytes.Buffer
	zw := deflaters.Get().(*flate.Writer)
	zw.Reset(&buf)
	zw.Write(b)
	zw.Close()
	deflaters.Put(zw)
	return buf.Bytes()
}

// maxManifest bounds the decompression of a manifest, which has no recorded size: a manifest of
// tens of thousands of artifacts stays below it.
const maxManifest = 64 << 20

// inflate decompresses b, which must decompress to at most limit bytes and hold nothing after
// the compressed stream. Decompression stops at limit+1 bytes, so a small b that would
// decompress to far more (a deflate bomb) costs at most limit bytes.
func inflate(b []byte, limit int64) ([]byte, error) {
	return inflateInto(nil, b, limit)
}

// inflateSized is inflate for content whose exact size is recorded, decompressed into one
// buffer of that size (on huge pages from a megabyte: hugemem). With h, each piece is hashed
// as soon as it is decompressed, while it is in cache.
func inflateSized(b []byte, size int64, h hash.Hash) ([]byte, error) {
	out := hugemem.Bytes(int(size) + 1) // one byte more, where content beyond its size shows
	br := bytes.NewReader(b)            // an io.ByteReader: the decompressor reads no byte past its stream
	zr := inflater(br)
	defer inflaters.Put(zr)
	n := 0
	for n < len(out) {
		k, err := zr.Read(out[n:])
		if h != nil {
			h.Write(out[n : n+k])
		}
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("corrupt compressed data: %w", err)
		}
	}
	switch {
	case int64(n) > size:
		return nil, fmt.Errorf("decompresses to more than the %d bytes recorded for it", size)
	case br.Len() > 0:
		return nil, fmt.Errorf("%d bytes after the end of the compressed data", br.Len())
	}
	return out[:n:n], nil
}

// inflater is a decompressor reading r, from inflaters when one is there.
func inflater(r io.Reader) io.ReadCloser {
	if zr, ok := inflaters.Get().(io.ReadCloser); ok {
		if zr.(flate.Resetter).Reset(r, nil) == nil {
			return zr
		}
	}
	return flate.NewReader(r)
}

func inflateInto(buf, b []byte, limit int64) ([]byte, error) {
	out := bytes.NewBuffer(buf)
	if _, err := inflateTo(out, b, limit); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// inflateHash is the hex SHA-256 and length of what b decompresses to, computed without holding
// it in memory, under inflate's bounds.
func inflateHash(b []byte, limit int64) (string, int64, error) {
	h := sha256.New()
	n, err := inflateTo(h, b, limit)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// inflaters are reused, as deflaters are: a new flate reader allocates its 32 KB window.
var inflaters sync.Pool

func inflateTo(w io.Writer, b []byte, limit int64) (int64, error) {
	br := bytes.NewReader(b) // an io.ByteReader: the decompressor reads no byte past its stream
	var zr io.ReadCloser
	if r, ok := inflaters.Get().(io.ReadCloser); ok {
		r.(flate.Resetter).Reset(br, nil)
		zr = r
	} else {
		zr = flate.NewReader(br)
	}
	defer func() {
		zr.Close()
		inflaters.Put(zr)
	}()
	n, err := io.Copy(w, io.LimitReader(zr, limit+1))
	switch {
	case err != nil:
		return n, fmt.Errorf("corrupt compressed data: %w", err)
	case n > limit:
		return n, fmt.Errorf("decompresses to more than the %d bytes recorded for it", limit)
	case br.Len() > 0:
		return n, fmt.Errorf("%d bytes after the end of the compressed data", br.Len())
	}
	return n, nil
}

// notFound is an error that says what was not found, and matches ErrNotFound.
type notFound struct{ msg string }

func (e *notFound) Error() string        { return e.msg }
func (e *notFound) Is(target error) bool { return target == ErrNotFound }

// NotFoundf is an error matching ErrNotFound whose message says what is missing.
func NotFoundf(format string, args ...any) error {
	return &notFound{msg: fmt.Sprintf(format, args...)}
}
