// Package fleet captures targets with bounded concurrency and stores each capture as a snapshot.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/collector"
	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/config"
	"github.com/hardtrail/hardtrail/internal/buildinfo"
	"github.com/hardtrail/hardtrail/rules"
)

// Result is the outcome of capturing one target.
type Result struct {
	Target string
	Saved  *store.Saved
	Err    error
	// Stage is where it failed: config; the SSH stages dial, handshake, hostkey, auth,
	// command; timeout (a deadline passed, the target's own included); collect; store;
	// cancelled (the run ended before the target was captured); or begin (Begin declined
	// it, and Err matches ErrNotBegun).
	Stage    string
	Duration time.Duration
}

// ErrNotBegun is the error of a target that Snapshotter.Begin left out.
var ErrNotBegun = errors.New("not begun: another agent holds or captured it")

// Snapshotter captures targets into a store.
type Snapshotter struct {
	Config   *config.Config
	Store    *store.Store
	Redactor *collector.Redactor
	Logger   *slog.Logger
	// Hold, when set, records a capture equal to the target's newest snapshot as holding it
	// instead of storing a new snapshot (store.SaveOrHold); the daemon sets it, the snapshot
	// command does not.
	Hold store.HoldPolicy
	// Begin, when set, is asked just before each target's capture starts whether it may:
	// false leaves the target out (its Result's Err matches ErrNotBegun). The daemon checks
	// there that it still holds the target's lease and nobody captured it meanwhile.
	Begin func(ctx context.Context, target string) bool
	// Dial opens the transport to a target; nil means Dial, this package's own.
	Dial func(ctx context.Context, cfg *config.Config, t *config.Target) (transport.Transport, error)
}

