package collector

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hardtrail/hardtrail/collector/transport"
)

// Artifact is one captured, normalised and redacted piece of configuration.
type Artifact struct {
	Name    string
	Source  string
	Content []byte
	// Command is the argv that ran (after fallback), nil for files.
	Command []string
	Path    string // the file read, for files
	// ExitCode is the command's exit status (-1 when a signal ended it or it was stopped at the
	// cap); nil when it has none: a file, a command that did not run, or one that timed out.
	ExitCode *int
	Stderr   string
	Duration time.Duration
	// Truncated means the output passed the cap and what is stored is its beginning.
	Truncated bool
	// Size is the file's size on the target (files only).
	Size  int64
	Mode  fs.FileMode
	Owner string
	Group string
	// Unavailable, when set, says why nothing was captured: not installed, not permitted,
	// timed out. The content is then empty and means nothing.
	Unavailable string
	// Meta holds the provenance values the source's meta rules extracted from the redacted
	// output (who changed the configuration, and when); nil when none matched.
	Meta map[string]string
}

// Capture is everything collected from one target in one run.
type Capture struct {
	Target    string
	Transport transport.Info
	Profiles  []string
	Started   time.Time
	Finished  time.Time
	Artifacts []Artifact // sorted by name
}

// Options tune a collection.
type Options struct {
	// Concurrency bounds how many sources run at once on the target (default 4).
	Concurrency int
	Logger      *slog.Logger
}

// Collect runs every source of the profiles on the transport. A source that cannot run (not
// installed, not permitted, timed out) yields an unavailable artifact and the capture goes on.
// Collect fails as a whole only when ctx ends or the transport itself breaks, because a partial
// capture stored as a snapshot would read as drift.
func Collect(ctx context.Context, tr transport.Transport, target string, profiles []*Profile, red *Redactor, opt Options) (*Capture, error) {
	if opt.Concurrency <= 0 {
		opt.Concurrency = 4
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Capture{Target: target, Transport: tr.Info(), Started: time.Now().UTC()}
	var sources []*Source
	for _, p := range profiles {
		c.Profiles = append(c.Profiles, p.Name)
		for i := range p.Sources {
			sources = append(sources, &p.Sources[i])
		}
	}
	var (
		mu      sync.Mutex
		arts    []Artifact
		fatal   error
		results = map[*Source]*transport.BatchResult{}
	)
	add := func(a ...Artifact) {
		mu.Lock()
		arts = append(arts, a...)
		mu.Unlock()
	}
	fail := func(err error) {
		mu.Lock()
		if fatal == nil {
			fatal = err
		}
		mu.Unlock()
	}

	// Interactive profiles run their commands in one CLI session each, before anything else.
	shelled, err := runShells(ctx, tr, profiles, results)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", target, err)
	}

	// Every other source in one Gather: commands, files, globs and the files they match.
	pre := &prefetched{}
	if err := gather(ctx, tr, sources, shelled, results, pre); err != nil {
		return nil, fmt.Errorf("target %s: %w", target, err)
	}

	sem := make(chan struct{}, opt.Concurrency)
	var wg sync.WaitGroup
	for _, s := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var a []Artifact
			var err error
			if len(s.Command) > 0 {
				var one Artifact
				one, err = s.runCommand(ctx, tr, red, results[s])
				a = []Artifact{one}
			} else {
				a, err = s.readFiles(ctx, tr, red, pre)
			}
			if err != nil {
				log.Warn("source failed", "target", target, "source", s.Name, "err", err)
				fail(err)
				return
			}
			add(a...)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("target %s: %w", target, err)
	}
	if fatal != nil {
		return nil, fmt.Errorf("target %s: %w", target, fatal)
	}
	sort.Slice(arts, func(i, j int) bool { return arts[i].Name < arts[j].Name })
	dropEphemeral(sources, arts)
	for i := range arts {
		red.redactFields(&arts[i])
	}
	for i := 1; i < len(arts); i++ {
		if arts[i].Name == arts[i-1].Name {
			return nil, fmt.Errorf("target %s: two sources yield artifact %q", target, arts[i].Name)
		}
	}
	c.Artifacts = arts
	// Read again: a transport learns the target's own hostname while it runs commands.
	c.Transport = tr.Info()
	c.Finished = time.Now().UTC()
	return c, nil
}

