package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRecordsChainAndTamper(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	a := save(t, s, "web1", map[string]string{"a": "weak"})
	l, err := s.Tag(ctx, Link{Incident: "INC-1", Phase: Before, Snapshot: a.ID, By: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddRecord(ctx, Record{Incident: "INC-2", Kind: KindNote, Text: "x", By: "bob"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("note on an unknown incident: %v", err)
	}
	for _, r := range []Record{
		{Incident: "INC-1", Kind: KindOpen, Title: "t", By: "alice"},
		{Incident: "INC-1", Kind: KindNote, Text: "root cause", By: "alice"},
		{Incident: "INC-1", Kind: KindVoid, Link: l.ID, Text: "wrong snapshot", By: "bob", At: time.Now()},
	} {
		if _, err := s.AddRecord(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddRecord(ctx, Record{Incident: "INC-1", Kind: KindOpen, Title: "again", By: "alice"}); err == nil || !strings.Contains(err.Error(), "already open") {
		t.Errorf("opened twice: %v", err)
	}
	// The voided link no longer names the phase's snapshot.
	if _, err := s.Resolve(ctx, "INC-1:before"); !errors.Is(err, ErrNotFound) {
		t.Errorf("INC-1:before after its only link was voided: %v", err)
	}
	if err := s.SaveRuleSet(ctx, "sha256:abc", []RuleFile{{Name: "r.toml", Text: []byte("# rules\n")}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(ctx)
	if err != nil || len(rep.Problems) != 0 || rep.Records["incident_records"] != 3 || rep.Records["rule_sets"] != 1 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	// Altering a record, removing one, or altering a stored rule set is found.
	if _, err := s.w.ExecContext(ctx, `UPDATE incident_records SET record = replace(record, 'root cause', 'no cause') WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM incident_records WHERE seq = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE rule_sets SET files_sha256 = 'x'`); err != nil {
		t.Fatal(err)
	}
	rep, _ = s.Verify(ctx)
	var msgs []string
	for _, p := range rep.Problems {
		msgs = append(msgs, p.String())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"chain gap: seq 2 follows seq 0", "not its ID: the record was altered", "column files_sha256 is \"x\""} {
		if !strings.Contains(all, want) {
			t.Errorf("verify lacks %q:\n%s", want, all)
		}
	}
}
