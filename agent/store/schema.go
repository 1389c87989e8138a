package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// migrations bring the schema from version i to i+1. Never edit one that has shipped; append.
var migrations = []string{
	// 1: blobs and snapshots.
	`CREATE TABLE blobs (
		hash  TEXT PRIMARY KEY,     -- hex SHA-256 of the uncompressed content
		size  INTEGER NOT NULL,     -- uncompressed size
		codec TEXT NOT NULL,        -- 'deflate'
		data  BLOB NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE snapshots (
		id        TEXT PRIMARY KEY, -- hex SHA-256 of manifest
		target    TEXT NOT NULL,
		seq       INTEGER NOT NULL, -- 1, 2, ... per target
		prev      TEXT NOT NULL,    -- id of the previous snapshot of the target, '' for the first
		taken_at  TEXT NOT NULL,    -- RFC 3339 UTC, from the manifest
		artifacts INTEGER NOT NULL,
		changed   INTEGER NOT NULL, -- artifacts that differ from prev
		note      TEXT NOT NULL,
		manifest  BLOB NOT NULL,    -- canonical JSON, deflated; the id is the JSON's hash
		UNIQUE (target, seq)
	);
	CREATE INDEX snapshots_taken ON snapshots (taken_at);`,
	// 2: incident links, a hash chain of their own over the whole store.
	`CREATE TABLE links (
		id       TEXT PRIMARY KEY,         -- hex SHA-256 of record
		seq      INTEGER NOT NULL UNIQUE,  -- 1, 2, ... over the store
		prev     TEXT NOT NULL,            -- id of the link before, '' for the first
		incident TEXT NOT NULL,
		target   TEXT NOT NULL,
		phase    TEXT NOT NULL CHECK (phase IN ('before', 'after')),
		snapshot TEXT NOT NULL REFERENCES snapshots (id),
		record   BLOB NOT NULL             -- canonical JSON of the link
	);
	CREATE INDEX links_incident ON links (incident, target, phase, seq);`,
	// 3: rule results per snapshot and rule set.
	`CREATE TABLE results (
		snapshot     TEXT NOT NULL REFERENCES snapshots (id),
		rules_digest TEXT NOT NULL,
		evaluated_at TEXT NOT NULL,
		sha256       TEXT NOT NULL,  -- hex SHA-256 of the report JSON
		report       BLOB NOT NULL,  -- the report JSON, deflated
		PRIMARY KEY (snapshot, rules_digest)
	);`,
	// 4: incidents' status history, a hash chain of its own; and the spans over which captures
	// found a snapshot unchanged.
	`CREATE TABLE status_events (
		id       TEXT PRIMARY KEY,         -- hex SHA-256 of record
		seq      INTEGER NOT NULL UNIQUE,  -- 1, 2, ... over the store
		prev     TEXT NOT NULL,            -- id of the event before, '' for the first
		incident TEXT NOT NULL,
		target   TEXT NOT NULL,
		status   TEXT NOT NULL CHECK (status IN ('open', 'remediated', 'verified', 'regressed')),
		record   BLOB NOT NULL             -- canonical JSON of the event
	);
	CREATE INDEX status_events_incident ON status_events (incident, target, seq);
	CREATE TABLE held (
		snapshot   TEXT PRIMARY KEY REFERENCES snapshots (id),
		target     TEXT NOT NULL,
		last_at    TEXT NOT NULL,                   -- RFC 3339 UTC: the last capture equal to it
		count      INTEGER NOT NULL CHECK (count > 0), -- captures equal to it after it was taken
		max_gap_ms INTEGER NOT NULL                 -- longest time between two of them (from taken_at)
	);`,
	// 5: results and held spans become chains of append-only records (see chain.go); heads
	// records the store heads that were handed out. upgrades[5] moves the old rows over.
	`ALTER TABLE held RENAME TO held_v4;
	ALTER TABLE results RENAME TO results_v4;
	CREATE TABLE held (
		id         TEXT PRIMARY KEY,        -- hex SHA-256 of record
		seq        INTEGER NOT NULL UNIQUE, -- 1, 2, ... over the store
		prev       TEXT NOT NULL,           -- id of the record before, '' for the first
		snapshot   TEXT NOT NULL REFERENCES snapshots (id),
		target     TEXT NOT NULL,
		last_at    TEXT NOT NULL,           -- RFC 3339 UTC: this capture, equal to the snapshot
		count      INTEGER NOT NULL CHECK (count > 0), -- captures equal to it so far
		max_gap_ms INTEGER NOT NULL,        -- longest time between two of them (from taken_at)
		record     BLOB NOT NULL            -- canonical JSON of the record
	);
	CREATE INDEX held_snapshot ON held (snapshot, seq);
	CREATE TABLE results (
		id            TEXT PRIMARY KEY,        -- hex SHA-256 of record
		seq           INTEGER NOT NULL UNIQUE, -- 1, 2, ... over the store
		prev          TEXT NOT NULL,           -- id of the record before, '' for the first
		snapshot      TEXT NOT NULL REFERENCES snapshots (id),
		rules_digest  TEXT NOT NULL,
		evaluated_at  TEXT NOT NULL,
		report_sha256 TEXT NOT NULL,           -- hex SHA-256 of the report JSON
		report_size   INTEGER NOT NULL,        -- its length
		record        BLOB NOT NULL,           -- canonical JSON of the record
		report        BLOB NOT NULL            -- the report JSON, deflated
	);
	CREATE INDEX results_snapshot ON results (snapshot, seq);
	CREATE TABLE heads (
		digest TEXT PRIMARY KEY, -- hex SHA-256 of head
		head   TEXT NOT NULL     -- the digest's input (see Head)
	);`,
	// 6: the texts of the rule sets whose results are stored; incident records (open, note,
	// close, void). Both are chains (see chain.go).
	`CREATE TABLE rule_sets (
		id           TEXT PRIMARY KEY,        -- hex SHA-256 of record
		seq          INTEGER NOT NULL UNIQUE, -- 1, 2, ... over the store
		prev         TEXT NOT NULL,           -- id of the record before, '' for the first
		digest       TEXT NOT NULL UNIQUE,    -- the rule set's digest, as results name it
		files_sha256 TEXT NOT NULL,           -- hex SHA-256 of the files' JSON
		files_size   INTEGER NOT NULL,        -- its length
		record       BLOB NOT NULL,           -- canonical JSON of the record
		files        BLOB NOT NULL            -- the rule files' JSON, deflated
	);
	CREATE TABLE incident_records (
		id       TEXT PRIMARY KEY,         -- hex SHA-256 of record
		seq      INTEGER NOT NULL UNIQUE,  -- 1, 2, ... over the store
		prev     TEXT NOT NULL,            -- id of the record before, '' for the first
		incident TEXT NOT NULL,
		kind     TEXT NOT NULL CHECK (kind IN ('open', 'note', 'close', 'void')),
		link     TEXT NOT NULL,            -- the link a void withdraws, '' for other kinds
		folded   TEXT NOT NULL,            -- lower(incident): IDs are unique regardless of case
		record   BLOB NOT NULL             -- canonical JSON of the record
	);
	CREATE INDEX incident_records_incident ON incident_records (folded, seq);
	CREATE INDEX incident_records_link ON incident_records (link);`,
	// 7: indexes for a fleet's store: the history of every target newest first (log); the
	// rule sets evaluated on a target's snapshots, read from the indexes alone; a target's held
	// spans; an incident found regardless of case.
	`CREATE INDEX snapshots_log ON snapshots (taken_at DESC, target, seq DESC);
	CREATE INDEX snapshots_target_id ON snapshots (target, id);
	CREATE INDEX results_snapshot_rules ON results (snapshot, rules_digest, seq);
	CREATE INDEX held_target ON held (target, seq);
	CREATE INDEX links_folded ON links (lower(incident), seq);`,
	// 8: leases, the agents' division of the targets among themselves: mutable coordination
	// state, not evidence (see lease.go). pgUpgrades[8] lets the roles that may write it renew
	// and release leases.
	leaseTable,
}

