package fleet

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/collector"
	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/collector/transport/ssh"
	"github.com/hardtrail/hardtrail/config"

	_ "github.com/hardtrail/hardtrail/internal/testutil" // the -update flag every test binary takes
)

// fleetConfig is a config of ssh targets using one small profile; timeouts maps a target to its
// timeout.
func fleetConfig(t *testing.T, concurrency int, names []string, timeouts map[string]string) *config.Config {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "[agent]\nconcurrency = %d\n", concurrency)
	for i, n := range names {
		fmt.Fprintf(&b, "[[target]]\nname = %q\naddress = \"root@192.0.2.%d:22\"\nprofiles = [\"p\"]\n", n, i+1)
		if to := timeouts[n]; to != "" {
			fmt.Fprintf(&b, "timeout = %q\n", to)
		}
	}
	b.WriteString("[[profile]]\nname = \"p\"\n[[profile.source]]\nname = \"echo\"\ncommand = [\"echo\", \"x\"]\n")
	c, err := config.Parse("fleet.toml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newSnapshotter(t *testing.T, c *config.Config) *Snapshotter {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	red, err := collector.NewRedactor([]byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return &Snapshotter{Config: c, Store: st, Redactor: red}
}

// fake is a transport whose commands answer "x" after delay, unless ctx ends first; its host
// name is known once a command has run, as over SSH.
type fake struct {
	delay  time.Duration
	runErr error
	open   *atomic.Int32 // transports open at once, across the fleet
	mu     sync.Mutex
	host   string
}

func (f *fake) Run(ctx context.Context, c transport.Command) (*transport.Result, error) {
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.runErr != nil {
		return nil, f.runErr
	}
	f.mu.Lock()
	f.host = "learned-by-running"
	f.mu.Unlock()
	return &transport.Result{Stdout: []byte("x\n")}, nil
}

func (f *fake) ReadFile(context.Context, string, int64) (*transport.File, error) {
	return nil, transport.ErrNotFound
}
func (f *fake) Glob(context.Context, string) ([]string, error) { return nil, nil }
func (f *fake) Gather(ctx context.Context, g transport.Gathering) (*transport.Gathered, error) {
	return transport.GatherEach(ctx, f, g, 4)
}
func (f *fake) Info() transport.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return transport.Info{Kind: "ssh", Address: "fake", Hostname: f.host}
}
func (f *fake) Close() error {
	if f.open != nil {
		f.open.Add(-1)
	}
	return nil
}

// Each target's failure is its own and names its stage; the others are stored.
func TestRunContainsFailures(t *testing.T) {
	names := []string{"ok", "hostkey", "broken", "slow", "ok2"}
	c := fleetConfig(t, 64, names, map[string]string{"slow": "200ms"})
	dial := func(ctx context.Context, _ *config.Config, tg *config.Target) (transport.Transport, error) {
		switch tg.Name {
		case "hostkey":
			return nil, &ssh.Error{Stage: ssh.StageHostKey, Target: tg.Name, Address: tg.Address, Err: ssh.ErrHostKeyChanged}
		case "broken":
			return &fake{runErr: errors.New("the connection broke")}, nil
		case "slow":
			return &fake{delay: time.Hour}, nil
		}
		return &fake{}, nil
	}
	s := newSnapshotter(t, c)
	s.Dial = dial
	var progressed []string
	results, err := s.Run(t.Context(), nil, "", func(r Result) { progressed = append(progressed, r.Target) })
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(names) || len(progressed) != len(names) {
		t.Fatalf("%d results, %d progress calls for %d targets", len(results), len(progressed), len(names))
	}
	for i, tt := range []struct {
		stage string
		msg   []string
	}{
		{"", nil},
		{"hostkey", []string{"ssh hostkey (root@192.0.2.2:22): hostkey: host key does not match"}},
		{"collect", []string{"target broken", "source echo", "the connection broke"}},
		{"timeout", []string{"target slow", "the target's timeout of 200ms passed", "command_timeout"}},
		{"", nil},
	} {
		r := results[i]
		if r.Target != names[i] {
			t.Errorf("result %d is %s, want %s", i, r.Target, names[i])
		}
		if tt.stage == "" {
			if r.Err != nil || r.Saved == nil || r.Saved.Artifacts != 1 {
				t.Errorf("%s: %+v", r.Target, r)
			}
			continue
		}
		if r.Err == nil || r.Stage != tt.stage || r.Saved != nil {
			t.Errorf("%s: stage %q (want %s), saved %v, err %v", r.Target, r.Stage, tt.stage, r.Saved, r.Err)
			continue
		}
		for _, m := range tt.msg {
			if !strings.Contains(r.Err.Error(), m) {
				t.Errorf("%s: error lacks %q: %v", r.Target, m, r.Err)
			}
		}
	}
	if !errors.Is(results[3].Err, context.DeadlineExceeded) {
		t.Errorf("the timeout does not wrap context.DeadlineExceeded: %v", results[3].Err)
	}
	// The hostname a transport learned while capturing is in the manifest.
	snap, err := s.Store.Get(t.Context(), results[0].Saved.ID)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Manifest.Hostname != "learned-by-running" {
		t.Errorf("manifest hostname %q", snap.Manifest.Hostname)
	}
}

