package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hardtrail/hardtrail/agent/fleet"
	"github.com/hardtrail/hardtrail/agent/incident"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/collector"
	"github.com/hardtrail/hardtrail/config"
	"github.com/hardtrail/hardtrail/rules"
)

// Loader reads the configuration and the rules. The daemon calls it once when created and
// again on every Reload.
type Loader func(ctx context.Context) (*config.Config, *rules.Set, error)

// DefaultMaxAge is how old a target's newest snapshot may grow while captures find it
// unchanged before the daemon stores a new one anyway.
const DefaultMaxAge = 24 * time.Hour

// Options configure a Daemon.
type Options struct {
	Store    *store.Store
	Redactor *collector.Redactor
	Load     Loader
	Logger   *slog.Logger
	// MaxAge overrides DefaultMaxAge.
	MaxAge time.Duration
	// Agent, when set, is this agent's ID among the agents that share the store and divide
	// their targets through its leases (see Run): the agent captures only the targets it
	// holds. Empty: every configured target, every interval.
	Agent string
	// Settled, when set, is called after the rules are loaded (at New and on each Reload)
	// and after each cycle has published its state, before the cycle is reported done:
	// the points where what was needed to get there is garbage, such as returning memory
	// to the operating system.
	Settled func()
}

// Daemon collects targets, evaluates rules and keeps incidents' status, cycle after cycle,
// and holds the resulting State for the metrics.
type Daemon struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex // guards the fields below
	cfg      *config.Config
	set      *rules.Set
	state    *State
	view     *State // state.exported(): what State returns
	inFlight map[string]bool
	again    map[string]bool // targets whose files changed while they were being collected
	runCtx   context.Context // Run's, for the captures that release starts again

	joined bool // the first renewal of the leases is done (Run's goroutine only)
	// analysisWaiting: with leases, an analysis waits for the one running (guarded by mu).
	analysisWaiting bool
	analysing       sync.Mutex // one incident analysis at a time
	reloaded        chan struct{}
	rewatch         chan struct{}
	cycles          sync.WaitGroup
}