// pgUpgrades[i] runs after schema step i on PostgreSQL only, in its transaction.
var pgUpgrades = map[int]string{
	8: pgLeaseGrants,
}

// upgrades[i] runs after schema step i, in its transaction, for what SQL alone cannot do.
var upgrades = map[int]func(context.Context, *sql.Tx) error{
	5: chainHeldAndResults,
}

func (s *Store) migrate(ctx context.Context) error {
	all := migrations
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return s.wrapBusy(err)
	}
	if v == len(all) {
		return nil
	}
	if v > len(all) {
		return fmt.Errorf("schema version %d is newer than this hardtrail knows (%d): upgrade hardtrail", v, len(all))
	}
	if s.frozen {
		return fmt.Errorf("schema version %d is older than this hardtrail's (%d), and the store takes no writes here to be upgraded: upgrade a copy where it can be written", v, len(all))
	}
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		// Another process may have migrated while we waited for the lock.
		v, err := s.version(ctx, tx)
		if err != nil {
			return err
		}
		s.migrated = 0
		for i := v; i < len(all); i++ {
			step := all[i]
			if s.engine == Postgres {
				step = pgDDL(step)
			}
			if _, err := tx.ExecContext(ctx, step); err != nil {
				return fmt.Errorf("schema step %d: %w", i+1, err)
			}
			if up := upgrades[i+1]; up != nil {
				if err := up(ctx, tx); err != nil {
					return fmt.Errorf("schema step %d: %w", i+1, err)
				}
			}
			if q := pgUpgrades[i+1]; q != "" && s.engine == Postgres {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("schema step %d: %w", i+1, err)
				}
			}
			s.migrated++
		}
		return s.setVersion(ctx, tx, len(all))
	})
	if isPermission(err) {
		return fmt.Errorf("schema version %d, this hardtrail needs %d, and this role may not migrate it: run hardtrail store migrate as the store's owner: %w", v, len(all), err)
	}
	return err
}

