package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

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

// rulesCache is the directory beside the store that holds fetched rule packs, one directory
// per source named by the SHA-256 of the source as written.
func (a *app) rulesCache() (string, error) {
	cfg, err := a.config()
	if err != nil {
		return "", err
	}
	return cfg.StorePath(a.storeFlag) + ".rules-cache", nil
}

// fetchCached returns the directory holding the pack of a remote source. A pinned source (a
// checksum or a commit) that was fetched before is used as it is, without the network; any
// other source is fetched again each time. Fetches into the cache are serialised by a lock on
// the cache directory, so concurrent runs do not replace a pack under each other.
func (a *app) fetchCached(ctx context.Context, source string) (string, error) {
	if err := fetch.CheckSource(source); err != nil {
		return "", fmt.Errorf("rules source %s: %w", redactSource(source), err)
	}
	cache, err := a.rulesCache()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(source))
	dst := filepath.Join(cache, hex.EncodeToString(sum[:]))
	pinned := fetch.Pinned(source)
	if pinned && isDir(dst) {
		a.log.Debug("rule pack from the cache", "dir", dst)
		return dst, nil
	}
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return "", fmt.Errorf("rules cache: %w", err)
	}
	unlock, err := lockDir(cache)
	if err != nil {
		return "", fmt.Errorf("rules cache %s: %w", cache, err)
	}
	defer unlock()
	if pinned && isDir(dst) { // fetched by another run while this one waited
		return dst, nil
	}
	if err := fetch.Fetch(ctx, source, dst, fetch.Options{Lint: lintPack, Logger: a.log}); err != nil {
		return "", err
	}
	return dst, nil
}

// lintPack is the check a fetched pack must pass before it is installed: every file loads as
// rules, except that waivers may name rules from other sources.
func lintPack(_ context.Context, dir string) error {
	_, _, err := rules.CheckPack(packSource(dir))
	return err
}

// packSource is a pack directory as a source whose files are named relative to it.
func packSource(dir string) rules.Source { return rules.Source{FS: os.DirFS(dir), Path: "."} }

// redactSource leaves out a source's query, which may hold a presigned URL's signature.
func redactSource(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		return s[:i] + "?..."
	}
	return s
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// lockDir takes an exclusive lock on a directory, waiting for it, and returns its release.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}