// New loads the configuration and rules and returns a daemon that has not collected yet.
func New(ctx context.Context, opts Options) (*Daemon, error) {
	if opts.Store == nil || opts.Load == nil {
		return nil, errors.New("daemon: a store and a loader are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	cfg, set, err := opts.Load(ctx)
	if err != nil {
		return nil, err
	}
	d := &Daemon{opts: opts, log: opts.Logger, cfg: cfg, set: set, inFlight: map[string]bool{}, again: map[string]bool{},
		reloaded: make(chan struct{}, 1), rewatch: make(chan struct{}, 1)}
	d.state = (&State{Reload: Reload{OK: true, At: time.Now()}}).clone()
	for _, t := range cfg.Targets {
		d.state.Targets[t.Name] = TargetState{}
	}
	if opts.Agent != "" {
		d.state.Lease = &LeaseState{Agent: opts.Agent, Held: map[string]bool{}}
	}
	d.view = d.state.exported()
	d.settled()
	return d, nil
}

func (d *Daemon) settled() {
	if d.opts.Settled != nil {
		d.opts.Settled()
	}
}

// State returns the state of the latest collections, as /metrics shows it (see
// State.exported). It never waits for a cycle.
func (d *Daemon) State() *State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.view
}

// Config returns the configuration in use.
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// update publishes a changed copy of the state.
func (d *Daemon) update(fn func(*State)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.state.clone()
	fn(s)
	d.state, d.view = s, s.exported()
}

// Rules returns the rule set in force.
func (d *Daemon) Rules() *rules.Set {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.set
}

// Reload loads the configuration and rules again. When that fails, the daemon keeps the
// previous ones, the state's Reload.OK turns false, and the error is returned.
func (d *Daemon) Reload(ctx context.Context) error {
	cfg, set, err := d.opts.Load(ctx)
	if err != nil {
		d.update(func(s *State) { s.Reload.OK = false })
		d.log.Error("reload failed: keeping the previous configuration and rules", "err", err)
		return err
	}
	d.mu.Lock()
	old := d.cfg
	d.cfg, d.set = cfg, set
	d.mu.Unlock()
	if cfg.Agent.Listen != old.Agent.Listen || cfg.Agent.WebConfig != old.Agent.WebConfig {
		d.log.Warn("the listen address and web config change only when the agent restarts", "listen", old.Agent.Listen, "web_config", old.Agent.WebConfig)
	}
	d.update(func(s *State) {
		s.Reload = Reload{OK: true, At: time.Now()}
		targets := map[string]TargetState{}
		for _, t := range cfg.Targets {
			targets[t.Name] = s.Targets[t.Name]
		}
		s.Targets = targets
	})
	for _, c := range []chan struct{}{d.reloaded, d.rewatch} {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	d.settled()
	d.log.Info("reloaded", "targets", len(cfg.Targets), "rules", set.Len(), "rules_digest", set.Digest(), "interval", cfg.Agent.Interval.Duration)
	return nil
}

// Run starts a cycle at once and then every interval until ctx ends, and returns when the
// cycles in progress have stopped. A cycle skips the targets an earlier cycle is still
// collecting, so a target that hangs delays no other target and no later cycle. Between
// cycles, a local target is captured soon after a file its profiles read changes (see Quiet).
//
// With Options.Agent set, Run renews the agent's leases LeaseTicks times an interval instead
// (see store.Lease): each renewal keeps the agent's fair share of the targets, claims free and
// expired ones, and starts a cycle of the held targets that nobody captured less than an
// interval ago. Leases last LeaseTTL, so the targets of an agent that died are taken over
// within an interval and a half; when Run ends, the agent releases its leases.
func (d *Daemon) Run(ctx context.Context) error {
	period := func() time.Duration {
		iv := d.Config().Agent.Interval.Duration
		if d.opts.Agent != "" {
			return iv / LeaseTicks
		}
		return iv
	}
	interval := period()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	d.mu.Lock()
	d.runCtx = ctx
	d.mu.Unlock()
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		d.watch(ctx)
	}()
	d.tick(ctx)
	if d.opts.Agent != "" {
		// The first renewal joined: claim a share once agents started together joined too.
		select {
		case <-ctx.Done():
		case <-time.After(min(interval, JoinDelay)):
			d.tick(ctx)
		}
	}
	for {
		select {
		case <-ctx.Done():
			<-watching
			d.cycles.Wait()
			d.releaseLeases()
			return nil
		case <-tick.C:
			d.tick(ctx)
		case <-d.reloaded:
			if iv := period(); iv != interval {
				interval = iv
				tick.Reset(iv)
			}
		}
	}
}

func (d *Daemon) tick(ctx context.Context) {
	if d.opts.Agent != "" {
		d.renewLeases(ctx)
		return
	}
	d.start(ctx)
}

func (d *Daemon) start(ctx context.Context) { d.startTargets(ctx, nil, scheduled) }

// trigger is why a cycle captures its targets.
type trigger int

const (
	scheduled trigger = iota // the interval: with leases, only targets nobody captured since
	changed                  // a file changed: with leases, any target this agent holds
)

// startTargets runs a cycle over the named targets (nil: all) in the background.
func (d *Daemon) startTargets(ctx context.Context, names []string, why trigger) {
	d.cycles.Add(1)
	go func() {
		defer d.cycles.Done()
		if rep := d.cycle(ctx, names, why); rep.Duration > 0 {
			d.done(rep.summary()) // the report itself is garbage by now
		}
	}()
}

// CycleReport is what one cycle did.
type CycleReport struct {
	Targets []TargetReport
	// Skipped lists the targets an earlier cycle was still collecting.
	Skipped   []string
	Incidents []IncidentReport
	Duration  time.Duration
}

// TargetReport is one target's collection and rule results in a cycle.
type TargetReport struct {
	Target string
	// Snapshot is the snapshot the capture stored or held; empty when it failed.
	Snapshot string
	Held     bool
	Changed  int
	Err      error
	Stage    string
	Duration time.Duration
	// Rules is the evaluation on the target's newest snapshot; nil when it has none.
	Rules *rules.Report
}

// IncidentReport is an incident's status on a target after a cycle.
type IncidentReport struct {
	Incident string
	Target   string
	Status   incident.Status
	Cause    string
}

// Findings counts what makes a cycle fail a check: targets that failed to capture, rules
// that fail or cannot be evaluated, and regressed incidents.
func (r *CycleReport) Findings() (failedTargets, failingRules, regressed int) {
	for _, t := range r.Targets {
		if t.Err != nil {
			failedTargets++
		}
		if t.Rules != nil {
			failingRules += t.Rules.Summary.Fail + t.Rules.Summary.Error
		}
	}
	for _, i := range r.Incidents {
		if i.Status == incident.Regressed {
			regressed++
		}
	}
	return failedTargets, failingRules, regressed
}

// Cycle collects every configured target that no earlier cycle is still collecting,
// evaluates the rules on each target's newest snapshot as soon as it is collected, then
// recomputes every incident's status and drift. It returns when its targets are done, or
// soon after ctx ends (nothing partial is stored: each snapshot is one transaction).
func (d *Daemon) Cycle(ctx context.Context) *CycleReport {
	rep := d.cycle(ctx, nil, scheduled)
	if rep.Duration > 0 {
		d.done(rep.summary())
	}
	return rep
}

// cycleSummary is what the log says of a finished cycle.
type cycleSummary struct {
	targets, skipped, failed, failing, incidents, regressed int
	duration                                                time.Duration
}

func (r *CycleReport) summary() cycleSummary {
	failed, failing, regressed := r.Findings()
	return cycleSummary{len(r.Targets), len(r.Skipped), failed, failing, len(r.Incidents), regressed, r.Duration}
}

// done settles the process (see Options.Settled) and then reports the cycle done.
func (d *Daemon) done(s cycleSummary) {
	d.settled()
	d.log.Info("cycle done", "targets", s.targets, "skipped", s.skipped, "failed", s.failed, "failing_rules", s.failing,
		"incidents", s.incidents, "regressed", s.regressed, "duration", s.duration.Round(time.Millisecond))
}

// cycle is Cycle over the named targets only (nil: all). Its report's Duration is set only
// when the cycle finished.
func (d *Daemon) cycle(ctx context.Context, only []string, why trigger) *CycleReport {
	start := time.Now()
	d.mu.Lock()
	cfg, set := d.cfg, d.set
	rep := &CycleReport{}
	var names []string
	for _, t := range cfg.Targets {
		if only != nil && !slices.Contains(only, t.Name) {
			continue
		}
		if d.inFlight[t.Name] {
			rep.Skipped = append(rep.Skipped, t.Name)
			continue
		}
		d.inFlight[t.Name] = true
		names = append(names, t.Name)
	}
	d.mu.Unlock()
	if len(rep.Skipped) > 0 {
		d.log.Warn("targets still being collected by an earlier cycle are skipped", "targets", rep.Skipped)
	}
	if len(names) == 0 {
		return rep
	}
	rep.Targets = d.collect(ctx, cfg, set, names, why)
	d.release(names...) // those that never started
	sort.Slice(rep.Targets, func(i, j int) bool { return rep.Targets[i].Target < rep.Targets[j].Target })
	if ctx.Err() != nil {
		return rep
	}
	rep.Incidents = d.analyse(ctx, cfg, set)
	rep.Duration = time.Since(start)
	return rep
}

// collect captures the named targets; each one's rules are evaluated and its state published
// as soon as it is done, whatever the others are doing.
func (d *Daemon) collect(ctx context.Context, cfg *config.Config, set *rules.Set, names []string, why trigger) []TargetReport {
	results := make(chan fleet.Result, len(names))
	var reports []TargetReport
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := range results {
			if errors.Is(r.Err, fleet.ErrNotBegun) {
				d.log.Debug("not captured: another agent holds or captured it", "target", r.Target)
			} else {
				reports = append(reports, d.finish(ctx, set, r))
			}
			d.release(r.Target)
		}
	}()
	// Targets an earlier cycle is still collecting count against the concurrency.
	d.mu.Lock()
	busy := len(d.inFlight) - len(names)
	d.mu.Unlock()
	c := *cfg
	c.Agent.Concurrency = max(1, cfg.Agent.Concurrency-busy)
	sn := &fleet.Snapshotter{Config: &c, Store: d.opts.Store, Redactor: d.opts.Redactor, Logger: d.log,
		Hold: store.HoldPolicy{MaxAge: d.opts.MaxAge, MaxGap: 2 * cfg.Agent.Interval.Duration}}
	if d.opts.Agent != "" {
		sn.Begin = d.beginCapture(cfg.Agent.Interval.Duration, why)
	}
	_, err := sn.Run(ctx, names, "", func(r fleet.Result) { results <- r })
	close(results)
	<-done
	if err != nil {
		d.log.Error("cycle", "err", err)
	}
	return reports
}