// pgVersionTable holds a PostgreSQL store's schema version, which SQLite keeps in
// PRAGMA user_version.
const pgVersionTable = "hardtrail_schema"

// pgVersionGrants revokes every privilege but SELECT that a role other than the owner holds on
// the schema version table.
const pgVersionGrants = `DO $$
DECLARE g record;
BEGIN
	FOR g IN SELECT DISTINCT a.grantee FROM pg_class c, aclexplode(c.relacl) a
		WHERE c.oid = '` + pgVersionTable + `'::regclass AND a.grantee <> c.relowner AND a.privilege_type <> 'SELECT'
	LOOP
		EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ` + pgVersionTable + ` FROM %s',
			CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END);
	END LOOP;
END
$$`

// SchemaVersion is the store's schema version: the number of schema steps applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if s.engine != Postgres {
		err := s.r.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v)
		return v, err
	}
	var exists bool
	if err := s.r.QueryRowContext(ctx, `SELECT to_regclass(?) IS NOT NULL`, pgVersionTable).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var rows int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*), coalesce(max(version), 0) FROM `+pgVersionTable).Scan(&rows, &v); err != nil {
		return 0, err
	}
	if rows > 1 {
		return 0, fmt.Errorf("%w: %s holds %d rows, not one schema version: it was altered (only the owner may write it, see deploy/postgres/grants.sql)", ErrSchemaAltered, pgVersionTable, rows)
	}
	return v, nil
}

// ErrSchemaAltered is returned when a store's schema version was tampered with.
var ErrSchemaAltered = errors.New("the schema version was altered")

// SchemaSteps is the schema version this hardtrail brings a store to.
func SchemaSteps() int { return len(migrations) }

// Migrated is the number of schema steps Open applied to the store.
func (s *Store) Migrated() int { return s.migrated }

func (s *Store) version(ctx context.Context, tx *sql.Tx) (int, error) {
	var v int
	if s.engine != Postgres {
		err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v)
		return v, err
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+pgVersionTable+` (version BIGINT NOT NULL)`); err != nil {
		return 0, err
	}
	// Only the owner changes the schema version: whatever default privileges gave other roles
	// on the new table (the writer's INSERT, see deploy/postgres), they may only read it.
	if _, err := tx.ExecContext(ctx, pgVersionGrants); err != nil {
		return 0, err
	}
	err := tx.QueryRowContext(ctx, `SELECT version FROM `+pgVersionTable).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		_, err = tx.ExecContext(ctx, `INSERT INTO `+pgVersionTable+` (version) VALUES (0)`)
	}
	return v, err
}

func (s *Store) setVersion(ctx context.Context, tx *sql.Tx, v int) error {
	var err error
	if s.engine != Postgres {
		_, err = tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v))
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE `+pgVersionTable+` SET version = ?`, v)
	}
	return err
}

