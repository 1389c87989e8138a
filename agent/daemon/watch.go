package daemon

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/hardtrail/hardtrail/config"
)

// Capture on change: the daemon watches the directories of the files that local targets'
// profiles read or depend on (a files source's globs and a source's watch list), and captures a
// target soon after one of its files changes, besides the interval. Directories are watched
// rather than files, so that an editor that writes a new file and renames it into place is
// seen. Events for one target are debounced: a capture starts once the target's files have
// been quiet for Quiet, and at the latest MaxDelay after the first change. Captures of a target
// on change start at least MaxDelay apart, and changes during a capture of the target give one
// more capture after it, never more: a storm of edits costs at most one capture per MaxDelay,
// however the edits are paced.
const (
	Quiet    = 100 * time.Millisecond
	MaxDelay = time.Second
)

// watchSet is what to watch: for each target the globs of its files, and the directories
// holding them.
type watchSet struct {
	globs map[string][]string // target -> globs
	dirs  []string
}

// watchSetOf collects the globs of every local target's profiles.
func watchSetOf(cfg *config.Config) watchSet {
	ws := watchSet{globs: map[string][]string{}}
	dirs := map[string]bool{}
	for i := range cfg.Targets {
		t := &cfg.Targets[i]
		if t.Transport != "local" {
			continue
		}
		profiles, err := cfg.ProfilesFor(t)
		if err != nil {
			continue // validated at load; a target without profiles has nothing to watch
		}
		for _, p := range profiles {
			for j := range p.Sources {
				for _, g := range p.Sources[j].WatchedFiles() {
					ws.globs[t.Name] = append(ws.globs[t.Name], g)
					dirs[staticDir(g)] = true
				}
			}
		}
	}
	for d := range dirs {
		ws.dirs = append(ws.dirs, d)
	}
	sort.Strings(ws.dirs)
	return ws
}

// staticDir is the deepest directory of an absolute glob that has no wildcard.
func staticDir(glob string) string {
	d := filepath.Dir(glob)
	for strings.ContainsAny(d, `*?[\`) {
		d = filepath.Dir(d)
	}
	return d
}

// targets returns the targets one of whose globs matches path, or whose watched directory
// path is (a directory of theirs created, removed or renamed).
func (ws watchSet) targets(path string) []string {
	var out []string
	for target, globs := range ws.globs {
		for _, g := range globs {
			if ok, _ := filepath.Match(g, path); ok || strings.HasPrefix(g, path+"/") {
				out = append(out, target)
				break
			}
		}
	}
	return out
}

// watch runs until ctx ends, capturing targets whose files change. It follows reloads.
func (d *Daemon) watch(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		d.log.Warn("capture on change is off: cannot watch files; targets are captured every interval", "err", err)
		return
	}
	defer w.Close()
	var ws watchSet
	watched := map[string]bool{}
	rewatch := func() {
		ws = watchSetOf(d.Config())
		want := map[string]bool{}
		for _, dir := range ws.dirs {
			// A directory that does not exist yet is seen when it appears in its parent.
			for ; dir != "/"; dir = filepath.Dir(dir) {
				if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
					break
				}
			}
			want[dir] = true
		}
		for dir := range watched {
			if !want[dir] {
				w.Remove(dir)
				delete(watched, dir)
			}
		}
		for dir := range want {
			if watched[dir] {
				continue
			}
			if err := w.Add(dir); err != nil {
				d.log.Warn("cannot watch a directory: its files are captured every interval", "dir", dir, "err", err)
				continue
			}
			watched[dir] = true
		}
		d.log.Debug("watching files for capture on change", "dirs", len(watched), "targets", len(ws.globs))
	}
	rewatch()

	type pending struct{ first, due time.Time }
	due := map[string]*pending{}
	started := map[string]time.Time{} // target -> when its last capture on change started
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	arm := func() {
		var next time.Time
		for _, p := range due {
			if next.IsZero() || p.due.Before(next) {
				next = p.due
			}
		}
		if !next.IsZero() {
			timer.Reset(max(0, time.Until(next)))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.rewatch:
			rewatch()
		case err := <-w.Errors:
			d.log.Warn("file watch", "err", err)
		case ev := <-w.Events:
			if ev.Op.Has(fsnotify.Create) {
				// A watched directory that was missing may exist now.
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					rewatch()
				}
			}
			now := time.Now()
			for _, t := range ws.targets(ev.Name) {
				p := due[t]
				if p == nil {
					p = &pending{first: now}
					due[t] = p
					d.log.Debug("file changed", "target", t, "path", ev.Name, "op", ev.Op.String())
				}
				p.due = now.Add(Quiet)
				if latest := p.first.Add(MaxDelay); latest.Before(p.due) {
					p.due = latest
				}
				// The previous capture started before the first of these changes, so this
				// delays a capture by at most MaxDelay after the change.
				if earliest := started[t].Add(MaxDelay); p.due.Before(earliest) {
					p.due = earliest
				}
			}
			arm()
		case <-timer.C:
			now := time.Now()
			for t, p := range due {
				if !p.due.After(now) {
					delete(due, t)
					started[t] = now
					d.captureChanged(ctx, t)
				}
			}
			arm()
		}
	}
}

// captureChanged captures a target whose files changed: now, or right after the capture of it
// in progress, which may have read the files before the change; unless another agent holds
// its lease.
func (d *Daemon) captureChanged(ctx context.Context, target string) {
	if !d.holds(target) {
		d.log.Debug("a target whose files changed is another agent's", "target", target)
		return
	}
	d.mu.Lock()
	busy := d.inFlight[target]
	if busy {
		d.again[target] = true
	}
	d.mu.Unlock()
	if !busy {
		d.log.Info("capturing a target whose files changed", "target", target)
		d.startTargets(ctx, []string{target}, changed)
	}
}