// release lets later cycles collect the targets again, and captures again at once those whose
// files changed while they were collected.
func (d *Daemon) release(names ...string) {
	d.mu.Lock()
	var again []string
	for _, n := range names {
		if d.inFlight[n] && d.again[n] {
			again = append(again, n)
		}
		delete(d.inFlight, n)
		delete(d.again, n)
	}
	ctx := d.runCtx
	d.mu.Unlock()
	if len(again) > 0 && ctx != nil && ctx.Err() == nil {
		d.log.Info("capturing again targets whose files changed during their capture", "targets", again)
		d.startTargets(ctx, again, changed)
	}
}

// finish evaluates the rules on the target's newest snapshot and publishes the target's state.
func (d *Daemon) finish(ctx context.Context, set *rules.Set, r fleet.Result) TargetReport {
	tr := TargetReport{Target: r.Target, Err: r.Err, Stage: r.Stage, Duration: r.Duration}
	if r.Saved != nil {
		tr.Snapshot, tr.Held, tr.Changed = r.Saved.ID, r.Saved.Held, r.Saved.Changed
	}
	if r.Err != nil && ctx.Err() != nil {
		return tr // stopped by shutdown, not the target's failure
	}
	st := d.opts.Store
	id := tr.Snapshot
	if id == "" {
		latest, err := st.Latest(ctx, r.Target)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			d.log.Error("newest snapshot", "target", r.Target, "err", err)
		}
		id = latest
	}
	var taken time.Time
	var results []RuleResult
	evaluated := false
	if id != "" {
		snap, err := st.Get(ctx, id)
		if err != nil {
			d.log.Error("newest snapshot", "target", r.Target, "err", err)
		} else {
			taken = snap.Manifest.TakenAt
			rep, err := fleet.Check(ctx, st, snap, set, time.Now())
			if err != nil {
				d.log.Error("rules", "target", r.Target, "snapshot", store.Short(id), "err", err)
			}
			if rep.RulesDigest != "" {
				evaluated = true
				tr.Rules = &rep
				results = ruleResults(rep.Results)
			}
		}
	}
	d.update(func(s *State) {
		ts, ok := s.Targets[r.Target]
		if !ok {
			return // removed by a reload
		}
		ts.Collected, ts.Up, ts.Duration = true, r.Err == nil, r.Duration
		if r.Err != nil {
			ts.Errors++
		}
		if evaluated {
			ts.Rules = results
		}
		s.Targets[r.Target] = ts
		if !taken.IsZero() {
			s.Snapshots[r.Target] = taken
		}
	})
	return tr
}

