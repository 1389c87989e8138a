package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Phases of an incident link.
const (
	Before = "before"
	After  = "after"
)

// LinkFormat names the link record layout.
const LinkFormat = "hardtrail-link/1"

var incidentRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]{0,63}$`)

// CheckIncidentID returns an error naming the rule when id is not a valid incident ID.
func CheckIncidentID(id string) error {
	if !incidentRE.MatchString(id) {
		return fmt.Errorf("incident ID %q is invalid: it must start with a letter and hold at most 64 letters, digits, '.', '_' or '-' (such as INC-2026-0042)", id)
	}
	return nil
}

// CheckPhase returns an error unless phase is before or after.
func CheckPhase(phase string) error {
	if phase != Before && phase != After {
		return fmt.Errorf("phase %q is invalid: want before or after", phase)
	}
	return nil
}

// Link ties a snapshot to an incident as its before or after state. Links are records of their
// own, hash-chained in the order they were made; a snapshot is never rewritten by tagging.
type Link struct {
	Format   string    `json:"format"`
	Seq      int64     `json:"seq"`
	Prev     string    `json:"prev"`
	Incident string    `json:"incident"`
	Target   string    `json:"target"`
	Phase    string    `json:"phase"`
	Snapshot string    `json:"snapshot"`
	By       string    `json:"by"`
	Who      *Actor    `json:"who,omitempty"`
	At       time.Time `json:"at"`
	Note     string    `json:"note,omitempty"`
	// Signature is an SSHSIG signature (armored) over SignedBytes, when the operator signed.
	Signature string `json:"signature,omitempty"`

	ID string `json:"-"` // hex SHA-256 of the record
}

// notVoid is the SQL condition that a link (of table alias l) has not been voided.
const notVoid = `l.id NOT IN (SELECT link FROM incident_records WHERE kind = 'void')`

// Tag records a link from an incident to a snapshot. Incident, Phase, Snapshot and By are the
// caller's; Target, Seq, Prev, At and ID are filled here.
func (s *Store) Tag(ctx context.Context, l Link) (*Link, error) {
	if err := CheckIncidentID(l.Incident); err != nil {
		return nil, err
	}
	if err := CheckPhase(l.Phase); err != nil {
		return nil, err
	}
	if strings.TrimSpace(l.By) == "" {
		return nil, errors.New("tag: the operator is unknown; pass --by")
	}
	if err := s.checkCase(ctx, l.Incident); err != nil {
		return nil, err
	}
	snap, err := s.Get(ctx, l.Snapshot)
	if err != nil {
		return nil, err
	}
	if l.Signature != "" && l.Target != snap.Manifest.Target {
		return nil, fmt.Errorf("tag: the signed link names target %q, but snapshot %s is of %s", l.Target, short(l.Snapshot), snap.Manifest.Target)
	}
	l.Format, l.Target = LinkFormat, snap.Manifest.Target
	if l.At.IsZero() {
		l.At = time.Now()
	}
	l.At = l.At.UTC()
	err = s.WriteTx(ctx, func(tx *sql.Tx) error {
		var other string
		err := tx.QueryRowContext(ctx, `SELECT l.id FROM links l WHERE l.incident = ? AND l.snapshot = ? AND l.phase <> ? AND `+notVoid+` LIMIT 1`,
			l.Incident, l.Snapshot, l.Phase).Scan(&other)
		if err == nil {
			return fmt.Errorf("%w: snapshot %s is tagged %s of %s by link %s (capture the fixed state and tag that, or void the link with hardtrail tag --void %s --reason TEXT)",
				ErrSamePhases, short(l.Snapshot), otherPhase(l.Phase), l.Incident, short(other), short(other))
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		err = tx.QueryRowContext(ctx, `SELECT id, seq FROM links ORDER BY seq DESC LIMIT 1`).Scan(&l.Prev, &l.Seq)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		l.Seq++
		raw, err := json.Marshal(l)
		if err != nil {
			return err
		}
		l.ID = Hash(raw)
		_, err = tx.ExecContext(ctx, `INSERT INTO links (id, seq, prev, incident, target, phase, snapshot, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			l.ID, l.Seq, l.Prev, l.Incident, l.Target, l.Phase, l.Snapshot, raw)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tag %s as %s of %s: %w", short(l.Snapshot), l.Phase, l.Incident, err)
	}
	return &l, nil
}

func otherPhase(p string) string {
	if p == Before {
		return After
	}
	return Before
}

// Links returns an incident's links in the order they were made (all incidents when empty).
func (s *Store) Links(ctx context.Context, incident string) ([]Link, error) {
	return records(ctx, s, "links", "link", incident, func(l *Link, id string) { l.ID = id })
}

