package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/collector"
	"github.com/hardtrail/hardtrail/config"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"github.com/hardtrail/hardtrail/rules"
)

// watchFixture is a daemon at a one-hour interval over a local target that reads dir/main
// through a command watching it, and dir/conf.d/*.conf as files; it logs to log.
type watchFixture struct {
	dir string
	st  *store.Store
	d   *Daemon
	log *testutil.SyncBuffer
}

func newWatchFixture(t *testing.T) *watchFixture {
	t.Helper()
	f := &watchFixture{dir: t.TempDir(), log: &testutil.SyncBuffer{}}
	main := filepath.Join(f.dir, "main")
	testutil.Must(t, os.WriteFile(main, []byte("setting 1\n"), 0o600))
	testutil.Must(t, os.Mkdir(filepath.Join(f.dir, "conf.d"), 0o700))
	src := fmt.Sprintf(`store = %q
[agent]
interval = "1h"
[[target]]
name = "local"
profiles = ["watched"]
timeout = "20s"
[[target]]
name = "other"
profiles = ["other"]
timeout = "20s"
[[profile]]
name = "watched"
[[profile.source]]
name = "app/effective"
command = ["cat", %q]
watch = [%q]
[[profile.source]]
name = "app/conf"
files = [%q]
[[profile]]
name = "other"
[[profile.source]]
name = "other/date"
command = ["echo", "unwatched"]
`, filepath.Join(f.dir, "h.db"), main, main, filepath.Join(f.dir, "conf.d", "*.conf"))
	cfg, err := config.Parse(filepath.Join(f.dir, "hardtrail.toml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.LoadSources()
	if err != nil {
		t.Fatal(err)
	}
	if f.st, err = store.Open(t.Context(), cfg.Store); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.st.Close() })
	key, err := collector.LoadOrCreateKey(cfg.KeyFile(cfg.Store))
	if err != nil {
		t.Fatal(err)
	}
	red, err := collector.NewRedactor(key)
	if err != nil {
		t.Fatal(err)
	}
	load := func(context.Context) (*config.Config, *rules.Set, error) { return cfg, set, nil }
	logger := slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if f.d, err = New(t.Context(), Options{Store: f.st, Redactor: red, Load: load, Logger: logger}); err != nil {
		t.Fatal(err)
	}
	return f
}

// run starts the daemon and waits for its first cycle.
func (f *watchFixture) run(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.d.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("agent log:\n%s", f.log.String())
		}
	})
	f.waitCycles(t, 1, 20*time.Second)
}

func (f *watchFixture) cycles() int { return strings.Count(f.log.String(), `msg="cycle done"`) }

func (f *watchFixture) waitCycles(t *testing.T, n int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for f.cycles() < n {
		if time.Since(start) > timeout {
			t.Fatalf("%d cycles, want %d within %s", f.cycles(), n, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// content is an artifact of the target's newest snapshot.
func (f *watchFixture) content(t *testing.T, artifact string) string {
	t.Helper()
	id, err := f.st.Latest(t.Context(), "local")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := f.st.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := f.st.Content(t.Context(), snap, artifact)
	if err != nil {
		return ""
	}
	return string(b)
}

// renameInto writes a file the way editors do: a new file, renamed over the old one.
func renameInto(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".swp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// A change to a watched file is captured within a second, at a one-hour interval: an edit
// renamed into place, a new file matching a files glob, a removed one. Only the target that
// reads the file is captured.
func TestCaptureOnChange(t *testing.T) {
	f := newWatchFixture(t)
	f.run(t)
	for _, step := range []struct {
		name     string
		change   func()
		artifact string
		want     string
	}{
		{"edit renamed into place", func() { renameInto(t, filepath.Join(f.dir, "main"), "setting 2\n") }, "app/effective", "setting 2\n"},
		{"written in place", func() { os.WriteFile(filepath.Join(f.dir, "main"), []byte("setting 3\n"), 0o600) }, "app/effective", "setting 3\n"},
		{"new file in a globbed directory", func() { os.WriteFile(filepath.Join(f.dir, "conf.d", "10-a.conf"), []byte("a\n"), 0o600) },
			"app/conf/" + strings.TrimPrefix(filepath.Join(f.dir, "conf.d", "10-a.conf"), "/"), "a\n"},
	} {
		n := f.cycles()
		logged := len(f.log.String())
		start := time.Now()
		step.change()
		f.waitCycles(t, n+1, 10*time.Second)
		took := time.Since(start)
		if got := f.content(t, step.artifact); got != step.want {
			t.Errorf("%s: %s is %q, want %q", step.name, step.artifact, got, step.want)
		}
		t.Logf("%s: captured %s after the change", step.name, took.Round(time.Millisecond))
		if took > MaxDelay+5*time.Second {
			t.Errorf("%s: captured %s after the change, want about %s plus a capture", step.name, took, Quiet)
		}
		if strings.Contains(f.log.String()[logged:], `target=other`) {
			t.Errorf("%s: the unwatched target was captured too", step.name)
		}
	}
}

// A storm of edits costs at most one capture per MaxDelay however the edits are paced,
// continuously or each just after the quiet period of the one before, and the last capture
// holds the last edit.
func TestCaptureOnChangeStorm(t *testing.T) {
	for _, pace := range []struct {
		name  string
		edits int
		gap   time.Duration
	}{
		{"continuous", 150, 10 * time.Millisecond},
		{"each after the quiet period", 20, Quiet + 50*time.Millisecond},
	} {
		t.Run(pace.name, func(t *testing.T) {
			f := newWatchFixture(t)
			f.run(t)
			before := f.cycles()
			began := time.Now()
			for i := range pace.edits {
				testutil.Must(t, os.WriteFile(filepath.Join(f.dir, "main"), fmt.Appendf(nil, "setting %d\n", i), 0o600))
				time.Sleep(pace.gap)
			}
			storm := time.Since(began) // longer than nominal on a loaded machine
			want := fmt.Sprintf("setting %d\n", pace.edits-1)
			deadline := time.Now().Add(10 * time.Second)
			for f.content(t, "app/effective") != want {
				if time.Now().After(deadline) {
					t.Fatalf("the last edit was never captured: %q", f.content(t, "app/effective"))
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(2 * MaxDelay) // anything still due
			captures := f.cycles() - before
			// One capture per MaxDelay of edits, one at the storm's end, and one for the edits
			// made during the last of them.
			if limit := int(storm/MaxDelay) + 3; captures > limit || captures < 1 {
				t.Errorf("%d edits over %s gave %d captures, want 1 to %d", pace.edits, storm, captures, limit)
			}
			t.Logf("%d edits over %s: %d captures", pace.edits, storm, captures)
		})
	}
}
