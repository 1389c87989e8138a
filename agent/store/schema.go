package store

import (
	"context"
	"database/sql"
	"fmt"
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
	// 5: the texts of the rule sets whose results are stored; incident records (open, note,
	// close, void), a hash chain of their own.
	`CREATE TABLE rule_sets (
		digest    TEXT PRIMARY KEY,  -- the rule set's digest, as results name it
		stored_at TEXT NOT NULL,
		sha256    TEXT NOT NULL,     -- hex SHA-256 of record
		record    BLOB NOT NULL      -- JSON of the rule files, deflated
	);
	CREATE TABLE incident_records (
		id       TEXT PRIMARY KEY,         -- hex SHA-256 of record
		seq      INTEGER NOT NULL UNIQUE,  -- 1, 2, ... over the store
		prev     TEXT NOT NULL,            -- id of the record before, '' for the first
		incident TEXT NOT NULL,
		folded   TEXT NOT NULL,            -- lower(incident): IDs are unique regardless of case
		kind     TEXT NOT NULL CHECK (kind IN ('open', 'note', 'close', 'void')),
		link     TEXT NOT NULL,            -- the link a void withdraws, '' for other kinds
		record   BLOB NOT NULL             -- canonical JSON of the record
	);
	CREATE INDEX incident_records_incident ON incident_records (folded, seq);
	CREATE INDEX incident_records_link ON incident_records (link);`,
}

// SchemaVersion is the number of schema steps this build knows.
func SchemaVersion() int { return len(migrations) }

func (s *Store) migrate(ctx context.Context) error {
	all := migrations
	var v int
	if err := s.r.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return s.wrapBusy(err)
	}
	if v == len(all) {
		return nil
	}
	if v > len(all) {
		return fmt.Errorf("schema version %d is newer than this hardtrail knows (%d): upgrade hardtrail", v, len(all))
	}
	return s.WriteTx(ctx, func(tx *sql.Tx) error {
		// Another process may have migrated while we waited for the lock.
		if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
			return err
		}
		for i := v; i < len(all); i++ {
			if _, err := tx.ExecContext(ctx, all[i]); err != nil {
				return fmt.Errorf("schema step %d: %w", i+1, err)
			}
		}
		_, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, len(all)))
		return err
	})
}