// ruleResults turns results into metrics: pass and waived succeed, fail and error do not,
// and a rule that skips the target is left out.
func ruleResults(rs []rules.Result) []RuleResult {
	out := make([]RuleResult, 0, len(rs))
	for _, r := range rs {
		if r.Outcome == rules.Skip {
			continue
		}
		out = append(out, RuleResult{Rule: r.Rule, Severity: string(r.Severity), Success: r.Outcome == rules.Pass || r.Outcome == rules.Waived})
	}
	return out
}

// analyse recomputes every incident's status on each of its targets, stores the changes as
// status events, and works out each target's drift from its hardened baseline.
//
// With leases, cycles are many and small (each renewal starts one of the targets due), so an
// analysis is skipped when another is already waiting to run: that one starts after everything
// this cycle stored, and sees it.
func (d *Daemon) analyse(ctx context.Context, cfg *config.Config, set *rules.Set) []IncidentReport {
	if d.opts.Agent != "" {
		d.mu.Lock()
		waiting := d.analysisWaiting
		d.analysisWaiting = true
		d.mu.Unlock()
		if waiting {
			return nil
		}
	}
	d.analysing.Lock()
	defer d.analysing.Unlock()
	if d.opts.Agent != "" {
		d.mu.Lock()
		d.analysisWaiting = false
		d.mu.Unlock()
	}
	st := d.opts.Store
	now := time.Now()
	ids, err := st.Incidents(ctx)
	if err != nil {
		d.log.Error("incidents", "err", err)
		return nil
	}
	prev := d.State().Incidents
	var reports []IncidentReport
	var statuses []IncidentStatus
	baselines := map[string]*store.Link{}
	for _, id := range ids {
		s, err := incident.Analyse(ctx, st, id, set, now)
		if err != nil {
			d.log.Error("incident status", "incident", id, "err", err)
			for _, p := range prev {
				if p.Incident == id {
					statuses = append(statuses, p) // the last known status
				}
			}
			continue
		}
		for _, t := range s.Targets {
			reports = append(reports, IncidentReport{Incident: id, Target: t.Target, Status: t.Status, Cause: t.Cause})
			statuses = append(statuses, IncidentStatus{Incident: id, Target: t.Target, Status: t.Status})
			ev, err := st.RecordStatus(ctx, store.StatusEvent{Incident: id, Target: t.Target, Status: string(t.Status), Cause: t.Cause,
				Snapshot: t.Latest, RulesDigest: set.Digest(), At: now})
			switch {
			case err != nil:
				d.log.Error("record status", "incident", id, "target", t.Target, "err", err)
			case ev != nil:
				lvl := slog.LevelInfo
				if t.Status == incident.Regressed {
					lvl = slog.LevelWarn
				}
				d.log.Log(ctx, lvl, "incident status changed", "incident", id, "target", t.Target, "from", orNone(ev.From), "to", ev.Status, "cause", t.Cause)
			}
			if t.After != nil && t.Status != incident.Open {
				if b := baselines[t.Target]; b == nil || t.After.Seq > b.Seq {
					baselines[t.Target] = t.After
				}
			}
		}
	}
	sort.Slice(statuses, func(i, j int) bool {
		a, b := statuses[i], statuses[j]
		return a.Incident < b.Incident || a.Incident == b.Incident && a.Target < b.Target
	})
	// The newest snapshot of every configured target and every target an incident names. With
	// leases, only of the targets this agent holds (the only ones its metrics show) that have
	// a hardened baseline: the newest snapshot times of the others are those finish published
	// as it captured them, which spares a fleet's agents reading every target's newest
	// snapshot after every capture.
	leased := d.opts.Agent != ""
	targets := map[string]bool{}
	for _, t := range cfg.Targets {
		targets[t.Name] = true
	}
	for _, s := range statuses {
		targets[s.Target] = true
	}
	for t := range targets {
		if !d.holds(t) {
			delete(baselines, t)
		}
		if leased && baselines[t] == nil {
			delete(targets, t)
		}
	}
	snapshots := map[string]time.Time{}
	newest := map[string]*store.Snapshot{}
	for t := range targets {
		id, err := st.Latest(ctx, t)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				d.log.Error("newest snapshot", "target", t, "err", err)
			}
			continue
		}
		snap, err := st.Get(ctx, id)
		if err != nil {
			d.log.Error("newest snapshot", "target", t, "err", err)
			continue
		}
		snapshots[t], newest[t] = snap.Manifest.TakenAt, snap
	}
	drift := map[string][]Drift{}
	for t, link := range baselines {
		base, err := st.Get(ctx, link.Snapshot)
		if err != nil || newest[t] == nil {
			d.log.Error("hardened baseline", "target", t, "snapshot", store.Short(link.Snapshot), "err", err)
			continue
		}
		drift[t] = Drifts(&base.Manifest, &newest[t].Manifest)
	}
	d.update(func(s *State) {
		s.Incidents, s.Drift = statuses, drift
		if !leased {
			s.Snapshots = snapshots
			return
		}
		for t, at := range snapshots {
			s.Snapshots[t] = at
		}
	})
	return reports
}