// At most [agent] concurrency targets are open at once, and with enough targets the bound is
// reached.
func TestRunConcurrency(t *testing.T) {
	for _, limit := range []int{1, 3, 8} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			var names []string
			for i := range 12 {
				names = append(names, fmt.Sprintf("t%02d", i))
			}
			var open, most atomic.Int32
			// The first targets wait for one another (or 5 s), so that the bound is reached
			// however slowly the machine starts them; a bound below limit shows as the wait
			// running out with fewer open.
			reached := make(chan struct{})
			var once sync.Once
			dial := func(context.Context, *config.Config, *config.Target) (transport.Transport, error) {
				n := open.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				if n >= int32(limit) {
					once.Do(func() { close(reached) })
				}
				select {
				case <-reached:
				case <-time.After(5 * time.Second):
				}
				return &fake{delay: 20 * time.Millisecond, open: &open}, nil
			}
			s := newSnapshotter(t, fleetConfig(t, limit, names, nil))
			s.Dial = dial
			results, err := s.Run(t.Context(), nil, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range results {
				if r.Err != nil {
					t.Errorf("%s: %v", r.Target, r.Err)
				}
			}
			if got := most.Load(); got != int32(limit) {
				t.Errorf("at most %d targets open at once, want %d", got, limit)
			}
		})
	}
}

// Cancelling the run (SIGINT) ends every target quickly: those not started are marked cancelled,
// and no cancelled target reads as its own timeout.
func TestRunCancelled(t *testing.T) {
	var names []string
	for i := range 6 {
		names = append(names, fmt.Sprintf("t%d", i))
	}
	dial := func(context.Context, *config.Config, *config.Target) (transport.Transport, error) {
		return &fake{delay: time.Hour}, nil
	}
	s := newSnapshotter(t, fleetConfig(t, 2, names, nil))
	s.Dial = dial
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	reported := map[string]int{}
	results, err := s.Run(ctx, nil, "", func(r Result) { reported[r.Target]++ })
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled run took %s", d)
	}
	notStarted := 0
	for _, r := range results {
		if r.Err == nil || !errors.Is(r.Err, context.Canceled) || r.Stage != "cancelled" || strings.Contains(r.Err.Error(), "the target's timeout") {
			t.Errorf("%s: stage %s: %v", r.Target, r.Stage, r.Err)
		}
		if strings.Contains(r.Err.Error(), "not started") {
			notStarted++
		}
		if reported[r.Target] != 1 {
			t.Errorf("%s reported %d times to progress", r.Target, reported[r.Target])
		}
	}
	if notStarted != len(names)-2 {
		t.Errorf("%d targets not started, want %d (2 were running)", notStarted, len(names)-2)
	}
}

func TestRunUnknownTarget(t *testing.T) {
	s := newSnapshotter(t, fleetConfig(t, 4, []string{"a"}, nil))
	if _, err := s.Run(t.Context(), []string{"a", "nosuch"}, "", nil); err == nil || !strings.Contains(err.Error(), `unknown target "nosuch"`) {
		t.Errorf("Run with an unknown target: %v", err)
	}
}
