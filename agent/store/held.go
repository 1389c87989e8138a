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

var errMoved = errors.New("the newest snapshot changed")

// SaveOrHold stores a capture like Save, unless it equals the target's newest snapshot
// artifact for artifact (see Equal) and p allows holding it: then it only records that the
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
	last := snap.Manifest.TakenAt
	if h, err := s.Held(ctx, newest); err == nil {
		last = h.Until
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	gap := at.Sub(last)
	if gap > p.MaxGap || gap < 0 {
		return nil, nil
	}
	probe := *m
	probe.Artifacts = slices.Clone(m.Artifacts)
	for i, c := range contents {
		probe.Artifacts[i].SHA256, probe.Artifacts[i].Size = Hash(c), int64(len(c))
	}
	if !Equal(&snap.Manifest, &probe) {
		return nil, nil
	}
	err = s.WriteTx(ctx, func(tx *sql.Tx) error {
		// A snapshot stored meanwhile (by another process) ends the span: store this one too.
		var id string
		if err := tx.QueryRowContext(ctx, `SELECT id FROM snapshots WHERE target = ? ORDER BY seq DESC LIMIT 1`, m.Target).Scan(&id); err != nil {
			return err
		}
		if id != newest {
			return errMoved
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO held (snapshot, target, last_at, count, max_gap_ms) VALUES (?, ?, ?, 1, ?)
			ON CONFLICT (snapshot) DO UPDATE SET last_at = excluded.last_at, count = count + 1, max_gap_ms = max(max_gap_ms, excluded.max_gap_ms)`,
			newest, m.Target, at.Format(time.RFC3339Nano), gap.Milliseconds())
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

// Equal reports whether two manifests capture the same thing: the same host (hostname,
// transport, address, host key, algorithms), profiles and tool version, and the same
// artifacts with the same content, command, exit code, file metadata and availability.
// Times, durations, stderr and notes are not compared: they are how a capture went, not what
// it found.
func Equal(a, b *Manifest) bool {
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

// Held returns the span over which snapshot id was found unchanged, or ErrNotFound when no
// capture has held it.
func (s *Store) Held(ctx context.Context, id string) (*Held, error) {
	var h Held
	var last, taken string
	var gap int64
	err := s.r.QueryRowContext(ctx, `SELECT h.snapshot, h.target, h.last_at, h.count, h.max_gap_ms, s.taken_at
		FROM held h JOIN snapshots s ON s.id = h.snapshot WHERE h.snapshot = ?`, id).Scan(&h.Snapshot, &h.Target, &last, &h.Count, &gap, &taken)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("snapshot %s was not held by a later capture: %w", short(id), ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	h.Until, _ = time.Parse(time.RFC3339Nano, last)
	h.Since, _ = time.Parse(time.RFC3339Nano, taken)
	h.MaxGap = time.Duration(gap) * time.Millisecond
	return &h, nil
}

// verifyHeld checks that every held span belongs to an existing snapshot of its target and
// lies after the snapshot's time.
func (s *Store) verifyHeld(ctx context.Context, add func(Problem)) (int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT h.snapshot, h.target, h.last_at, h.count, h.max_gap_ms, coalesce(s.target, ''), coalesce(s.taken_at, '')
		FROM held h LEFT JOIN snapshots s ON s.id = h.snapshot`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var snap, target, last, snapTarget, taken string
		var count int
		var gap int64
		if err := rows.Scan(&snap, &target, &last, &count, &gap, &snapTarget, &taken); err != nil {
			return n, err
		}
		n++
		p := Problem{Snapshot: snap, Target: target}
		until, uerr := time.Parse(time.RFC3339Nano, last)
		since, serr := time.Parse(time.RFC3339Nano, taken)
		switch {
		case snapTarget == "":
			p.Msg = "held span: its snapshot does not exist"
		case snapTarget != target:
			p.Msg = "held span: its snapshot belongs to target " + snapTarget
		case uerr != nil || serr != nil:
			p.Msg = fmt.Sprintf("held span: bad time %q", last)
		case until.Before(since):
			p.Msg = fmt.Sprintf("held span ends at %s, before the snapshot was taken (%s)", last, taken)
		case count < 1 || gap < 0 || time.Duration(gap)*time.Millisecond > until.Sub(since)+time.Millisecond:
			p.Msg = fmt.Sprintf("held span: %d captures with a longest gap of %dms do not fit between %s and %s", count, gap, taken, last)
		default:
			continue
		}
		add(p)
	}
	return n, rows.Err()
}

// sameCode reports whether two exit codes are both absent or both the same number.
func sameCode(a, b *int) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
