package daemon

import (
	"context"
	"slices"
	"time"

	"github.com/hardtrail/hardtrail/agent/store"
)

// Leases: agents that share a store divide their targets among themselves (see store.Lease).
const (
	// LeaseTicks is how many times an interval an agent renews its leases and starts the
	// captures that are due.
	LeaseTicks = 4
	// leaseTTLTicks is how many renewals' periods a lease lasts: an agent that misses a
	// renewal, or whose renewal is late, keeps its targets, and the targets of one that died
	// are claimed within an interval (the lease's three quarters, then at most one renewal's
	// period).
	leaseTTLTicks = 3
	// JoinDelay is the time between an agent's first renewal, which only records it alive,
	// and its second, which claims its share (at most a renewal's period).
	JoinDelay = time.Second
)

// LeaseTTL is how long an agent's leases last without a renewal, for captures every interval.
func LeaseTTL(interval time.Duration) time.Duration { return interval * leaseTTLTicks / LeaseTicks }

// renewLeases renews the agent's leases and starts a cycle of the targets that are due. When
// the store cannot be reached, it captures nothing: its leases lapse and other agents take
// its targets.
func (d *Daemon) renewLeases(ctx context.Context) {
	cfg := d.Config()
	iv := cfg.Agent.Interval.Duration
	names := make([]string, len(cfg.Targets))
	for i, t := range cfg.Targets {
		names[i] = t.Name
	}
	lctx, cancel := context.WithTimeout(ctx, LeaseTTL(iv))
	l, err := d.opts.Store.Lease(lctx, store.LeaseRequest{Agent: d.opts.Agent, Targets: names, TTL: LeaseTTL(iv), Every: iv, Join: !d.joined})
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("leases not renewed: capturing nothing until they are", "agent", d.opts.Agent, "err", err)
		}
		return
	}
	d.joined = true
	held := make(map[string]bool, len(l.Held))
	for _, n := range l.Held {
		held[n] = true
	}
	d.update(func(s *State) { s.Lease = &LeaseState{Agent: d.opts.Agent, Held: held, Agents: l.Agents} })
	if len(l.Claimed)+len(l.Released) > 0 {
		d.log.Info("leases changed", "agent", d.opts.Agent, "held", len(l.Held), "claimed", len(l.Claimed), "released", len(l.Released),
			"agents", l.Agents, "share", l.Share)
	}
	d.mu.Lock()
	due := slices.DeleteFunc(l.Due, func(n string) bool { return d.inFlight[n] })
	d.mu.Unlock()
	if len(due) > 0 {
		d.log.Info("capturing leased targets", "agent", d.opts.Agent, "targets", len(due), "held", len(l.Held), "agents", l.Agents)
		d.startTargets(ctx, due, scheduled)
	}
}

// beginCapture is the Snapshotter's Begin with leases: a target is captured when this agent
// still holds it and, for a scheduled capture, nobody started capturing it less than
// store.DueAfter(interval) ago. Either way the capture is recorded as started now.
func (d *Daemon) beginCapture(interval time.Duration, why trigger) func(context.Context, string) bool {
	every := interval
	if why == changed {
		every = 0
	}
	return func(ctx context.Context, target string) bool {
		ok, err := d.opts.Store.BeginCapture(ctx, d.opts.Agent, target, every)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Error("not captured: its lease cannot be checked", "target", target, "err", err)
			}
			return false
		}
		return ok
	}
}

// releaseLeases gives up the agent's leases when it stops, so that the others take its
// targets at once.
func (d *Daemon) releaseLeases() {
	if d.opts.Agent == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.opts.Store.ReleaseLeases(ctx, d.opts.Agent); err != nil {
		d.log.Warn("leases not released: other agents take the targets when they expire", "agent", d.opts.Agent, "err", err)
		return
	}
	d.log.Info("leases released", "agent", d.opts.Agent)
}

// holds reports whether this agent captures target: it holds its lease, or it takes no leases.
func (d *Daemon) holds(target string) bool {
	s := d.State()
	return s.Lease == nil || s.Lease.Held[target]
}