// Run captures the named targets (every target when names is empty), at most
// Config.Agent.Concurrency at once. Each target's failure is its own: the others complete.
// progress, when set, is called once for every target as it finishes (or, when ctx ends first,
// is given up unstarted), from one goroutine at a time.
func (s *Snapshotter) Run(ctx context.Context, names []string, note string, progress func(Result)) ([]Result, error) {
	targets, err := s.pick(names)
	if err != nil {
		return nil, err
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	results := make([]Result, len(targets))
	var mu sync.Mutex
	report := func(i int, r Result) {
		if r.Err != nil {
			log.Info("capture failed", "target", r.Target, "stage", r.Stage, "err", r.Err)
		} else {
			log.Info("captured", "target", r.Target, "snapshot", store.Short(r.Saved.ID), "artifacts", r.Saved.Artifacts, "changed", r.Saved.Changed, "held", r.Saved.Held, "duration", r.Duration)
		}
		results[i] = r
		// Every target is reported, those never started too, so a progress display adds up
		// to the whole fleet.
		if progress != nil {
			mu.Lock()
			progress(r)
			mu.Unlock()
		}
	}
	notStarted := func(i int) {
		t := targets[i]
		report(i, Result{Target: t.Name, Err: fmt.Errorf("target %s: not started: %w", t.Name, ctx.Err()), Stage: "cancelled"})
	}
	// A fixed set of workers takes the targets in order: a target waiting its turn costs
	// nothing, however large the fleet.
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(len(targets), max(1, s.Config.Agent.Concurrency)) {
		wg.Go(func() {
			for i := range next {
				t := targets[i]
				if ctx.Err() != nil {
					notStarted(i)
					continue
				}
				if s.Begin != nil && !s.Begin(ctx, t.Name) {
					report(i, Result{Target: t.Name, Err: fmt.Errorf("target %s: %w", t.Name, ErrNotBegun), Stage: "begin"})
					continue
				}
				start := time.Now()
				r := s.one(ctx, t, note)
				r.Duration = time.Since(start)
				report(i, r)
			}
		})
	}
	for i := range targets {
		select {
		case <-ctx.Done():
			notStarted(i)
		case next <- i:
		}
	}
	close(next)
	wg.Wait()
	return results, nil
}

func (s *Snapshotter) pick(names []string) ([]*config.Target, error) {
	if len(names) == 0 {
		out := make([]*config.Target, len(s.Config.Targets))
		for i := range s.Config.Targets {
			out[i] = &s.Config.Targets[i]
		}
		return out, nil
	}
	var out []*config.Target
	seen := map[string]bool{}
	for _, n := range names {
		t, ok := s.Config.Target(n)
		if !ok {
			return nil, fmt.Errorf("unknown target %q (targets come from %s)", n, configName(s.Config))
		}
		if !seen[n] {
			out, seen[n] = append(out, t), true
		}
	}
	return out, nil
}

func configName(c *config.Config) string {
	if c.File == "" {
		return "the built-in default config, which has one target: local"
	}
	return c.File
}

func (s *Snapshotter) one(ctx context.Context, t *config.Target, note string) Result {
	r := Result{Target: t.Name}
	tctx, cancel := context.WithTimeout(ctx, t.Timeout.Duration)
	defer cancel()
	// fail records err at stage; when the run was cancelled or the target's own deadline
	// passed, that is the cause, whatever the error it surfaced as.
	fail := func(err error, stage string) Result {
		switch {
		case ctx.Err() != nil:
			stage = "cancelled"
		case errors.Is(tctx.Err(), context.DeadlineExceeded):
			err = fmt.Errorf("%w (the target's timeout of %s passed: raise timeout in its [[target]] table, "+
				"or set command_timeout to give up on single commands instead)", err, t.Timeout.Duration)
			stage = "timeout"
		}
		r.Err, r.Stage = err, stage
		return r
	}
	profiles, err := s.Config.ProfilesFor(t)
	if err != nil {
		return fail(err, "config")
	}
	dial := s.Dial
	if dial == nil {
		dial = Dial
	}
	tr, err := dial(tctx, s.Config, t)
	if err != nil {
		return fail(err, stageOf(err, "dial"))
	}
	closeTr := sync.OnceValue(tr.Close)
	defer closeTr()
	capt, err := collector.Collect(tctx, tr, t.Name, profiles, s.Redactor, collector.Options{Logger: s.Logger})
	if err != nil {
		return fail(err, stageOf(err, "collect"))
	}
	// A remote transport learns the target's hostname from its first command, after the
	// capture began: take the connection's description as it stands at the end.
	capt.Transport = tr.Info()
	// The connection ends before the wait for the store's write lock: its buffers, and the
	// target's login session, are not held by a capture that is only waiting to be stored.
	closeTr()
	m, contents := ToManifest(capt, note)
	// Storing is not bound by the target's deadline: a capture that finished is kept.
	saved, err := s.Store.SaveOrHold(context.WithoutCancel(tctx), m, contents, s.Hold)
	if err != nil {
		r.Err, r.Stage = err, "store"
		return r
	}
	r.Saved = saved
	return r
}

// stageOf names the stage err failed in: the SSH stage it carries, timeout for a deadline, or def.
func stageOf(err error, def string) string {
	if s := sshStage(err); s != "" {
		return s
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return def
}

// ToManifest turns a capture into a manifest and the artifacts' contents, in the same order.
func ToManifest(c *collector.Capture, note string) (*store.Manifest, [][]byte) {
	m := &store.Manifest{
		Target:      c.Target,
		Started:     c.Started,
		TakenAt:     c.Finished,
		Hostname:    c.Transport.Hostname,
		Transport:   c.Transport.Kind,
		Address:     c.Transport.Address,
		HostKey:     c.Transport.HostKey,
		Legacy:      c.Transport.Legacy,
		Profiles:    c.Profiles,
		ToolVersion: buildinfo.Version,
		Note:        note,
	}
	contents := make([][]byte, len(c.Artifacts))
	for i, a := range c.Artifacts {
		e := store.ArtifactEntry{
			Name:        a.Name,
			Source:      a.Source,
			Command:     a.Command,
			Path:        a.Path,
			ExitCode:    a.ExitCode,
			Stderr:      a.Stderr,
			DurationMS:  a.Duration.Milliseconds(),
			Truncated:   a.Truncated,
			FileSize:    a.Size,
			Owner:       a.Owner,
			Group:       a.Group,
			Unavailable: a.Unavailable,
			Meta:        a.Meta,
		}
		if a.Path != "" && a.Unavailable == "" {
			e.Mode = fmt.Sprintf("%04o", rules.UnixMode(a.Mode))
		}
		m.Artifacts = append(m.Artifacts, e)
		contents[i] = a.Content
		if contents[i] == nil {
			contents[i] = []byte{}
		}
	}
	return m, contents
}

// Facts loads a stored snapshot's artifacts as rules see them: evaluation reads evidence, never
// the live system, so the same snapshot gives the same verdict at any later time.
func Facts(ctx context.Context, st *store.Store, snap *store.Snapshot) (*rules.MemFacts, error) {
	return FactsOf(&snap.Manifest, func(e store.ArtifactEntry) ([]byte, error) {
		b, err := st.Blob(ctx, e.SHA256)
		if err != nil {
			return nil, fmt.Errorf("artifact %s of snapshot %s: %w", e.Name, store.Short(snap.ID), err)
		}
		return b, nil
	})
}

// FactsOf is what rules see of a snapshot's manifest, with each captured artifact's content
// from content: the store's blobs, or the files of an evidence bundle.
func FactsOf(m *store.Manifest, content func(store.ArtifactEntry) ([]byte, error)) (*rules.MemFacts, error) {
	f := rules.NewMemFacts(m.Target)
	for _, e := range m.Artifacts {
		a := rules.Artifact{Name: e.Name, Unavailable: e.Unavailable, Command: e.Command, ExitCode: -1, Truncated: e.Truncated, Owner: e.Owner, Group: e.Group}
		if e.ExitCode != nil {
			a.ExitCode = *e.ExitCode
		}
		if e.Mode != "" {
			if m, err := strconv.ParseUint(e.Mode, 8, 32); err == nil {
				a.Mode = fs.FileMode(m & 0o777)
				if m&0o4000 != 0 {
					a.Mode |= fs.ModeSetuid
				}
				if m&0o2000 != 0 {
					a.Mode |= fs.ModeSetgid
				}
				if m&0o1000 != 0 {
					a.Mode |= fs.ModeSticky
				}
			}
		}
		if e.Unavailable == "" {
			b, err := content(e)
			if err != nil {
				return nil, err
			}
			a.Content = b
		}
		f.Artifacts[e.Name] = a
	}
	return f, nil
}

// FactsKey is the part of a manifest that FactsOf reads: two manifests with the same key have
// the same facts (given the same content for the same hash), so rules judge them alike.
func FactsKey(m *store.Manifest) string {
	var b strings.Builder
	b.WriteString(strconv.Quote(m.Target))
	for _, e := range m.Artifacts {
		exit := "-"
		if e.ExitCode != nil {
			exit = strconv.Itoa(*e.ExitCode)
		}
		fmt.Fprintf(&b, "\n%q %s %d %q %q %s %t %q %q %q", e.Name, e.SHA256, e.Size, e.Unavailable, e.Command, exit, e.Truncated, e.Owner, e.Group, e.Mode)
	}
	return b.String()
}
