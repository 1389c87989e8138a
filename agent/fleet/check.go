package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/rules"
)

// Check evaluates a rule set over a stored snapshot and stores the report (the JSON of one
// rules.Report) with the snapshot, keyed by the rule set's digest, and the rule set's text
// under that digest, so that the rules behind the verdict stay known to the store.
func Check(ctx context.Context, st *store.Store, snap *store.Snapshot, set *rules.Set, now time.Time) (rules.Report, error) {
	f, err := Facts(ctx, st, snap)
	if err != nil {
		return rules.Report{}, err
	}
	rep := rules.NewReport(set.Evaluate(ctx, f, now), snap.Manifest.Target, snap.ID, set.Digest(), now)
	raw, err := json.Marshal(rep)
	if err != nil {
		return rep, err
	}
	if err := SaveRuleSet(ctx, st, set, now); err != nil {
		return rep, err
	}
	if err := st.SaveResults(ctx, snap.ID, set.Digest(), now, raw); err != nil {
		return rep, fmt.Errorf("store results of %s: %w", store.Short(snap.ID), err)
	}
	return rep, nil
}

// StoredReport decodes a report saved by Check.
func StoredReport(r store.StoredResults) (rules.Report, error) {
	var rep rules.Report
	if err := json.Unmarshal(r.Report, &rep); err != nil {
		return rep, fmt.Errorf("results of %s by rules %s: %w", store.Short(r.Snapshot), r.RulesDigest, err)
	}
	return rep, nil
}

// SaveRuleSet stores the text of the rule set under its digest, unless it is stored already
// or the set holds no text (one built in memory).
func SaveRuleSet(ctx context.Context, st *store.Store, set *rules.Set, now time.Time) error {
	texts := set.Texts()
	if len(texts) == 0 && set.Len() > 0 {
		return nil
	}
	if ok, err := st.HasRuleSet(ctx, set.Digest()); err != nil || ok {
		return err
	}
	files := make([]store.RuleFile, len(texts))
	for i, f := range texts {
		files[i] = store.RuleFile{Name: f.Name, Text: f.Data}
	}
	return st.SaveRuleSet(ctx, set.Digest(), files, now)
}
