package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RecordFormat names the incident record layout.
const RecordFormat = "hardtrail-incident/1"

// Kinds of incident record.
const (
	KindOpen  = "open"
	KindNote  = "note"
	KindClose = "close"
	KindVoid  = "void"
)

// ErrCaseClash is returned when an incident ID differs only in case from one the store has:
// incident IDs are unique regardless of case.
var ErrCaseClash = errors.New("incident ID differs only in case from a stored one")

// ErrSamePhases is returned when one snapshot would be tagged as both the before and the
// after state of an incident: a non-change cannot prove a fix.
var ErrSamePhases = errors.New("the same snapshot cannot be both before and after")

// Actor is who made a record: the operator named (by --by or the login), the user who invoked
// hardtrail (SUDO_USER, else the user of the login uid) and the effective user it ran as.
type Actor struct {
	Invoker   string `json:"invoker,omitempty"`
	LoginUID  *int   `json:"login_uid,omitempty"`
	Effective string `json:"effective,omitempty"`
}

// Who is operator by, with who invoked hardtrail and as whom when w says so: "alice (invoked
// by bob, as root)".
func Who(by string, w *Actor) string {
	if w == nil {
		return by
	}
	var parts []string
	if w.Invoker != "" && w.Invoker != by {
		parts = append(parts, "invoked by "+w.Invoker)
	}
	if w.Effective != "" {
		parts = append(parts, "as "+w.Effective)
	}
	if len(parts) == 0 {
		return by
	}
	return by + " (" + strings.Join(parts, ", ") + ")"
}

// Record is one entry of an incident's record: its opening (title, severity, ticket,
// category), a note, its closure (approver, lessons learned) or the voiding of a link.
// Records are hash-chained over the store in the order they were made, and never changed.
type Record struct {
	Format   string `json:"format"`
	Seq      int64  `json:"seq"`
	Prev     string `json:"prev"`
	Incident string `json:"incident"`
	Kind     string `json:"kind"`
	Title    string `json:"title,omitempty"`
	Severity string `json:"severity,omitempty"`
	Ticket   string `json:"ticket,omitempty"`
	Category string `json:"category,omitempty"`
	// Text is a note's text, or why a link was voided.
	Text     string `json:"text,omitempty"`
	Approver string `json:"approver,omitempty"`
	Lessons  string `json:"lessons,omitempty"`
	// Status is the incident's status when it was closed.
	Status string `json:"status,omitempty"`
	// Link is the ID of the link a void record withdraws ("" for other kinds).
	Link string    `json:"link"`
	By   string    `json:"by"`
	Who  *Actor    `json:"who,omitempty"`
	At   time.Time `json:"at"`
	// Signature is an SSHSIG signature (armored) over SignedBytes, when the operator signed.
	Signature string `json:"signature,omitempty"`

	ID string `json:"-"`
}

func (r *Record) setChain(seq int64, prev string) { r.Seq, r.Prev = seq, prev }

var recordChain = &chain{
	table:     "incident_records",
	what:      "incident record",
	columns:   []string{"incident", "kind", "link"},
	extra:     map[string]string{"folded": "the record's incident in lower case, recomputed"},
	extraCols: []string{"folded"},
	check: func(v *verifier, c *chain, r *chainRow) {
		if f, want := text(r.extra[0]), strings.ToLower(r.str("incident")); f != want {
			v.add(c.problem(r, "column folded is %q, want %q", f, want))
		}
		if r.str("kind") == KindVoid {
			if links := v.chains[linkChain.table]; links == nil || links.byID[r.str("link")] == 0 {
				v.add(c.problem(r, "it voids link %s, which does not exist", short(r.str("link"))))
			}
		}
	},
}

func init() { registerChain(recordChain) }

// SignedBytes are the bytes an operator signature covers: the record without its place in
// the chain (seq, prev) and without the signature.
func (r Record) SignedBytes() []byte {
	r.Format, r.Seq, r.Prev, r.Signature = RecordFormat, 0, "", ""
	b, _ := json.Marshal(r)
	return b
}

// SignedBytes are the bytes an operator signature covers: the link without its place in the
// chain (seq, prev) and without the signature.
func (l Link) SignedBytes() []byte {
	l.Format, l.Seq, l.Prev, l.Signature = LinkFormat, 0, "", ""
	b, _ := json.Marshal(l)
	return b
}

// CanonicalIncident returns the spelling under which the store knows the incident (its first
// link or record), or id itself when the store does not know it.
func (s *Store) CanonicalIncident(ctx context.Context, id string) (string, error) {
	var name string
	err := s.r.QueryRowContext(ctx, `SELECT incident FROM (
		SELECT incident, 0 AS k, seq FROM links WHERE lower(incident) = ?
		UNION ALL SELECT incident, 1 AS k, seq FROM incident_records WHERE folded = ?) AS known ORDER BY k, seq LIMIT 1`,
		strings.ToLower(id), strings.ToLower(id)).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return id, nil
	}
	return name, err
}