// records reads the JSON records of a chained table (links, status_events) in chain order,
// only the incident's when incident is set; setID gives each record its row's ID.
func records[T any](ctx context.Context, s *Store, table, what, incident string, setID func(*T, string)) ([]T, error) {
	q := `SELECT id, record FROM ` + table
	var args []any
	if incident != "" {
		q += ` WHERE incident = ?`
		args = append(args, incident)
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY seq`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var id string
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, err
		}
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("%s %s: corrupt record: %w", what, short(id), err)
		}
		setID(&v, id)
		out = append(out, v)
	}
	return out, rows.Err()
}

// Incidents lists the incident IDs that have links, sorted.
func (s *Store) Incidents(ctx context.Context) ([]string, error) {
	return s.strings(ctx, `SELECT DISTINCT incident FROM links ORDER BY incident`)
}

// PhaseSnapshot is the snapshot of the newest link of an incident's phase for target.
func (s *Store) PhaseSnapshot(ctx context.Context, incident, target, phase string) (string, error) {
	var id string
	err := s.r.QueryRowContext(ctx, `SELECT l.snapshot FROM links l WHERE l.incident = ? AND l.target = ? AND l.phase = ? AND `+notVoid+` ORDER BY l.seq DESC LIMIT 1`,
		incident, target, phase).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", NotFoundf("incident %s has no %s snapshot of %s", incident, phase, target)
	}
	return id, err
}

// resolvePhase resolves INCIDENT:before and INCIDENT:after (and INCIDENT:PHASE:TARGET when the
// incident spans several targets).
func (s *Store) resolvePhase(ctx context.Context, ref string) (string, bool, error) {
	parts := strings.Split(ref, ":")
	if len(parts) < 2 || len(parts) > 3 || (parts[1] != Before && parts[1] != After) {
		return "", false, nil
	}
	inc, phase := parts[0], parts[1]
	if err := CheckIncidentID(inc); err != nil {
		return "", true, err
	}
	inc, err := s.CanonicalIncident(ctx, inc)
	if err != nil {
		return "", true, err
	}
	if len(parts) == 3 {
		id, err := s.PhaseSnapshot(ctx, inc, parts[2], phase)
		return id, true, err
	}
	targets, err := s.strings(ctx, `SELECT DISTINCT l.target FROM links l WHERE l.incident = ? AND l.phase = ? AND `+notVoid+` ORDER BY l.target`, inc, phase)
	if err != nil {
		return "", true, err
	}
	switch len(targets) {
	case 0:
		var n int
		s.r.QueryRowContext(ctx, `SELECT count(*) FROM links WHERE incident = ?`, inc).Scan(&n)
		if n == 0 {
			return "", true, NotFoundf("unknown incident %s", inc)
		}
		return "", true, NotFoundf("incident %s has no %s snapshot yet", inc, phase)
	case 1:
		id, err := s.PhaseSnapshot(ctx, inc, targets[0], phase)
		return id, true, err
	}
	return "", true, fmt.Errorf("incident %s has %s snapshots of %d targets (%s): name one as %s:%s:TARGET",
		inc, phase, len(targets), strings.Join(targets, ", "), inc, phase)
}

// verifyLinks checks every link record's hash, the chain, and that each link's snapshot exists
// and belongs to the link's target.
func (s *Store) verifyLinks(ctx context.Context, add func(Problem)) (int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT l.id, l.seq, l.prev, l.incident, l.target, l.phase, l.snapshot, l.record, coalesce(s.target, '')
		FROM links l LEFT JOIN snapshots s ON s.id = l.snapshot ORDER BY l.seq`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	var lastID string
	var lastSeq int64
	for rows.Next() {
		var id, prev, inc, target, phase, snap, snapTarget string
		var seq int64
		var raw []byte
		if err := rows.Scan(&id, &seq, &prev, &inc, &target, &phase, &snap, &raw, &snapTarget); err != nil {
			return n, err
		}
		n++
		p := Problem{Target: target, Snapshot: snap}
		what := fmt.Sprintf("link %d (%s %s): ", seq, inc, phase)
		if Hash(raw) != id {
			p.Msg = what + "record hashes to " + short(Hash(raw)) + ", not its ID: the link was altered"
			add(p)
		}
		var l Link
		if err := json.Unmarshal(raw, &l); err != nil {
			p.Msg = what + "record is not valid JSON"
			add(p)
		} else if l.Seq != seq || l.Prev != prev || l.Incident != inc || l.Target != target || l.Phase != phase || l.Snapshot != snap {
			p.Msg = what + "index columns disagree with the record"
			add(p)
		}
		switch {
		case seq != lastSeq+1:
			p.Msg = fmt.Sprintf("%slink chain gap: seq %d follows seq %d (a link was removed)", what, seq, lastSeq)
			add(p)
		case prev != lastID:
			p.Msg = what + "link chain broken: prev is " + short(prev) + ", want " + short(lastID)
			add(p)
		}
		if snapTarget == "" {
			p.Msg = what + "its snapshot does not exist"
			add(p)
		} else if snapTarget != target {
			p.Msg = what + "its snapshot belongs to target " + snapTarget
			add(p)
		}
		lastID, lastSeq = id, seq
	}
	return n, rows.Err()
}
