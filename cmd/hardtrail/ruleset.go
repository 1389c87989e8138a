package main

import (
	"context"

	"github.com/hardtrail/hardtrail/rules"
)

// BuiltinRules names the shipped rule packs in a rules list.
const BuiltinRules = "builtin"

// ruleSet loads the rules to evaluate: the given sources, else the config's `rules`, else the
// shipped packs. The word "builtin" in a list stands for the shipped packs.
func (a *app) ruleSet(ctx context.Context, sources []string) (*rules.Set, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		sources = cfg.Rules
	}
	if len(sources) == 0 {
		sources = []string{BuiltinRules}
	}
	var sets []*rules.Set
	var paths []string
	for _, src := range sources {
		if src == BuiltinRules {
			s, err := rules.Shipped()
			if err != nil {
				return nil, err
			}
			sets = append(sets, s)
			continue
		}
		paths = append(paths, src)
	}
	if len(paths) > 0 {
		s, err := rules.Load(paths...)
		if err != nil {
			return nil, &exitError{code: exitUsage, err: err}
		}
		sets = append(sets, s)
	}
	set, err := rules.Merge(sets...)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return set, nil
}
