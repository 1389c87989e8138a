package ssh

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hardtrail/hardtrail/collector/transport"
)

// Gather implements transport.Transport: commands, file reads, glob expansions and glob reads run
// as the steps of one script in one session, so a profile's sources cost the target one login
// shell. A glob read expands its pattern on the target, keeps the names a case pattern may match,
// and reads each as a record of the step (see record.go); the names are then matched here with
// path.Match, like Glob's. It reads at most 4096 files; past that the glob read fails.
func (t *Transport) Gather(ctx context.Context, g transport.Gathering) (*transport.Gathered, error) {
	out, none, err := t.gather(ctx, g)
	if err != nil {
		return nil, err
	}
	if none != nil {
		return nil, none
	}
	return out, nil
}

// gather is Gather; none is set when no step produced anything: the call failed as a whole, for
// that reason.
func (t *Transport) gather(ctx context.Context, g transport.Gathering) (out *transport.Gathered, none, err error) {
	out = &transport.Gathered{
		Commands: make([]transport.BatchResult, len(g.Commands)),
		Files:    make([]transport.FileResult, len(g.Files)),
		Globs:    make([]transport.GlobResult, len(g.Globs)),

		GlobReads: make([]transport.GlobReadResult, len(g.GlobReads)),
	}
	if t.target.cfg.RawCommands {
		if len(g.Files)+len(g.Globs)+len(g.GlobReads) > 0 {
			return nil, nil, t.errRaw("reading files")
		}
		out.Commands = t.runRawBatch(ctx, g.Commands)
		var e *Error
		for _, r := range out.Commands {
			if r.Result != nil || !errors.As(r.Err, &e) {
				return out, nil, nil
			}
		}
		if len(out.Commands) > 0 {
			return nil, out.Commands[0].Err, nil
		}
		return out, nil, nil
	}
	type ref struct {
		kind stepKind
		i    int
	}
	var steps []step
	var refs []ref
	each := t.target.cfg.CommandTimeout
	var limit time.Duration
	for i, c := range g.Commands {
		if err := validCommand(c); err != nil {
			out.Commands[i].Err = err
			continue
		}
		max := c.MaxBytes
		if max <= 0 {
			max = transport.DefaultMaxBytes
		}
		d := t.commandTimeout(c)
		steps = append(steps, step{kind: stepCommand, argv: c.Argv, sudo: c.Sudo, max: max, timeout: d})
		refs = append(refs, ref{stepCommand, i})
		limit += d + 2*killGrace // SIGTERM, SIGKILL, and time for the target to report
	}
	for i, f := range g.Files {
		if f.Path == "" || validWord(f.Path) != nil {
			out.Files[i].Err = fmt.Errorf("read %q: bad path", f.Path)
			continue
		}
		max := f.MaxBytes
		if max <= 0 {
			max = transport.DefaultMaxBytes
		}
		steps = append(steps, step{kind: stepFile, path: f.Path, max: max})
		refs = append(refs, ref{stepFile, i})
		limit += each
	}
	patterns := make([]string, len(g.Globs))
	for i, pat := range g.Globs {
		p, err := validGlob(pat)
		if err != nil {
			out.Globs[i].Err = err
			continue
		}
		words, err := globWords(p)
		if err != nil {
			out.Globs[i].Err = fmt.Errorf("glob %q: %w", p, err)
			continue
		}
		patterns[i] = p
		steps = append(steps, step{kind: stepGlob, glob: words, max: transport.DefaultMaxBytes})
		refs = append(refs, ref{stepGlob, i})
		limit += each
	}
	readPatterns := make([]string, len(g.GlobReads))
	for i, gr := range g.GlobReads {
		p, err := validGlob(gr.Pattern)
		if err != nil {
			out.GlobReads[i].Err = err
			continue
		}
		words, err := globWords(p)
		if err != nil {
			out.GlobReads[i].Err = fmt.Errorf("glob %q: %w", p, err)
			continue
		}
		readPatterns[i] = p
		steps = append(steps, step{kind: stepGlobRead, glob: words, match: caseWord(p), max: capOf(gr.MaxBytes)})
		refs = append(refs, ref{stepGlobRead, i})
		limit += each
	}
	if len(steps) == 0 {
		return out, nil, nil
	}
	s, err := t.session(ctx, steps, limit+stopGrace)
	if err != nil {
		return nil, nil, err
	}
	produced := false
	for si, r := range refs {
		switch r.kind {
		case stepCommand:
			out.Commands[r.i].Result, out.Commands[r.i].Err = s.command(si, g.Commands[r.i].Argv[0])
		case stepFile:
			max := g.Files[r.i].MaxBytes
			if max <= 0 {
				max = transport.DefaultMaxBytes
			}
			out.Files[r.i].File, out.Files[r.i].Err = s.file(si, g.Files[r.i].Path, max)
		case stepGlob:
			out.Globs[r.i].Paths, out.Globs[r.i].Err = s.glob(si, patterns[r.i])
		case stepGlobRead:
			o := &out.GlobReads[r.i]
			o.Paths, o.Files, o.Err = s.globRead(si, readPatterns[r.i], capOf(g.GlobReads[r.i].MaxBytes))
		}
		produced = produced || !s.incomplete(si)
	}
	if !produced {
		return out, firstErr(out), nil
	}
	return out, nil, nil
}

// firstErr is the first error of a gathering that produced nothing: why the whole call failed.
func firstErr(g *transport.Gathered) error {
	for _, r := range g.Commands {
		if r.Err != nil {
			return r.Err
		}
	}
	for _, r := range g.Files {
		if r.Err != nil {
			return r.Err
		}
	}
	for _, r := range g.Globs {
		if r.Err != nil {
			return r.Err
		}
	}
	for _, r := range g.GlobReads {
		if r.Err != nil {
			return r.Err
		}
	}
	return errors.New("nothing was gathered")
}

// capOf is a cap as asked, or the default for zero.
func capOf(max int64) int64 {
	if max <= 0 {
		return transport.DefaultMaxBytes
	}
	return max
}
