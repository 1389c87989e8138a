package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/agent/daemon"
	"github.com/hardtrail/hardtrail/agent/evidence/htmlreport"
	"github.com/hardtrail/hardtrail/agent/incident"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/collector"
	"github.com/hardtrail/hardtrail/config"
	"github.com/hardtrail/hardtrail/internal/exepages"
	"github.com/hardtrail/hardtrail/rules"
)

func init() { commands = append(commands, agentCmd) }

type agentFlags struct {
	listen        string
	interval      time.Duration
	webConfig     string
	webConfigFile string
	once          bool
	rules         []string
}

func agentCmd(a *app) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent [--listen ADDR] [--interval DUR] [--web-config FILE] [--once]",
		Short: "Collect every target each interval and serve remediation status as Prometheus metrics",
		Long: "Collect every target of the config each interval (at most [agent] concurrency at once), evaluate the rules\n" +
			"on each target's newest snapshot, recompute every incident's status (open, remediated, verified, regressed)\n" +
			"and store its changes, and serve it all on /metrics (and /healthz) for Prometheus.\n\n" +
			"A capture equal to the target's newest snapshot is recorded as holding it rather than stored again;\n" +
			"a new snapshot is stored when anything changed, and at least daily.\n\n" +
			"SIGHUP reloads the config and rules (a bad reload keeps the previous ones and sets\n" +
			"hardtrail_reload_success to 0); SIGTERM stops, leaving no partial snapshot.\n\n" +
			"--once runs one cycle and exits like check: 0 when every target was captured, every rule passes\n" +
			"and no incident regressed; 1 otherwise; 2 on a configuration or rules error.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd, a, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "", "address of /metrics and /healthz (default: [agent] listen, else "+config.DefaultListen+")")
	fl.DurationVar(&f.interval, "interval", 0, "time between cycles (default: [agent] interval, else 5m)")
	fl.StringVar(&f.webConfig, "web-config", "", "exporter-toolkit web config file: TLS and basic auth (default: [agent] web_config)")
	fl.StringVar(&f.webConfigFile, "web.config.file", "", "the same as --web-config, under the name Prometheus exporters use")
	fl.BoolVar(&f.once, "once", false, "run one cycle, print what it found, and exit with check's exit codes")
	fl.StringArrayVar(&f.rules, "rules", nil, "rule files, directories or \"builtin\" (default: the config's rules, else the shipped packs)")
	return cmd
}

