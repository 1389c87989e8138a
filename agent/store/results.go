package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// StoredResults is one rule set's report on one snapshot, as the rules package wrote it (JSON).
type StoredResults struct {
	Snapshot    string
	RulesDigest string
	EvaluatedAt time.Time
	Report      []byte
}

// SaveResults stores a report of rule results on a snapshot, keyed by the digest of the rule set
// that produced it. Evaluating the same rules on the same snapshot again replaces the report.
func (s *Store) SaveResults(ctx context.Context, snapshot, digest string, at time.Time, report []byte) error {
	if digest == "" {
		return errors.New("save results: empty rules digest")
	}
	return s.WriteTx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM snapshots WHERE id = ?`, snapshot).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return NotFoundf("save results: snapshot %s", short(snapshot))
			}
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO results (snapshot, rules_digest, evaluated_at, sha256, report) VALUES (?, ?, ?, ?, ?)`,
			snapshot, digest, at.UTC().Format(time.RFC3339Nano), Hash(report), compress(report))
		return err
	})
}

// Results returns the reports stored for a snapshot, newest first.
func (s *Store) Results(ctx context.Context, snapshot string) ([]StoredResults, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT rules_digest, evaluated_at, sha256, report FROM results WHERE snapshot = ? ORDER BY evaluated_at DESC`, snapshot)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []StoredResults
	for rows.Next() {
		var r StoredResults
		var at, sum string
		var z []byte
		if err := rows.Scan(&r.RulesDigest, &at, &sum, &z); err != nil {
			return nil, err
		}
		r.Snapshot = snapshot
		r.EvaluatedAt, _ = time.Parse(time.RFC3339Nano, at)
		if r.Report, err = decompress(z); err != nil {
			return nil, fmt.Errorf("results of %s: %w", short(snapshot), err)
		}
		if Hash(r.Report) != sum {
			return nil, fmt.Errorf("results of %s by rules %s: report does not match its hash (run hardtrail store verify)", short(snapshot), r.RulesDigest)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *Store) verifyResults(ctx context.Context, add func(Problem)) (int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT r.snapshot, r.rules_digest, r.sha256, r.report, coalesce(s.target, '') FROM results r LEFT JOIN snapshots s ON s.id = r.snapshot`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var snap, digest, sum, target string
		var z []byte
		if err := rows.Scan(&snap, &digest, &sum, &z, &target); err != nil {
			return n, err
		}
		n++
		p := Problem{Snapshot: snap, Target: target}
		b, err := decompress(z)
		switch {
		case err != nil:
			p.Msg = "results by rules " + digest + ": " + err.Error()
			add(p)
		case Hash(b) != sum:
			p.Msg = "results by rules " + digest + ": report does not match its hash: it was altered"
			add(p)
		}
		if target == "" {
			p.Msg = "results by rules " + digest + ": their snapshot does not exist"
			add(p)
		}
	}
	return n, rows.Err()
}
