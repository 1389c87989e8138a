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
}

// Migration lets packages that own further tables add their own steps; they run after the
// store's, in registration order, each once. Register from init().
type Migration struct {
	Name string
	SQL  string
}

var extra []Migration

// RegisterMigration adds a schema step owned by another package.
func RegisterMigration(m Migration) { extra = append(extra, m) }

// SchemaVersion is the number of schema steps this build knows.
func SchemaVersion() int { return len(migrations) + len(extra) }

func (s *Store) migrate(ctx context.Context) error {
	all := append([]string(nil), migrations...)
	for _, m := range extra {
		all = append(all, m.SQL)
	}
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
