package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// StatusFormat names the status event record layout.
const StatusFormat = "hardtrail-status/1"

// Statuses an incident can have on a target.
var Statuses = []string{"open", "remediated", "verified", "regressed"}

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
	if !slices.Contains(Statuses, e.Status) {
		return nil, fmt.Errorf("status event: unknown status %q (want one of %v)", e.Status, Statuses)
	}
	e.Format = StatusFormat
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = e.At.UTC()
	recorded := false
	err := s.WriteTx(ctx, func(tx *sql.Tx) error {
		var last string
		err := tx.QueryRowContext(ctx, `SELECT status FROM status_events WHERE incident = ? AND target = ? ORDER BY seq DESC LIMIT 1`, e.Incident, e.Target).Scan(&last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if last == e.Status {
			return nil
		}
		e.From = last
		err = tx.QueryRowContext(ctx, `SELECT id, seq FROM status_events ORDER BY seq DESC LIMIT 1`).Scan(&e.Prev, &e.Seq)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		e.Seq++
		raw, err := json.Marshal(e)
		if err != nil {
			return err
		}
		e.ID = Hash(raw)
		_, err = tx.ExecContext(ctx, `INSERT INTO status_events (id, seq, prev, incident, target, status, record) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			e.ID, e.Seq, e.Prev, e.Incident, e.Target, e.Status, raw)
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
	return records(ctx, s, "status_events", "status event", incident, func(e *StatusEvent, id string) { e.ID = id })
}

// verifyEvents checks every status event's hash, the chain, and that the snapshot it names
// exists and belongs to its target.
func (s *Store) verifyEvents(ctx context.Context, add func(Problem)) (int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, seq, prev, incident, target, status, record FROM status_events ORDER BY seq`)
	if err != nil {
		return 0, err
	}
	type ref struct{ snapshot, target string }
	var refs []ref
	n := 0
	var lastID string
	var lastSeq int64
	for rows.Next() {
		var id, prev, inc, target, status string
		var seq int64
		var raw []byte
		if err := rows.Scan(&id, &seq, &prev, &inc, &target, &status, &raw); err != nil {
			rows.Close()
			return n, err
		}
		n++
		p := Problem{Target: target}
		what := fmt.Sprintf("status event %d (%s %s): ", seq, inc, status)
		if Hash(raw) != id {
			p.Msg = what + "record hashes to " + short(Hash(raw)) + ", not its ID: the event was altered"
			add(p)
		}
		var e StatusEvent
		if err := json.Unmarshal(raw, &e); err != nil {
			p.Msg = what + "record is not valid JSON"
			add(p)
		} else {
			if e.Seq != seq || e.Prev != prev || e.Incident != inc || e.Target != target || e.Status != status {
				p.Msg = what + "index columns disagree with the record"
				add(p)
			}
			if e.Snapshot != "" {
				refs = append(refs, ref{e.Snapshot, target})
			}
		}
		switch {
		case seq != lastSeq+1:
			p.Msg = fmt.Sprintf("%sstatus chain gap: seq %d follows seq %d (an event was removed)", what, seq, lastSeq)
			add(p)
		case prev != lastID:
			p.Msg = what + "status chain broken: prev is " + short(prev) + ", want " + short(lastID)
			add(p)
		}
		lastID, lastSeq = id, seq
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return n, err
	}
	for _, r := range refs {
		var target string
		err := s.r.QueryRowContext(ctx, `SELECT target FROM snapshots WHERE id = ?`, r.snapshot).Scan(&target)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			add(Problem{Target: r.target, Snapshot: r.snapshot, Msg: "a status event names a snapshot that does not exist"})
		case err != nil:
			return n, err
		case target != r.target:
			add(Problem{Target: r.target, Snapshot: r.snapshot, Msg: "a status event names a snapshot of target " + target})
		}
	}
	return n, nil
}
