package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// HoldPolicy says when a capture equal to the target's newest snapshot may be recorded as
// holding it instead of being stored as a new snapshot.
type HoldPolicy struct {
	// MaxAge: a newest snapshot taken longer ago than this is not held; a new snapshot is
	// stored (its artifacts are already stored, so it costs a manifest). This keeps the newest
	// snapshot of a target that is captured at most MaxAge old.
	MaxAge time.Duration
	// MaxGap: a newest snapshot last seen (taken, or held) longer ago than this is not held,
	// so that a held span never covers a time in which nobody looked.
	MaxGap time.Duration
}

// Held is the span over which captures found a snapshot unchanged: the configuration was
// captured equal to it Count times after it was taken, the last time at Until, and never
// more than MaxGap apart (counting from the snapshot's time).
type Held struct {
	Snapshot string        `json:"snapshot"`
	Target   string        `json:"target"`
	Since    time.Time     `json:"since"` // the snapshot's time
	Until    time.Time     `json:"until"`
	Count    int           `json:"count"`
	MaxGap   time.Duration `json:"max_gap_ns"`
}

// HeldFormat names the layout of a held record.
const HeldFormat = "hardtrail-held/1"

// heldRecord is one capture that found a snapshot unchanged: each extends the snapshot's held
// span by a record of its own, and the newest record of a snapshot is its span.
type heldRecord struct {
	Format   string    `json:"format"`
	Seq      int64     `json:"seq"`
	Prev     string    `json:"prev"`
	Snapshot string    `json:"snapshot"`
	Target   string    `json:"target"`
	LastAt   time.Time `json:"last_at"`    // this capture's time
	Count    int       `json:"count"`      // captures equal to the snapshot so far, this one included
	MaxGapMS int64     `json:"max_gap_ms"` // longest time between two of them (from the snapshot's time)
	// Summary marks a record converted from a store that kept only a span's latest state:
	// its Count and MaxGapMS summarise captures that have no records of their own.
	Summary bool `json:"summary,omitempty"`
}

func (h *heldRecord) setChain(seq int64, prev string) { h.Seq, h.Prev = seq, prev }

var heldChain = &chain{
	table:   "held",
	what:    "held record",
	columns: []string{"snapshot", "target", "last_at", "count", "max_gap_ms"},
	check:   checkHeld,
}

func init() { registerChain(heldChain) }

// checkHeld proves a held record from the one before it for the same snapshot: one more
// capture, no earlier than the last, and the longest gap the larger of the last one and this.
func checkHeld(v *verifier, c *chain, r *chainRow) {
	h, err := decodeRecord[heldRecord](c, r.id, r.raw)
	if err != nil {
		return
	}
	add := func(format string, args ...any) {
		p := c.problem(r, format, args...)
		p.Snapshot, p.Target = h.Snapshot, h.Target
		v.add(p)
	}
	info, ok := v.snapshots[h.Snapshot]
	switch {
	case !ok:
		add("its snapshot does not exist")
		return
	case info.target != h.Target:
		add("its snapshot belongs to target %s", info.target)
		return
	case info.takenAt.IsZero():
		return // the snapshot's manifest is reported already
	}
	before, seen := v.held[h.Snapshot]
	v.held[h.Snapshot] = h
	last, count, maxGap := info.takenAt, 0, int64(0)
	if seen {
		last, count, maxGap = before.LastAt, before.Count, before.MaxGapMS
	}
	gap := h.LastAt.Sub(last).Milliseconds()
	switch {
	case h.LastAt.Before(last):
		add("held at %s, before the capture it follows (%s)", h.LastAt.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano))
	case h.Summary && seen:
		add("a summary record follows another record of the snapshot")
	case h.Summary:
		if h.Count < 1 || h.MaxGapMS < 0 || h.MaxGapMS > gap+1 {
			add("%d captures with a longest gap of %dms do not fit between %s and %s", h.Count, h.MaxGapMS,
				info.takenAt.Format(time.RFC3339Nano), h.LastAt.Format(time.RFC3339Nano))
		}
	case h.Count != count+1:
		add("count is %d, but it is capture %d of the span", h.Count, count+1)
	case h.MaxGapMS != max(maxGap, gap):
		add("longest gap is %dms, but the captures give %dms", h.MaxGapMS, max(maxGap, gap))
	}
}

