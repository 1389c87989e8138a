package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Phases of an incident link.
const (
	Before = "before"
	After  = "after"
)

// LinkFormat names the link record layout.
const LinkFormat = "hardtrail-link/1"

var incidentRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]{0,63}$`) })

// CheckIncidentID returns an error naming the rule when id is not a valid incident ID.
func CheckIncidentID(id string) error {
	if !incidentRE().MatchString(id) {
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

func (l *Link) setChain(seq int64, prev string) { l.Seq, l.Prev = seq, prev }

var linkChain = &chain{
	table:   "links",
	what:    "link",
	columns: []string{"incident", "target", "phase", "snapshot"},
	check: func(v *verifier, c *chain, r *chainRow) {
		v.refSnapshot(c, r, r.str("snapshot"), r.str("target"))
	},
}

func init() { registerChain(linkChain) }

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
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		if done, err := appended(ctx, tx, linkChain, l.ID); err != nil || done {
			return err
		}
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
		l.ID, _, err = appendRecord(ctx, tx, linkChain, &l)
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
	return records(ctx, s, linkChain, incident, func(l *Link, id string) { l.ID = id })
}

// Incidents lists the incident IDs that have links, sorted.
func (s *Store) Incidents(ctx context.Context) ([]string, error) {
	return s.strings(ctx, `SELECT DISTINCT incident FROM links ORDER BY incident`)
}

// phaseSnapshot is the snapshot of the newest link of an incident's phase for target.
func (s *Store) phaseSnapshot(ctx context.Context, incident, target, phase string) (string, error) {
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
		id, err := s.phaseSnapshot(ctx, inc, parts[2], phase)
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
		id, err := s.phaseSnapshot(ctx, inc, targets[0], phase)
		return id, true, err
	}
	return "", true, fmt.Errorf("incident %s has %s snapshots of %d targets (%s): name one as %s:%s:TARGET",
		inc, phase, len(targets), strings.Join(targets, ", "), inc, phase)
}