func (s *Source) timeout() time.Duration {
	if s.Timeout.Duration > 0 {
		return s.Timeout.Duration
	}
	return DefaultTimeout
}

// command is argv as the source runs it: its sudo, cap and timeout (zero: the transport's
// command timeout, a target's command_timeout).
func (s *Source) command(argv []string) transport.Command {
	return transport.Command{Argv: argv, Sudo: s.Sudo, MaxBytes: s.MaxBytes, Timeout: s.Timeout.Duration}
}

// prefetched holds what Gather read for file sources, by path and by pattern.
type prefetched struct {
	files map[string]transport.FileResult
	globs map[string]transport.GlobResult
}

// gather runs every source's command, reads every literal file, and expands every glob and reads
// what it matches, in one Gather: one round trip where the transport can.
func gather(ctx context.Context, g transport.Transport, sources []*Source, shelled map[*Source]bool, results map[*Source]*transport.BatchResult, pre *prefetched) error {
	var req transport.Gathering
	var cmdSources []*Source
	pre.files, pre.globs = map[string]transport.FileResult{}, map[string]transport.GlobResult{}
	seen := map[string]bool{}
	for _, s := range sources {
		switch {
		case len(s.Command) > 0 && !shelled[s]:
			req.Commands = append(req.Commands, s.command(s.Command))
			cmdSources = append(cmdSources, s)
		case len(s.Files) > 0:
			for _, f := range s.Files {
				if seen[f] {
					continue
				}
				seen[f] = true
				if isGlob(f) {
					req.GlobReads = append(req.GlobReads, transport.FileGlob{Pattern: f, MaxBytes: capFor(sources, f)})
				} else {
					req.Files = append(req.Files, transport.FileRead{Path: f, MaxBytes: s.MaxBytes})
				}
			}
		}
	}
	if len(req.Commands)+len(req.Files)+len(req.GlobReads) == 0 {
		return nil
	}
	got, err := g.Gather(ctx, req)
	if err != nil {
		return err
	}
	for i, s := range cmdSources {
		results[s] = &got.Commands[i]
	}
	for i, f := range req.Files {
		pre.files[f.Path] = got.Files[i]
	}
	if len(got.Commands) != len(req.Commands) || len(got.Files) != len(req.Files) || len(got.GlobReads) != len(req.GlobReads) {
		return fmt.Errorf("the %s transport returned %d, %d and %d results for %d commands, %d files and %d globs",
			g.Info().Kind, len(got.Commands), len(got.Files), len(got.GlobReads), len(req.Commands), len(req.Files), len(req.GlobReads))
	}
	for i, gr := range req.GlobReads {
		r := got.GlobReads[i]
		pre.globs[gr.Pattern] = transport.GlobResult{Paths: r.Paths, Err: r.Err}
		for k, p := range r.Paths {
			if _, ok := pre.files[p]; !ok && k < len(r.Files) {
				pre.files[p] = r.Files[k]
			}
		}
	}
	return nil
}

// capFor is the cap of the first source reading through pattern.
func capFor(sources []*Source, pattern string) int64 {
	for _, s := range sources {
		for _, f := range s.Files {
			if f == pattern {
				return s.MaxBytes
			}
		}
	}
	return 0
}

