package transport

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
)

// Fake is an in-memory Transport for tests: commands answer from a table keyed by their argv
// joined with spaces, files from a map. Unknown commands and files are ErrNotFound.
type Fake struct {
	Commands map[string]Result
	// Errors makes a command fail to run with the given error.
	Errors map[string]error
	Files  map[string]File
	Host   string

	mu  sync.Mutex
	ran []string
}

var _ Transport = (*Fake)(nil)

// Run implements Transport.
func (f *Fake) Run(ctx context.Context, c Command) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := strings.Join(c.Argv, " ")
	f.mu.Lock()
	f.ran = append(f.ran, key)
	f.mu.Unlock()
	if err, ok := f.Errors[key]; ok {
		return nil, err
	}
	r, ok := f.Commands[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", c.Argv[0], ErrNotFound)
	}
	max := c.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	if int64(len(r.Stdout)) > max {
		r.Stdout, r.Truncated = r.Stdout[:max], true
	}
	return &r, nil
}

// Ran returns the commands run so far.
func (f *Fake) Ran() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ran...)
}

// ReadFile implements Transport.
func (f *Fake) ReadFile(ctx context.Context, p string, maxBytes int64) (*File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	file, ok := f.Files[p]
	if !ok {
		return nil, fmt.Errorf("%s: %w", p, ErrNotFound)
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	file.Path = p
	if file.Size == 0 {
		file.Size = int64(len(file.Content))
	}
	if file.Mode == 0 {
		file.Mode = fs.FileMode(0o644)
	}
	if int64(len(file.Content)) > maxBytes {
		file.Content, file.Truncated = file.Content[:maxBytes], true
	}
	return &file, nil
}

// Glob implements Transport.
func (f *Fake) Glob(ctx context.Context, pattern string) ([]string, error) {
	var out []string
	for p := range f.Files {
		ok, err := path.Match(pattern, p)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Gather implements Transport, one step after the other.
func (f *Fake) Gather(ctx context.Context, g Gathering) (*Gathered, error) {
	return GatherEach(ctx, f, g, 1)
}

// Info implements Transport.
func (f *Fake) Info() Info { return Info{Kind: "fake", Hostname: f.Host} }

// Close implements Transport.
func (f *Fake) Close() error { return nil }