var errMoved = errors.New("the newest snapshot changed")

// SaveOrHold stores a capture like Save, unless it equals the target's newest snapshot
// artifact for artifact (see equal) and p allows holding it: then it only records that the
// snapshot held at m.TakenAt, and the Saved it returns names that snapshot with Held set.
func (s *Store) SaveOrHold(ctx context.Context, m *Manifest, contents [][]byte, p HoldPolicy) (*Saved, error) {
	if len(contents) != len(m.Artifacts) {
		return nil, fmt.Errorf("save: %d artifacts but %d contents", len(m.Artifacts), len(contents))
	}
	saved, err := s.hold(ctx, m, contents, p)
	if saved != nil || err != nil {
		return saved, err
	}
	return s.Save(ctx, m, contents)
}

// hold returns nil, nil when the capture must be stored as a snapshot.
func (s *Store) hold(ctx context.Context, m *Manifest, contents [][]byte, p HoldPolicy) (*Saved, error) {
	if p.MaxAge <= 0 || p.MaxGap <= 0 {
		return nil, nil
	}
	newest, err := s.Latest(ctx, m.Target)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	snap, err := s.Get(ctx, newest)
	if err != nil {
		return nil, err
	}
	at := m.TakenAt.UTC()
	if at.Sub(snap.Manifest.TakenAt) > p.MaxAge {
		return nil, nil
	}
	probe := *m
	probe.Artifacts = slices.Clone(m.Artifacts)
	for i, c := range contents {
		probe.Artifacts[i].SHA256, probe.Artifacts[i].Size = Hash(c), int64(len(c))
	}
	if !equal(&snap.Manifest, &probe) {
		return nil, nil
	}
	var appendedID string // the record an earlier attempt appended
	err = s.writeTxLocked(ctx, []string{"snapshots/" + m.Target, storeLock}, func(tx *sql.Tx) error {
		if done, err := appended(ctx, tx, heldChain, appendedID); err != nil || done {
			return err
		}
		// A snapshot stored meanwhile (by another process) ends the span: store this one too.
		var id string
		if err := tx.QueryRowContext(ctx, `SELECT id FROM snapshots WHERE target = ? ORDER BY seq DESC LIMIT 1`, m.Target).Scan(&id); err != nil {
			return err
		}
		if id != newest {
			return errMoved
		}
		rec := &heldRecord{Format: HeldFormat, Snapshot: newest, Target: m.Target, LastAt: at, Count: 1}
		last := snap.Manifest.TakenAt
		var hid string
		var raw []byte
		err := tx.QueryRowContext(ctx, `SELECT id, record FROM held WHERE snapshot = ? ORDER BY seq DESC LIMIT 1`, newest).Scan(&hid, &raw)
		switch {
		case err == nil:
			before, err := decodeRecord[heldRecord](heldChain, hid, raw)
			if err != nil {
				return err
			}
			last, rec.Count, rec.MaxGapMS = before.LastAt, before.Count+1, before.MaxGapMS
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		gap := at.Sub(last)
		if gap > p.MaxGap || gap < 0 {
			return errMoved
		}
		rec.MaxGapMS = max(rec.MaxGapMS, gap.Milliseconds())
		appendedID, _, err = appendRecord(ctx, tx, heldChain, rec)
		return err
	})
	if errors.Is(err, errMoved) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("record that %s still holds %s: %w", m.Target, short(newest), err)
	}
	return &Saved{ID: newest, Seq: snap.Manifest.Seq, Artifacts: len(snap.Manifest.Artifacts), Held: true}, nil
}