// chainHeldAndResults turns the held spans and results of schema 4 into chained records, in a
// deterministic order: held spans by their last time, then snapshot; results by evaluation
// time, then snapshot and rule set. A span becomes one summary record; a report keeps its
// compressed bytes and the hash recorded for it, so a report altered before the upgrade still
// fails verification after it.
func chainHeldAndResults(ctx context.Context, tx *sql.Tx) error {
	type oldHeld struct {
		snapshot, target, last string
		count                  int
		gap                    int64
	}
	var held []oldHeld
	rows, err := tx.QueryContext(ctx, `SELECT snapshot, target, last_at, count, max_gap_ms FROM held_v4 ORDER BY last_at, snapshot`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var h oldHeld
		if err := rows.Scan(&h.snapshot, &h.target, &h.last, &h.count, &h.gap); err != nil {
			rows.Close()
			return err
		}
		held = append(held, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, h := range held {
		last, err := time.Parse(time.RFC3339Nano, h.last)
		if err != nil {
			return fmt.Errorf("held span of %s: bad time %q: %w", short(h.snapshot), h.last, err)
		}
		rec := &heldRecord{Format: HeldFormat, Snapshot: h.snapshot, Target: h.target, LastAt: last.UTC(), Count: h.count, MaxGapMS: h.gap, Summary: true}
		if _, _, err := appendRecord(ctx, tx, heldChain, rec); err != nil {
			return err
		}
	}
	type oldResult struct {
		snapshot, digest, at, sum string
		z                         []byte
	}
	var results []oldResult
	rows, err = tx.QueryContext(ctx, `SELECT snapshot, rules_digest, evaluated_at, sha256, report FROM results_v4 ORDER BY evaluated_at, snapshot, rules_digest`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var r oldResult
		if err := rows.Scan(&r.snapshot, &r.digest, &r.at, &r.sum, &r.z); err != nil {
			rows.Close()
			return err
		}
		results = append(results, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range results {
		at, err := time.Parse(time.RFC3339Nano, r.at)
		if err != nil {
			return fmt.Errorf("results of %s by rules %s: bad time %q: %w", short(r.snapshot), r.digest, r.at, err)
		}
		// The size is what the report decompresses to, within a bound of its own: schema 4
		// recorded none.
		var n int64
		if _, m, err := inflateHash(r.z, maxManifest); err == nil {
			n = m
		}
		rec := &resultRecord{Format: ResultsFormat, Snapshot: r.snapshot, RulesDigest: r.digest, EvaluatedAt: at.UTC(), ReportSHA256: r.sum, ReportSize: n}
		if _, _, err := appendRecord(ctx, tx, resultChain, rec, r.z); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `DROP TABLE held_v4; DROP TABLE results_v4;`)
	return err
}
