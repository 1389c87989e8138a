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

// RuleSetFormat names the layout of a stored rule set.
const RuleSetFormat = "hardtrail-ruleset/1"

// RuleFile is one rule file of a stored rule set, verbatim.
type RuleFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Text   []byte `json:"text"`
}

// RuleSet is the text of a rule set whose results are stored: its files, named by the set's
// digest, so that the rules behind a stored verdict can be read and evaluated again whatever
// files are on disk later.
type RuleSet struct {
	Format   string     `json:"format"`
	Digest   string     `json:"digest"`
	Files    []RuleFile `json:"files"`
	StoredAt time.Time  `json:"-"`
}

// SaveRuleSet stores the files of the rule set with the digest, unless that digest is stored
// already (a digest names its rules, so the first text stored stays).
func (s *Store) SaveRuleSet(ctx context.Context, digest string, files []RuleFile, at time.Time) error {
	if digest == "" {
		return errors.New("save rule set: empty digest")
	}
	rs := RuleSet{Format: RuleSetFormat, Digest: digest, Files: make([]RuleFile, len(files))}
	for i, f := range files {
		rs.Files[i] = RuleFile{Name: f.Name, SHA256: Hash(f.Text), Text: f.Text}
	}
	raw, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	return s.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO rule_sets (digest, stored_at, sha256, record) VALUES (?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING`,
			digest, at.UTC().Format(time.RFC3339Nano), Hash(raw), compress(raw))
		if err != nil {
			return fmt.Errorf("save rule set %s: %w", digest, err)
		}
		return nil
	})
}

// HasRuleSet reports whether the text of the rule set with the digest is stored.
func (s *Store) HasRuleSet(ctx context.Context, digest string) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM rule_sets WHERE digest = ?`, digest).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// RuleSet returns the stored text of the rule set with the digest, checked against its hash.
func (s *Store) RuleSet(ctx context.Context, digest string) (*RuleSet, error) {
	var at, sum string
	var z []byte
	err := s.r.QueryRowContext(ctx, `SELECT stored_at, sha256, record FROM rule_sets WHERE digest = ?`, digest).Scan(&at, &sum, &z)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, NotFoundf("rule set %s is not stored", digest)
	}
	if err != nil {
		return nil, err
	}
	raw, err := decompress(z)
	if err != nil {
		return nil, fmt.Errorf("rule set %s: %w", digest, err)
	}
	if Hash(raw) != sum {
		return nil, fmt.Errorf("rule set %s: record does not match its hash (run hardtrail store verify)", digest)
	}
	var rs RuleSet
	if err := json.Unmarshal(raw, &rs); err != nil {
		return nil, fmt.Errorf("rule set %s: corrupt record: %w", digest, err)
	}
	for _, f := range rs.Files {
		if Hash(f.Text) != f.SHA256 {
			return nil, fmt.Errorf("rule set %s: file %s does not match its hash", digest, f.Name)
		}
	}
	rs.StoredAt, _ = time.Parse(time.RFC3339Nano, at)
	return &rs, nil
}

// EvaluatedRuleSets lists the digests of the stored rule sets that were evaluated on
// snapshots of the targets, the most recently evaluated first (by the newest evaluation of
// each).
func (s *Store) EvaluatedRuleSets(ctx context.Context, targets []string) ([]string, error) {
	if len(targets) == 0 {
		return nil, nil
	}
	q := `SELECT r.rules_digest FROM results r JOIN snapshots s ON s.id = r.snapshot JOIN rule_sets rs ON rs.digest = r.rules_digest
		WHERE s.target IN (?` + strings.Repeat(", ?", len(targets)-1) + `) GROUP BY r.rules_digest ORDER BY max(r.evaluated_at) DESC, r.rules_digest`
	args := make([]any, len(targets))
	for i, t := range targets {
		args[i] = t
	}
	return s.strings(ctx, q, args...)
}

func (s *Store) verifyRuleSets(ctx context.Context, add func(Problem)) (int, error) {
	digests, err := s.strings(ctx, `SELECT digest FROM rule_sets ORDER BY digest`)
	if err != nil {
		return 0, err
	}
	for _, d := range digests {
		if _, err := s.RuleSet(ctx, d); err != nil {
			add(Problem{Msg: err.Error()})
		}
	}
	return len(digests), nil
}
