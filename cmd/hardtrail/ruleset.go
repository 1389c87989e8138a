package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/hardtrail/hardtrail/config"
	"github.com/hardtrail/hardtrail/rules"
	"github.com/hardtrail/hardtrail/rules/fetch"
)

// BuiltinRules names the shipped rule packs in a rules list.
const BuiltinRules = "builtin"

// ruleSet loads the rules to evaluate: the given sources, else the config's `rules`, else the
// shipped packs. Each source is the word "builtin" (the shipped packs), a local rule file or
// directory, or a remote source (https, git, file URL), fetched into the rules cache beside
// the store. All sources load as one set: rule IDs are unique across them, and a waiver may
// name a rule of any source, so a file of waivers can follow the packs it waives.
func (a *app) ruleSet(ctx context.Context, sources []string) (*rules.Set, error) {
	srcs, err := a.ruleSources(ctx, sources)
	if err != nil {
		return nil, err
	}
	set, err := rules.LoadSources(srcs...)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return set, nil
}

// ruleSources resolves rule sources to files to load, fetching remote ones.
func (a *app) ruleSources(ctx context.Context, sources []string) ([]rules.Source, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	base := "" // config entries are relative to the config file's directory
	if len(sources) == 0 {
		sources = cfg.Rules
		if cfg.File != "" {
			abs, err := filepath.Abs(cfg.File)
			if err != nil {
				return nil, &exitError{code: exitUsage, err: err}
			}
			base = filepath.Dir(abs)
		}
	}
	if len(sources) == 0 {
		sources = []string{BuiltinRules}
	}
	var out []rules.Source
	for _, src := range sources {
		switch {
		case src == BuiltinRules:
			out = append(out, rules.ShippedSource())
		case fetch.IsRemote(src):
			dir, err := a.fetchCached(ctx, src)
			if err != nil {
				return nil, &exitError{code: exitUsage, err: err}
			}
			out = append(out, rules.Source{Path: dir})
		case src == "":
			return nil, usageErr("empty rules source (give a file, a directory, %q or a URL)", BuiltinRules)
		default:
			out = append(out, rules.Source{Path: relTo(base, src)})
		}
	}
	return out, nil
}

// relTo resolves a config file's relative path (or ~/path) against the config's directory.
func relTo(base, p string) string {
	if base == "" || filepath.IsAbs(p) {
		return p
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, rest)
		}
	}
	return filepath.Join(base, p)
}

// fetchCached returns the directory holding the pack of a remote source, from the rules cache
// beside the store.
func (a *app) fetchCached(ctx context.Context, source string) (string, error) {
	cfg, err := a.config()
	if err != nil {
		return "", err
	}
	c := fetch.Cache{
		Dir:     config.Beside(cfg.StorePath(a.storeFlag), ".rules-cache"),
		Options: fetch.Options{Lint: lintPack, Logger: a.log},
	}
	return c.Get(ctx, source)
}

// lintPack is the check a fetched pack must pass before it is installed: every file loads as
// rules, except that waivers may name rules from other sources.
func lintPack(_ context.Context, dir string) error {
	_, _, err := rules.CheckPack(packSource(dir))
	return err
}

// packSource is a pack directory as a source whose files are named relative to it.
func packSource(dir string) rules.Source { return rules.Source{FS: os.DirFS(dir), Path: "."} }
