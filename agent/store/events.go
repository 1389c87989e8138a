package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// StatusFormat names the status event record layout.
const StatusFormat = "hardtrail-status/1"

// statuses are those an incident can have on a target.
var statuses = []string{"open", "remediated", "verified", "regressed"}

// StatusEvent records that an incident's status on a target changed, when and why. Events
// are records of their own, hash-chained over the store in the order they were made.
type StatusEvent struct {
	Format   string `json:"format"`
	Seq      int64  `json:"seq"`
	Prev     string `json:"prev"`
	Incident string `json:"incident"`
	Target   string `json:"target"`
	Status   string `json:"status"`
	// From is the status before, empty for the incident's first event on the target.
	From  string `json:"from,omitempty"`
	Cause string `json:"cause"`
	// Snapshot is the newest snapshot of the target, on which the status was judged.
	Snapshot string `json:"snapshot,omitempty"`
	// RulesDigest names the rule set whose linked rules were evaluated.
	RulesDigest string    `json:"rules_digest,omitempty"`
	At          time.Time `json:"at"`

	ID string `json:"-"` // hex SHA-256 of the record
}

func (e *StatusEvent) setChain(seq int64, prev string) { e.Seq, e.Prev = seq, prev }

var statusChain = &chain{
	table:   "status_events",
	what:    "status event",
	columns: []string{"incident", "target", "status"},
	check: func(v *verifier, c *chain, r *chainRow) {
		if snap := r.str("snapshot"); snap != "" {
			v.refSnapshot(c, r, snap, r.str("target"))
		}
	},
}

func init() { registerChain(statusChain) }

// RecordStatus appends e when its status differs from the incident's last recorded status on
// the target, and returns it with From, Seq, Prev, At and ID filled; it returns nil when the
// status is unchanged.
func (s *Store) RecordStatus(ctx context.Context, e StatusEvent) (*StatusEvent, error) {
	if err := CheckIncidentID(e.Incident); err != nil {
		return nil, err
	}
	if !ValidTarget(e.Target) {
		return nil, fmt.Errorf("status event: invalid target name %q", e.Target)
	}
	if !slices.Contains(statuses, e.Status) {
		return nil, fmt.Errorf("status event: unknown status %q (want one of %v)", e.Status, statuses)
	}
	e.Format = StatusFormat
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = e.At.UTC()
	recorded := false
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if done, err := appended(ctx, tx, statusChain, e.ID); err != nil || done {
			return err
		}
		var last string
		err := tx.QueryRowContext(ctx, `SELECT status FROM status_events WHERE incident = ? AND target = ? ORDER BY seq DESC LIMIT 1`, e.Incident, e.Target).Scan(&last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if last == e.Status {
			return nil
		}
		e.From = last
		e.ID, _, err = appendRecord(ctx, tx, statusChain, &e)
		recorded = err == nil
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("record status %s of %s on %s: %w", e.Status, e.Incident, e.Target, err)
	}
	if !recorded {
		return nil, nil
	}
	return &e, nil
}

// StatusEvents returns an incident's status events in the order they were recorded (every
// incident's when incident is empty).
func (s *Store) StatusEvents(ctx context.Context, incident string) ([]StatusEvent, error) {
	return records(ctx, s, statusChain, incident, func(e *StatusEvent, id string) { e.ID = id })
}
