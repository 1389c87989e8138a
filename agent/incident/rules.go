package incident

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/rules"
)

// Where the linked rules come from.
const (
	FromStore = "store" // the newest rule set evaluated on the incident's targets
	FromGiven = "given" // the rules given (--rules, the config), as the store holds none yet
	FromNone  = "none"
)

// RulesInfo says which rules are linked to the incident and where they come from.
type RulesInfo struct {
	From string `json:"from"`
	// SetDigest is the digest of the whole rule set the linked rules were taken from;
	// Digest that of the linked rules alone.
	SetDigest string       `json:"set_digest,omitempty"`
	Digest    string       `json:"digest,omitempty"`
	Linked    []LinkedRule `json:"linked"`
	// Changed lists linked rules that differ from the previous rule set evaluated that
	// linked rules to the incident: the verdict may have changed because the test did.
	Changed []RuleChange `json:"changed,omitempty"`
	// Given lists how the rules given now differ from those in the store; they are not used
	// until they are evaluated (hardtrail check, or the agent).
	Given []RuleChange `json:"given_differs,omitempty"`
	// Files are the stored rule files that define the linked rules or their waivers.
	Files []store.RuleFile `json:"-"`
}

// LinkedRule is one linked rule and the digest of its definition (with its waivers).
type LinkedRule struct {
	ID     string `json:"id"`
	Digest string `json:"digest"`
	Source string `json:"source"`
}

// RuleChange is a linked rule whose definition changed: Old or New is empty when the rule
// was added or removed.
type RuleChange struct {
	Rule string `json:"rule"`
	Old  string `json:"old,omitempty"`
	New  string `json:"new,omitempty"`
}

func (c RuleChange) String() string {
	switch {
	case c.Old == "":
		return fmt.Sprintf("%s added (%s)", c.Rule, c.New)
	case c.New == "":
		return fmt.Sprintf("%s removed (was %s)", c.Rule, c.Old)
	}
	return fmt.Sprintf("%s changed from %s to %s", c.Rule, c.Old, c.New)
}

// parsed caches rule sets loaded from a store by digest: a digest names its rules, so the
// text stored under it never changes.
var parsed sync.Map // store path and digest -> storedSet

type storedSet struct {
	set  *rules.Set
	text *store.RuleSet
}

// StoredSet loads the rule set with the digest from the store's text of it.
func StoredSet(ctx context.Context, st *store.Store, digest string) (*rules.Set, *store.RuleSet, error) {
	key := st.Path() + "\x00" + digest
	if v, ok := parsed.Load(key); ok {
		s := v.(storedSet)
		return s.set, s.text, nil
	}
	rs, err := st.RuleSet(ctx, digest)
	if err != nil {
		return nil, nil, err
	}
	files := make([]rules.File, len(rs.Files))
	for i, f := range rs.Files {
		files[i] = rules.File{Name: f.Name, Data: f.Text}
	}
	set, err := rules.LoadFiles(files...)
	if err != nil {
		return nil, nil, fmt.Errorf("stored rule set %s does not load: %w", digest, err)
	}
	parsed.Store(key, storedSet{set, rs})
	return set, rs, nil
}

// LinkedRules finds the rules linked to the incident: from the newest rule set evaluated on
// the targets that links rules to it, else from given. It also reports how they differ from
// the previous such rule set, and from given.
func LinkedRules(ctx context.Context, st *store.Store, id string, targets []string, given *rules.Set) (*rules.Set, *RulesInfo, error) {
	info := &RulesInfo{From: FromNone, Linked: []LinkedRule{}}
	digests, err := st.EvaluatedRuleSets(ctx, targets)
	if err != nil {
		return nil, nil, err
	}
	var current, previous *rules.Set
	var currentText *store.RuleSet
	for _, d := range digests {
		set, text, err := StoredSet(ctx, st, d)
		if err != nil {
			return nil, nil, err
		}
		l := Linked(set, id)
		if l.Len() == 0 {
			continue
		}
		if current == nil {
			current, currentText = l, text
			info.From, info.SetDigest = FromStore, d
			continue
		}
		if l.Digest() != current.Digest() {
			previous = l
			break
		}
	}
	givenLinked := Linked(given, id)
	if current == nil {
		if givenLinked == nil || givenLinked.Len() == 0 {
			return nil, info, nil
		}
		current, info.From, info.SetDigest = givenLinked, FromGiven, given.Digest()
		currentText = &store.RuleSet{}
		for _, f := range given.Texts() {
			currentText.Files = append(currentText.Files, store.RuleFile{Name: f.Name, SHA256: store.Hash(f.Data), Text: f.Data})
		}
	} else if givenLinked != nil && givenLinked.Len() > 0 && givenLinked.Digest() != current.Digest() {
		info.Given = changes(current, givenLinked)
	}
	info.Digest = current.Digest()
	for _, r := range current.Rules() {
		info.Linked = append(info.Linked, LinkedRule{ID: r.ID, Digest: ruleDigest(current, r.ID), Source: r.Source})
	}
	if previous != nil {
		info.Changed = changes(previous, current)
	}
	info.Files = linkedFiles(current, currentText)
	return current, info, nil
}

// ruleDigest is the digest of one rule of set with its waivers.
func ruleDigest(set *rules.Set, id string) string {
	return set.Filter(func(r *rules.Rule) bool { return r.ID == id }).Digest()
}

func changes(old, cur *rules.Set) []RuleChange {
	ids := map[string]bool{}
	for _, s := range []*rules.Set{old, cur} {
		for _, r := range s.Rules() {
			ids[r.ID] = true
		}
	}
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)
	var out []RuleChange
	for _, id := range sorted {
		var c RuleChange
		c.Rule = id
		if _, ok := old.Rule(id); ok {
			c.Old = ruleDigest(old, id)
		}
		if _, ok := cur.Rule(id); ok {
			c.New = ruleDigest(cur, id)
		}
		if c.Old != c.New {
			out = append(out, c)
		}
	}
	return out
}

// linkedFiles are the files of text that define a rule of linked, or a waiver of one.
func linkedFiles(linked *rules.Set, text *store.RuleSet) []store.RuleFile {
	if text == nil {
		return nil
	}
	want := map[string]bool{}
	for _, r := range linked.Rules() {
		want[fileOf(r.Source)] = true
	}
	for _, w := range linked.Waivers() {
		want[fileOf(w.Source)] = true
	}
	var out []store.RuleFile
	for _, f := range text.Files {
		if want[f.Name] {
			out = append(out, f)
		}
	}
	return out
}

// fileOf is the file of a "file:line" source.
func fileOf(src string) string {
	for i := len(src) - 1; i >= 0; i-- {
		if src[i] == ':' {
			return src[:i]
		}
		if src[i] < '0' || src[i] > '9' {
			break
		}
	}
	return src
}
