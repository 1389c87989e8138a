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

// RuleSetFormat names the layout of a stored rule set's record.
const RuleSetFormat = "hardtrail-ruleset/1"

// maxRuleFiles bounds the decompression of a rule set's files.
const maxRuleFiles = 64 << 20

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
	Digest   string
	Files    []RuleFile
	StoredAt time.Time
}

// ruleSetRecord is the chained record of a stored rule set; the files are stored beside it
// (deflated) and covered by their hash and size.
type ruleSetRecord struct {
	Format      string    `json:"format"`
	Seq         int64     `json:"seq"`
	Prev        string    `json:"prev"`
	Digest      string    `json:"digest"`
	StoredAt    time.Time `json:"stored_at"`
	FilesSHA256 string    `json:"files_sha256"`
	FilesSize   int64     `json:"files_size"`
}

func (r *ruleSetRecord) setChain(seq int64, prev string) { r.Seq, r.Prev = seq, prev }

var ruleSetChain = &chain{
	table:     "rule_sets",
	what:      "rule set",
	columns:   []string{"digest", "files_sha256", "files_size"},
	extra:     map[string]string{"files": "decompressed (bounded by files_size) and hashed: must equal files_sha256; each file's hash recomputed"},
	extraCols: []string{"files"},
	check: func(v *verifier, c *chain, r *chainRow) {
		rec, err := decodeRecord[ruleSetRecord](c, r.id, r.raw)
		if err != nil {
			return // the hash is reported already
		}
		if _, err := ruleFiles(blobOf(r.extra[0]), rec); err != nil {
			v.add(c.problem(r, "column files: %v", err))
		}
	},
}

func init() { registerChain(ruleSetChain) }

// ruleFiles decompresses and checks a rule set's files against its record.
func ruleFiles(z []byte, rec ruleSetRecord) ([]RuleFile, error) {
	b, err := inflate(z, min(rec.FilesSize, maxRuleFiles))
	if err != nil {
		return nil, err
	}
	if Hash(b) != rec.FilesSHA256 || int64(len(b)) != rec.FilesSize {
		return nil, fmt.Errorf("hashes to %s (%d bytes), the record says %s (%d bytes): the rule files were altered", short(Hash(b)), len(b), short(rec.FilesSHA256), rec.FilesSize)
	}
	var files []RuleFile
	if err := json.Unmarshal(b, &files); err != nil {
		return nil, fmt.Errorf("not rule files: %w", err)
	}
	for _, f := range files {
		if Hash(f.Text) != f.SHA256 {
			return nil, fmt.Errorf("file %s does not match its hash", f.Name)
		}
	}
	return files, nil
}

// SaveRuleSet stores the files of the rule set with the digest, unless that digest is stored
// already (a digest names its rules, so the first text stored stays).
func (s *Store) SaveRuleSet(ctx context.Context, digest string, files []RuleFile, at time.Time) error {
	if digest == "" {
		return errors.New("save rule set: empty digest")
	}
	fs := make([]RuleFile, len(files))
	for i, f := range files {
		fs[i] = RuleFile{Name: f.Name, SHA256: Hash(f.Text), Text: f.Text}
	}
	raw, err := json.Marshal(fs)
	if err != nil {
		return err
	}
	rec := &ruleSetRecord{Format: RuleSetFormat, Digest: digest, StoredAt: at.UTC(), FilesSHA256: Hash(raw), FilesSize: int64(len(raw))}
	z := compress(raw)
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM rule_sets WHERE digest = ?`, digest).Scan(&one)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, _, err = appendRecord(ctx, tx, ruleSetChain, rec, z)
		return err
	})
	if err != nil {
		return fmt.Errorf("save rule set %s: %w", digest, err)
	}
	return nil
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

// RuleSet returns the stored text of the rule set with the digest, checked against its record.
func (s *Store) RuleSet(ctx context.Context, digest string) (*RuleSet, error) {
	var id string
	var raw, z []byte
	err := s.r.QueryRowContext(ctx, `SELECT id, record, files FROM rule_sets WHERE digest = ?`, digest).Scan(&id, &raw, &z)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, NotFoundf("rule set %s is not stored", digest)
	}
	if err != nil {
		return nil, err
	}
	rec, err := decodeRecord[ruleSetRecord](ruleSetChain, id, raw)
	if err != nil {
		return nil, err
	}
	if rec.Digest != digest {
		return nil, fmt.Errorf("rule set %s: its record names %s (run hardtrail store verify)", digest, rec.Digest)
	}
	files, err := ruleFiles(z, rec)
	if err != nil {
		return nil, fmt.Errorf("rule set %s: %w (run hardtrail store verify)", digest, err)
	}
	return &RuleSet{Digest: digest, Files: files, StoredAt: rec.StoredAt}, nil
}

// EvaluatedRuleSets lists the digests of the stored rule sets whose results are stored for
// snapshots of the targets, the one with the newest results first.
func (s *Store) EvaluatedRuleSets(ctx context.Context, targets []string) ([]string, error) {
	if len(targets) == 0 {
		return nil, nil
	}
	q := `SELECT r.rules_digest FROM results r JOIN snapshots s ON s.id = r.snapshot JOIN rule_sets rs ON rs.digest = r.rules_digest
		WHERE s.target IN (?` + strings.Repeat(", ?", len(targets)-1) + `) GROUP BY r.rules_digest ORDER BY max(r.seq) DESC, r.rules_digest`
	args := make([]any, len(targets))
	for i, t := range targets {
		args[i] = t
	}
	return s.strings(ctx, q, args...)
}