func isGlob(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// notPermitted matches what programs print when they lack privilege.
var notPermitted = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)permission denied|operation not permitted|must be root|you must be root|a password is required|not allowed to execute|are not in the sudoers`)
})

// runCommand runs the source's command, or its fallbacks when it is not installed. pre is the
// first command's result from the Gather.
func (s *Source) runCommand(ctx context.Context, tr transport.Transport, red *Redactor, pre *transport.BatchResult) (Artifact, error) {
	a := Artifact{Name: s.Name, Source: s.Name}
	red = red.forSource(s, "")
	cmds := append([][]string{s.Command}, s.Fallback...)
	var reasons []string
	for i, argv := range cmds {
		a.Command = argv
		var res *transport.Result
		var err error
		if i == 0 && pre != nil {
			res, err = pre.Result, pre.Err
		} else {
			res, err = tr.Run(ctx, s.command(argv))
		}
		if ctx.Err() != nil {
			return a, ctx.Err()
		}
		switch {
		case err == nil:
		case errors.Is(err, transport.ErrNotFound):
			reasons = append(reasons, "not installed: "+argv[0])
			continue
		case errors.Is(err, transport.ErrPermission):
			a.Unavailable = "not permitted: " + err.Error()
			return a, nil
		case errors.Is(err, context.DeadlineExceeded):
			// Stopped by its timeout (the source's, or the target's command_timeout): no
			// exit code of its own, and how long it really ran.
			a.Unavailable = "timed out"
			if res != nil {
				a.Duration, a.Stderr = res.Duration, string(s.redactAll(red, res.Stderr))
				a.Unavailable = fmt.Sprintf("timed out after %s", res.Duration.Round(100*time.Millisecond))
			}
			return a, nil
		default:
			return a, fmt.Errorf("source %s: %w", s.Name, err)
		}
		code := res.ExitCode
		a.ExitCode = &code
		a.Duration, a.Truncated = res.Duration, res.Truncated
		a.Stderr = string(s.redactAll(red, res.Stderr))
		if res.ExitCode != 0 && len(strings.TrimSpace(string(res.Stdout))) == 0 && notPermitted().Match(res.Stderr) {
			a.Unavailable = "not permitted: " + firstLine(a.Stderr)
			return a, nil
		}
		a.Content, a.Meta = s.finish(red, res.Stdout)
		return a, nil
	}
	a.Command = s.Command
	a.Unavailable = strings.Join(reasons, "; ")
	return a, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// readFiles reads every file the source names. A single named file that is missing or
// unreadable is an unavailable artifact; a glob that matches nothing yields none.
func (s *Source) readFiles(ctx context.Context, tr transport.Transport, red *Redactor, pre *prefetched) ([]Artifact, error) {
	var paths []string
	seen := map[string]bool{}
	for _, pat := range s.Files {
		if !isGlob(pat) {
			if !seen[pat] {
				paths, seen[pat] = append(paths, pat), true
			}
			continue
		}
		var m []string
		var err error
		if g, ok := pre.globs[pat]; ok {
			m, err = g.Paths, g.Err
		} else {
			m, err = tr.Glob(ctx, pat)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				// The files behind the pattern are unknown: say so under the source's name.
				return []Artifact{{Name: s.Name, Source: s.Name, Unavailable: fmt.Sprintf("timed out expanding %s", pat)}}, nil
			}
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		for _, p := range m {
			if !seen[p] {
				paths, seen[p] = append(paths, p), true
			}
		}
	}
	var out []Artifact
	for _, p := range paths {
		a := Artifact{Name: s.ArtifactName(p), Source: s.Name, Path: p}
		var f *transport.File
		var err error
		if r, ok := pre.files[p]; ok {
			f, err = r.File, r.Err
		} else {
			// Not read ahead: a name a glob gave only here.
			start := time.Now()
			f, err = tr.ReadFile(ctx, p, s.MaxBytes)
			a.Duration = time.Since(start)
		}
		switch {
		case err == nil:
			a.Size, a.Mode, a.Owner, a.Group, a.Truncated = f.Size, f.Mode, f.Owner, f.Group, f.Truncated
			a.Content, a.Meta = s.finish(red.forSource(s, p), f.Content)
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, transport.ErrNotFound):
			if !s.singleFile() {
				continue // vanished between glob and read
			}
			a.Unavailable = "no such file: " + p
		case errors.Is(err, transport.ErrPermission):
			a.Unavailable = "not permitted: " + p
		case errors.Is(err, context.DeadlineExceeded):
			a.Unavailable = "timed out reading " + p
		case errors.Is(err, transport.ErrNotRegular):
			a.Unavailable = err.Error()
		default:
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		out = append(out, a)
	}
	return out, nil
}
