package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ResultsFormat names the layout of a results record (the report it covers is the rules
// package's own JSON).
const ResultsFormat = "hardtrail-result-record/1"

// StoredResults is one rule set's report on one snapshot, as the rules package wrote it (JSON).
type StoredResults struct {
	Snapshot    string
	RulesDigest string
	EvaluatedAt time.Time
	Report      []byte
}

// resultRecord is the chained record of one stored report; the report itself is stored
// beside it (deflated) and covered by its hash and size.
type resultRecord struct {
	Format       string    `json:"format"`
	Seq          int64     `json:"seq"`
	Prev         string    `json:"prev"`
	Snapshot     string    `json:"snapshot"`
	RulesDigest  string    `json:"rules_digest"`
	EvaluatedAt  time.Time `json:"evaluated_at"`
	ReportSHA256 string    `json:"report_sha256"`
	ReportSize   int64     `json:"report_size"`
}

func (r *resultRecord) setChain(seq int64, prev string) { r.Seq, r.Prev = seq, prev }

var resultChain = &chain{
	table:     "results",
	what:      "results",
	columns:   []string{"snapshot", "rules_digest", "evaluated_at", "report_sha256", "report_size"},
	extra:     map[string]string{"report": "decompressed (bounded by report_size) and hashed: must equal report_sha256"},
	extraCols: []string{"report"},
	check: func(v *verifier, c *chain, r *chainRow) {
		rec, err := decodeRecord[resultRecord](c, r.id, r.raw)
		if err != nil {
			return // the hash is reported already
		}
		info, ok := v.snapshots[rec.Snapshot]
		if !ok {
			v.add(c.problem(r, "its snapshot %s does not exist", short(rec.Snapshot)))
		}
		h, n, err := inflateHash(blobOf(r.extra[0]), rec.ReportSize)
		p := c.problem(r, "")
		p.Snapshot, p.Target = rec.Snapshot, info.target
		switch {
		case err != nil:
			p.Msg += "column report: " + err.Error()
		case h != rec.ReportSHA256 || n != rec.ReportSize:
			p.Msg += fmt.Sprintf("column report hashes to %s (%d bytes), the record says %s (%d bytes): the report was altered",
				short(h), n, short(rec.ReportSHA256), rec.ReportSize)
		default:
			return
		}
		v.add(p)
	},
}

func init() { registerChain(resultChain) }

// SaveResults stores a report of rule results on a snapshot, made at the given time by the rule
// set with the given digest, as a new record; the newest record is the snapshot's report by
// those rules. A report equal to that newest one but for the time it states (its RFC 3339 text)
// adds nothing: evaluating unchanged rules on an unchanged snapshot every cycle costs no
// storage, and a report that differs (a waiver expired) is a record of its own.
func (s *Store) SaveResults(ctx context.Context, snapshot, digest string, at time.Time, report []byte) error {
	if digest == "" {
		return errors.New("save results: empty rules digest")
	}
	rec := &resultRecord{Format: ResultsFormat, Snapshot: snapshot, RulesDigest: digest, EvaluatedAt: at.UTC(),
		ReportSHA256: Hash(report), ReportSize: int64(len(report))}
	// The common case, a capture that found nothing new, stores nothing: seen without the
	// store's write lock, which every agent sharing the store would otherwise queue on.
	if same, err := sameAsNewest(ctx, s.r, rec, report); err == nil && same {
		return nil
	}
	z := compress(report)
	var id string // the record an earlier attempt appended
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		if done, err := appended(ctx, tx, resultChain, id); err != nil || done {
			return err
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM snapshots WHERE id = ?`, snapshot).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return NotFoundf("save results: snapshot %s", short(snapshot))
			}
			return err
		}
		same, err := sameAsNewest(ctx, tx, rec, report)
		if err != nil || same {
			return err
		}
		id, _, err = appendRecord(ctx, tx, resultChain, rec, z)
		return err
	})
}

// rowQuerier reads one row: a database handle or a transaction.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// sameAsNewest reports whether the newest report stored for rec's snapshot and rule set equals
// report but for the time each states.
func sameAsNewest(ctx context.Context, tx rowQuerier, rec *resultRecord, report []byte) (bool, error) {
	var id string
	var raw, z []byte
	err := tx.QueryRowContext(ctx, `SELECT id, record, report FROM results WHERE snapshot = ? AND rules_digest = ? ORDER BY seq DESC LIMIT 1`,
		rec.Snapshot, rec.RulesDigest).Scan(&id, &raw, &z)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	old, err := decodeRecord[resultRecord](resultChain, id, raw)
	if err != nil {
		return false, nil // an altered record is verification's to report; store the new one
	}
	b, err := inflate(z, old.ReportSize)
	if err != nil || Hash(b) != old.ReportSHA256 {
		return false, nil
	}
	untimed := func(b []byte, at time.Time) []byte {
		return bytes.ReplaceAll(b, []byte(at.UTC().Format(time.RFC3339Nano)), nil)
	}
	return bytes.Equal(untimed(b, old.EvaluatedAt), untimed(report, rec.EvaluatedAt)), nil
}

// Results returns the newest report by each rule set stored for a snapshot, newest first.
func (s *Store) Results(ctx context.Context, snapshot string) ([]StoredResults, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, record, report FROM results WHERE snapshot = ? ORDER BY seq DESC`, snapshot)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []StoredResults
	seen := map[string]bool{}
	for rows.Next() {
		var id string
		var raw, z []byte
		if err := rows.Scan(&id, &raw, &z); err != nil {
			return nil, err
		}
		rec, err := decodeRecord[resultRecord](resultChain, id, raw)
		if err != nil {
			return nil, err
		}
		if rec.Snapshot != snapshot || seen[rec.RulesDigest] {
			continue
		}
		seen[rec.RulesDigest] = true
		r := StoredResults{Snapshot: snapshot, RulesDigest: rec.RulesDigest, EvaluatedAt: rec.EvaluatedAt}
		if r.Report, err = inflate(z, rec.ReportSize); err == nil && Hash(r.Report) != rec.ReportSHA256 {
			err = errors.New("report does not match its hash (run hardtrail store verify)")
		}
		if err != nil {
			return nil, fmt.Errorf("results of %s by rules %s: %w", short(snapshot), rec.RulesDigest, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