// Drifts compares the artifacts of a target's newest snapshot with its hardened baseline: an
// artifact drifts when its content or availability differs, or when it is in only one of them.
func Drifts(baseline, newest *store.Manifest) []Drift {
	key := func(e store.ArtifactEntry) string { return e.SHA256 + "\x00" + e.Unavailable }
	base := map[string]string{}
	for _, e := range baseline.Artifacts {
		base[e.Name] = key(e)
	}
	var out []Drift
	for _, e := range newest.Artifacts {
		k, ok := base[e.Name]
		out = append(out, Drift{Artifact: e.Name, Drifted: !ok || k != key(e)})
		delete(base, e.Name)
	}
	for name := range base {
		out = append(out, Drift{Artifact: name, Drifted: true})
	}
	slices.SortFunc(out, func(a, b Drift) int {
		if a.Artifact < b.Artifact {
			return -1
		}
		if a.Artifact > b.Artifact {
			return 1
		}
		return 0
	})
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// String summarises a target's part in a cycle on one line.
func (t TargetReport) String() string {
	var s string
	switch {
	case t.Err != nil:
		s = fmt.Sprintf("%s: failed at %s: %v", t.Target, t.Stage, t.Err)
	case t.Held:
		s = fmt.Sprintf("%s: unchanged, holds %s", t.Target, store.Short(t.Snapshot))
	default:
		s = fmt.Sprintf("%s: stored %s (%d changed)", t.Target, store.Short(t.Snapshot), t.Changed)
	}
	if t.Rules != nil {
		s += "; rules: " + t.Rules.Summary.String()
	}
	return s
}