// equal reports whether two manifests capture the same thing: the same host (hostname,
// transport, address, host key, algorithms), profiles and tool version, and the same
// artifacts with the same content, command, exit code, file metadata and availability.
// Times, durations, stderr and notes are not compared: they are how a capture went, not what
// it found.
func equal(a, b *Manifest) bool {
	if a.Target != b.Target || a.Hostname != b.Hostname || a.Transport != b.Transport || a.Address != b.Address ||
		a.HostKey != b.HostKey || a.Legacy != b.Legacy || a.ToolVersion != b.ToolVersion ||
		!slices.Equal(a.Profiles, b.Profiles) || len(a.Artifacts) != len(b.Artifacts) {
		return false
	}
	byName := make(map[string]ArtifactEntry, len(a.Artifacts))
	for _, e := range a.Artifacts {
		byName[e.Name] = e
	}
	for _, e := range b.Artifacts {
		o, ok := byName[e.Name]
		if !ok || o.SHA256 != e.SHA256 || o.Size != e.Size || o.Source != e.Source || !slices.Equal(o.Command, e.Command) ||
			o.Path != e.Path || !sameCode(o.ExitCode, e.ExitCode) || o.Truncated != e.Truncated || o.FileSize != e.FileSize ||
			o.Mode != e.Mode || o.Owner != e.Owner || o.Group != e.Group || o.Unavailable != e.Unavailable || !maps.Equal(o.Meta, e.Meta) {
			return false
		}
		delete(byName, e.Name)
	}
	return len(byName) == 0
}

// Held returns the span over which snapshot id was found unchanged (its newest held record),
// or ErrNotFound when no capture has held it.
func (s *Store) Held(ctx context.Context, id string) (*Held, error) {
	var hid, taken string
	var raw []byte
	err := s.r.QueryRowContext(ctx, `SELECT h.id, h.record, s.taken_at
		FROM held h JOIN snapshots s ON s.id = h.snapshot WHERE h.snapshot = ? ORDER BY h.seq DESC LIMIT 1`, id).Scan(&hid, &raw, &taken)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("snapshot %s was not held by a later capture: %w", short(id), ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	rec, err := decodeRecord[heldRecord](heldChain, hid, raw)
	if err != nil {
		return nil, err
	}
	if rec.Snapshot != id {
		return nil, fmt.Errorf("held record %s names snapshot %s, not %s (the store was altered; run hardtrail store verify)", short(hid), short(rec.Snapshot), short(id))
	}
	h := &Held{Snapshot: id, Target: rec.Target, Until: rec.LastAt, Count: rec.Count, MaxGap: time.Duration(rec.MaxGapMS) * time.Millisecond}
	h.Since, _ = time.Parse(time.RFC3339Nano, taken)
	return h, nil
}

// HeldSpans returns the span of every snapshot of target that a later capture held (each
// snapshot's newest held record), by snapshot ID, in one query.
func (s *Store) HeldSpans(ctx context.Context, target string) (map[string]*Held, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT h.snapshot, h.id, h.record, s.taken_at
		FROM held h JOIN snapshots s ON s.id = h.snapshot WHERE h.target = ? ORDER BY h.seq`, target)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*Held{}
	for rows.Next() {
		var snap, hid, taken string
		var raw []byte
		if err := rows.Scan(&snap, &hid, &raw, &taken); err != nil {
			return nil, err
		}
		rec, err := decodeRecord[heldRecord](heldChain, hid, raw)
		if err != nil {
			return nil, err
		}
		if rec.Snapshot != snap || rec.Target != target {
			return nil, fmt.Errorf("held record %s names snapshot %s of %s, not %s of %s (the store was altered; run hardtrail store verify)", short(hid), short(rec.Snapshot), rec.Target, short(snap), target)
		}
		h := &Held{Snapshot: snap, Target: target, Until: rec.LastAt, Count: rec.Count, MaxGap: time.Duration(rec.MaxGapMS) * time.Millisecond}
		h.Since, _ = time.Parse(time.RFC3339Nano, taken)
		out[snap] = h
	}
	return out, rows.Err()
}

// sameCode reports whether two exit codes are both absent or both the same number.
func sameCode(a, b *int) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