func runAgent(cmd *cobra.Command, a *app, f *agentFlags) error {
	ctx := cmd.Context()
	if !cmd.Flags().Changed("log-level") {
		// A daemon says what it does unless asked to be quieter.
		a.log = slog.New(collector.NewLogHandler(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	}
	if f.webConfig != "" && f.webConfigFile != "" && f.webConfig != f.webConfigFile {
		return usageErr("--web-config and --web.config.file name different files")
	}
	if f.webConfig == "" {
		f.webConfig = f.webConfigFile
	}
	if cmd.Flags().Changed("interval") && f.interval < time.Second {
		return usageErr("--interval %s is too short (at least 1s)", f.interval)
	}
	if f.listen != "" {
		if _, _, err := net.SplitHostPort(f.listen); err != nil {
			return usageErr("--listen %q: want host:port, such as %s", f.listen, config.DefaultListen)
		}
	}
	cfg0, err := a.config()
	if err != nil {
		return err
	}
	st, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	red, err := a.redactor()
	if err != nil {
		return err
	}
	opts := daemon.Options{Store: st, Redactor: red, Logger: a.log, Load: agentLoader(a, f, st.Path()), Settled: settle(a.log)}
	var l net.Listener
	if !f.once {
		listen := cmp.Or(f.listen, cfg0.Agent.Listen)
		if l, err = net.Listen("tcp", listen); err != nil {
			return usageErr("agent: cannot listen on %s: %v (set --listen or [agent] listen)", listen, err)
		}
		defer l.Close()
		if st.Engine() == store.Postgres {
			// A shared store: divide the targets with the other agents configured alike.
			opts.Agent = cmp.Or(cfg0.Agent.ID, defaultAgentID(l.Addr()))
		}
	}
	d, err := daemon.New(ctx, opts)
	if err != nil {
		return err
	}
	if f.once {
		return agentOnce(ctx, a, d)
	}
	cfg := d.Config()
	if err := daemon.CheckWebConfig(cfg.Agent.WebConfig); err != nil {
		return usageErr("%v", err)
	}
	tsaRoots, err := loadTSACA(cfg.Agent.TSACA)
	if err != nil {
		return usageErr("[agent] tsa_ca: %v", err)
	}
	pages := htmlreport.Handler(daemon.IncidentsPath, incidentPages(st, d), a.log)
	handler, err := daemon.HandlerWith(daemon.NewRegistry(d.State), a.log, pages)
	if err != nil {
		return err
	}
	a.log.Info("listening", "address", l.Addr().String(), "interval", cfg.Agent.Interval.Duration, "targets", len(cfg.Targets), "store", st.Path())
	if opts.Agent != "" {
		a.log.Info("dividing the targets through the store's leases", "agent", opts.Agent, "lease_ttl", daemon.LeaseTTL(cfg.Agent.Interval.Duration))
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.log.Info("SIGHUP: reloading the configuration and rules")
				d.Reload(ctx)
			}
		}
	})
	if u := cfg.Agent.TSAURL; u != "" {
		wg.Go(func() { dailyHeadStamp(ctx, a, st, u, tsaRoots) })
	}
	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- daemon.Serve(ctx, l, handler, cfg.Agent.WebConfig, a.log) })
	wg.Go(func() {
		d.Run(ctx)
		cancel()
	})
	var err2 error
	select {
	case <-ctx.Done():
	case err2 = <-serveErr:
		cancel()
	}
	wg.Wait()
	if err2 != nil {
		return &exitError{code: exitUsage, err: err2}
	}
	a.log.Info("stopped")
	return nil
}

// defaultAgentID names an agent by its host and the address it listens on: unique on the host
// (two processes cannot listen on one address), and the same when the agent restarts, so that
// it takes back its own leases at once.
func defaultAgentID(addr net.Addr) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return host + "/" + addr.String()
}

// settle returns to the system what loading or a cycle no longer needs: the heap's free
// pages, and the executable's pages that were mapped to run it (a cycle maps back the few it
// runs, from the page cache).
func settle(log *slog.Logger) func() {
	return func() {
		debug.FreeOSMemory()
		releasePages(log)
	}
}

// releasePages unmaps the executable's pages the process has mapped (internal/exepages): a
// command calls it once what it ran to get ready (start-up, loading) will not run again.
func releasePages(log *slog.Logger) {
	if _, err := exepages.Release(); err != nil {
		log.Debug("returning memory to the system", "err", err)
	}
}

// agentLoader reads the config file (again, on reload) and the rules, with the flags on top.
func agentLoader(a *app, f *agentFlags, storePath string) daemon.Loader {
	var mu sync.Mutex
	first := true
	return func(ctx context.Context) (*config.Config, *rules.Set, error) {
		mu.Lock()
		defer mu.Unlock()
		prev, reload := a.cfg, !first
		if reload {
			a.cfg = nil // read the file again
		}
		first = false
		cfg, err := a.config()
		if err != nil {
			a.cfg = prev
			return nil, nil, err
		}
		if f.interval != 0 {
			cfg.Agent.Interval.Duration = f.interval
		}
		if f.listen != "" {
			cfg.Agent.Listen = f.listen
		}
		if f.webConfig != "" {
			cfg.Agent.WebConfig = f.webConfig
		}
		if p := storeName(cfg.StorePath(a.storeFlag)); reload && p != storePath {
			a.log.Warn("the store changes only when the agent restarts", "store", storePath, "configured", p)
		}
		set, err := a.ruleSet(ctx, f.rules)
		if err != nil {
			a.cfg = prev
			return nil, nil, err
		}
		return cfg, set, nil
	}
}

type onceJSON struct {
	Targets   []onceTarget            `json:"targets"`
	Incidents []daemon.IncidentReport `json:"incidents"`
	Reports   []rules.Report          `json:"reports"`
	Summary   map[string]int          `json:"summary"`
}