// checkCase refuses id when the store knows the incident under another spelling.
func (s *Store) checkCase(ctx context.Context, id string) error {
	c, err := s.CanonicalIncident(ctx, id)
	if err != nil {
		return err
	}
	if c != id {
		return fmt.Errorf("incident %s: the store has it as %s; %w: use %s", id, c, ErrCaseClash, c)
	}
	return nil
}

// AddRecord appends a record to an incident's record. Incident, Kind, the kind's fields, By
// and Who are the caller's (At too when the record is signed); Seq, Prev, ID are filled here.
// An incident is opened once; a note, close or void needs it known (opened, or linked).
func (s *Store) AddRecord(ctx context.Context, r Record) (*Record, error) {
	if err := CheckIncidentID(r.Incident); err != nil {
		return nil, err
	}
	if strings.TrimSpace(r.By) == "" {
		return nil, errors.New("incident record: the operator is unknown; pass --by")
	}
	if err := s.checkCase(ctx, r.Incident); err != nil {
		return nil, err
	}
	switch r.Kind {
	case KindOpen:
		if strings.TrimSpace(r.Title) == "" {
			return nil, fmt.Errorf("open %s: a title is required", r.Incident)
		}
	case KindNote:
		if strings.TrimSpace(r.Text) == "" {
			return nil, fmt.Errorf("note on %s: empty text", r.Incident)
		}
	case KindClose:
		if strings.TrimSpace(r.Approver) == "" {
			return nil, fmt.Errorf("close %s: an approver is required", r.Incident)
		}
	case KindVoid:
		if strings.TrimSpace(r.Text) == "" {
			return nil, fmt.Errorf("void link %s: a reason is required", short(r.Link))
		}
	default:
		return nil, fmt.Errorf("incident record: unknown kind %q", r.Kind)
	}
	r.Format = RecordFormat
	if r.At.IsZero() {
		r.At = time.Now()
	}
	r.At = r.At.UTC()
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if done, err := appended(ctx, tx, recordChain, r.ID); err != nil || done {
			return err
		}
		var opened, linked int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM incident_records WHERE incident = ? AND kind = 'open'`, r.Incident).Scan(&opened); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM links WHERE incident = ?`, r.Incident).Scan(&linked); err != nil {
			return err
		}
		switch {
		case r.Kind == KindOpen && opened > 0:
			return fmt.Errorf("incident %s is already open: add to it with hardtrail incident note", r.Incident)
		case r.Kind != KindOpen && opened+linked == 0:
			return NotFoundf("unknown incident %s: open it with hardtrail incident open %s --title TEXT", r.Incident, r.Incident)
		}
		if r.Kind == KindVoid {
			var inc string
			err := tx.QueryRowContext(ctx, `SELECT incident FROM links WHERE id = ?`, r.Link).Scan(&inc)
			if errors.Is(err, sql.ErrNoRows) {
				return NotFoundf("no link %s", r.Link)
			}
			if err != nil {
				return err
			}
			if inc != r.Incident {
				return fmt.Errorf("link %s belongs to incident %s, not %s", short(r.Link), inc, r.Incident)
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM incident_records WHERE kind = 'void' AND link = ?`, r.Link).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("link %s of %s is already void", short(r.Link), inc)
			}
		}
		var err error
		r.ID, _, err = appendRecord(ctx, tx, recordChain, &r, strings.ToLower(r.Incident))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s record of %s: %w", r.Kind, r.Incident, err)
	}
	return &r, nil
}

// Records returns an incident's records in the order they were made (every incident's when
// incident is empty).
func (s *Store) Records(ctx context.Context, incident string) ([]Record, error) {
	return records(ctx, s, recordChain, incident, func(r *Record, id string) { r.ID = id })
}

// FindLink resolves a link by its ID or a unique prefix of at least 6 hex digits.
func (s *Store) FindLink(ctx context.Context, ref string) (*Link, error) {
	ref = strings.ToLower(ref)
	if len(ref) < 6 || !isHex(ref) {
		return nil, fmt.Errorf("link reference %q: give the link's ID or at least 6 of its hex digits (hardtrail incident show lists them)", ref)
	}
	ids, err := s.strings(ctx, `SELECT id FROM links WHERE id >= ? AND id < ? ORDER BY id LIMIT 2`, ref, ref+"g")
	if err != nil {
		return nil, err
	}
	switch len(ids) {
	case 0:
		return nil, NotFoundf("no link matches %q", ref)
	case 2:
		return nil, fmt.Errorf("link prefix %q is ambiguous: give more digits", ref)
	}
	var raw []byte
	if err := s.r.QueryRowContext(ctx, `SELECT record FROM links WHERE id = ?`, ids[0]).Scan(&raw); err != nil {
		return nil, err
	}
	var l Link
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("link %s: corrupt record: %w", short(ids[0]), err)
	}
	l.ID = ids[0]
	return &l, nil
}

// KnownIncidents lists every incident the store knows (linked or opened), sorted.
func (s *Store) KnownIncidents(ctx context.Context) ([]string, error) {
	return s.strings(ctx, `SELECT incident FROM links UNION SELECT incident FROM incident_records ORDER BY 1`)
}
