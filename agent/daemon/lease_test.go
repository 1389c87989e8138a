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
	"github.com/hardtrail/hardtrail/internal/pgtest"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"github.com/hardtrail/hardtrail/rules"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// leasedAgent is a daemon dividing targets through a PostgreSQL store's leases.
type leasedAgent struct {
	d      *Daemon
	log    *testutil.SyncBuffer
	cancel context.CancelFunc
	done   chan struct{}
}

// startLeased runs a daemon as agent id over cfg on the store at loc.
func startLeased(t *testing.T, loc, id string, cfg *config.Config, red *collector.Redactor) *leasedAgent {
	t.Helper()
	st, err := store.Open(t.Context(), loc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	set, err := rules.LoadSources()
	if err != nil {
		t.Fatal(err)
	}
	a := &leasedAgent{log: &testutil.SyncBuffer{}, done: make(chan struct{})}
	load := func(context.Context) (*config.Config, *rules.Set, error) { return cfg, set, nil }
	logger := slog.New(slog.NewTextHandler(a.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if a.d, err = New(t.Context(), Options{Store: st, Redactor: red, Load: load, Logger: logger, Agent: id}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	a.cancel = cancel
	go func() {
		defer close(a.done)
		a.d.Run(ctx)
	}()
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("agent %s log:\n%s", id, a.log.String())
		}
	})
	return a
}

func (a *leasedAgent) stop() {
	a.cancel()
	<-a.done
}

func (a *leasedAgent) held() map[string]bool {
	if l := a.d.State().Lease; l != nil {
		return l.Held
	}
	return nil
}

// Two agents on one store divide four targets two and two, each showing only its own targets;
// a change of a watched file is captured by the agent holding the target and no other; an
// agent that stops hands its targets to the other at once.
func TestLeasedAgents(t *testing.T) {
	c := pgtest.Shared(t)
	loc := c.DSN(c.NewDB(t, ""), c.User)
	dir := t.TempDir()
	watched := filepath.Join(dir, "watched")
	testutil.Must(t, os.WriteFile(watched, []byte("one\n"), 0o600))
	var b strings.Builder
	fmt.Fprintf(&b, "store = %q\n[redact]\nkey_file = %q\n[agent]\ninterval = \"1s\"\n", loc, filepath.Join(dir, "key"))
	fmt.Fprintf(&b, "[[target]]\nname = \"local\"\nprofiles = [\"watched\"]\n")
	for i := range 3 {
		fmt.Fprintf(&b, "[[target]]\nname = \"t%d\"\nprofiles = [\"echo\"]\n", i)
	}
	fmt.Fprintf(&b, "[[profile]]\nname = \"watched\"\n[[profile.source]]\nname = \"app/conf\"\ncommand = [\"cat\", %q]\nwatch = [%q]\n", watched, watched)
	b.WriteString("[[profile]]\nname = \"echo\"\n[[profile.source]]\nname = \"echo\"\ncommand = [\"echo\", \"x\"]\n")
	cfg, err := config.Parse(filepath.Join(dir, "hardtrail.toml"), []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	key, err := collector.LoadOrCreateKey(cfg.Redact.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	red, err := collector.NewRedactor(key)
	if err != nil {
		t.Fatal(err)
	}
	agents := []*leasedAgent{startLeased(t, loc, "a1", cfg, red), startLeased(t, loc, "a2", cfg, red)}
	deadline := time.Now().Add(15 * time.Second)
	for len(agents[0].held()) != 2 || len(agents[1].held()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the agents hold %v and %v, want two targets each", agents[0].held(), agents[1].held())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Each shows its own targets once it captured them, and both the same lease count.
	deadline = time.Now().Add(15 * time.Second)
	for _, a := range agents {
		for {
			s := a.d.State()
			ok := len(s.Targets) == 2
			for name := range s.Targets {
				ok = ok && a.held()[name] && s.Targets[name].Collected
			}
			if ok && s.Lease.Agents == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("state of %s: targets %v, lease %+v", s.Lease.Agent, s.Targets, s.Lease)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	holder, other := agents[0], agents[1]
	if !holder.held()["local"] {
		holder, other = other, holder
	}
	before := strings.Count(holder.log.String(), `msg="capturing a target whose files changed"`)
	testutil.Must(t, os.WriteFile(watched, []byte("two\n"), 0o600))
	deadline = time.Now().Add(10 * time.Second)
	for strings.Count(holder.log.String(), `msg="capturing a target whose files changed"`) == before {
		if time.Now().After(deadline) {
			t.Fatal("the holder did not capture the changed target")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if strings.Contains(other.log.String(), `msg="capturing a target whose files changed"`) ||
		!strings.Contains(other.log.String(), `msg="a target whose files changed is another agent's"`) {
		t.Errorf("the agent not holding the target:\n%s", other.log.String())
	}
	// The holder stops: it releases its leases, and the other takes all four within a renewal
	// or two.
	holder.stop()
	start := time.Now()
	for len(other.held()) != 4 {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("after the other agent stopped, %s holds %v", other.d.State().Lease.Agent, other.held())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("targets taken over %s after the other agent stopped", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(holder.log.String(), `msg="leases released"`) {
		t.Errorf("the stopped agent did not release its leases")
	}
}