type onceTarget struct {
	Target   string `json:"target"`
	Snapshot string `json:"snapshot,omitempty"`
	Held     bool   `json:"held"`
	Changed  int    `json:"changed"`
	Error    string `json:"error,omitempty"`
	Stage    string `json:"stage,omitempty"`
}

// agentOnce runs one cycle and exits like check.
func agentOnce(ctx context.Context, a *app, d *daemon.Daemon) error {
	rep := d.Cycle(ctx)
	if err := ctx.Err(); err != nil {
		return err
	}
	failed, failing, regressed := rep.Findings()
	if a.json() {
		out := onceJSON{Incidents: rep.Incidents, Reports: []rules.Report{}, Summary: map[string]int{"failed_targets": failed, "failing_rules": failing, "regressed": regressed}}
		if out.Incidents == nil {
			out.Incidents = []daemon.IncidentReport{}
		}
		for _, t := range rep.Targets {
			ot := onceTarget{Target: t.Target, Snapshot: t.Snapshot, Held: t.Held, Changed: t.Changed, Stage: t.Stage}
			if t.Err != nil {
				ot.Error = t.Err.Error()
			}
			out.Targets = append(out.Targets, ot)
			if t.Rules != nil {
				out.Reports = append(out.Reports, *t.Rules)
			}
		}
		if err := a.printJSON(out); err != nil {
			return err
		}
	} else {
		for _, t := range rep.Targets {
			fmt.Fprintln(a.stdout, t)
		}
		for _, i := range rep.Incidents {
			fmt.Fprintf(a.stdout, "incident %s on %s: %s (%s)\n", i.Incident, i.Target, i.Status, i.Cause)
		}
	}
	if failed+failing+regressed > 0 {
		return finding(fmt.Errorf("%s to capture, %s or cannot be evaluated, %s", plural(failed, "target failed", "targets failed"),
			plural(failing, "rule fails", "rules fail"), plural(regressed, "incident regressed", "incidents regressed")))
	}
	return nil
}

// incidentHistory is what the store adds to an incident's state: the status changes the agent
// recorded, and how long the after and newest snapshots held.
type incidentHistory struct {
	Held   []store.Held        `json:"held"`
	Events []store.StatusEvent `json:"status_events"`
}

func statusHistory(ctx context.Context, st *store.Store, s *incident.State) (*incidentHistory, error) {
	h := &incidentHistory{Held: []store.Held{}}
	evs, err := st.StatusEvents(ctx, s.Incident)
	if err != nil {
		return nil, err
	}
	h.Events = evs
	if h.Events == nil {
		h.Events = []store.StatusEvent{}
	}
	for _, t := range s.Targets {
		ids := []string{t.Latest}
		if t.After != nil && t.After.Snapshot != t.Latest {
			ids = []string{t.After.Snapshot, t.Latest}
		}
		for _, id := range ids {
			held, err := st.Held(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			h.Held = append(h.Held, *held)
		}
	}
	return h, nil
}

// writeHistory writes the sections of incident show that come from the agent's records.
func writeHistory(a *app, s *incident.State, h *incidentHistory) error {
	w := a.stdout
	role := func(id string) string {
		for _, t := range s.Targets {
			if t.After != nil && t.After.Snapshot == id {
				return "after"
			}
		}
		return "newest"
	}
	if len(h.Held) > 0 {
		fmt.Fprintln(w, "\nheld unchanged")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, hd := range h.Held {
			fmt.Fprintf(tw, "  %s\t%s %s\tfrom %s to %s\t%d captures, at most %s apart\n", hd.Target, role(hd.Snapshot), store.Short(hd.Snapshot),
				hd.Since.Format(time.RFC3339), hd.Until.Format(time.RFC3339), hd.Count, hd.MaxGap.Round(time.Second))
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\nstatus history")
	if len(h.Events) == 0 {
		fmt.Fprintln(w, "  none recorded yet (hardtrail agent records each change)")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, e := range h.Events {
		from := e.From
		if from == "" {
			from = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s -> %s\t%s\t%s\n", e.At.Format(time.RFC3339), e.Target, from, e.Status, store.Short(e.Snapshot), e.Cause)
	}
	return tw.Flush()
}
