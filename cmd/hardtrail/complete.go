package main

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/agent/store"
)

// What a positional argument completes to.
type argKind int

const (
	argTarget   argKind = iota // a target of the config or the store
	argRef                     // a snapshot: target, ID, INCIDENT:before|after
	argIncident                // an incident ID of the store
	argArtifact                // an artifact of the snapshot named by the first argument
)

// argCompletions names, per command path below the root, what each argument completes to;
// the last kind repeats when the command takes any number of arguments.
var argCompletions = map[string]struct {
	kinds   []argKind
	repeats bool
}{
	"snapshot":        {[]argKind{argTarget}, true},
	"check":           {[]argKind{argTarget}, true},
	"log":             {[]argKind{argTarget}, false},
	"show":            {[]argKind{argRef, argArtifact}, false},
	"tag":             {[]argKind{argRef}, false},
	"diff":            {[]argKind{argRef, argRef}, false},
	"hosts add":       {[]argKind{argTarget}, false},
	"incident show":   {[]argKind{argIncident}, false},
	"incident note":   {[]argKind{argIncident}, false},
	"incident close":  {[]argKind{argIncident}, false},
	"evidence export": {[]argKind{argIncident}, false},
}

// completionTimeout bounds what completion reads from the store: a shell waits for it.
const completionTimeout = 2 * time.Second

// addCompletions gives every command of the tree its argument completion from argCompletions,
// and the flags their values: --format (the command's formats), --log-level, --phase,
// --incident, --snapshot and --artifact.
func (a *app) addCompletions(root *cobra.Command) {
	fixed := func(values ...string) cobra.CompletionFunc {
		return func(_ *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return withPrefix(values, prefix), cobra.ShellCompDirectiveNoFileComp
		}
	}
	must := func(cmd *cobra.Command, flag string, f cobra.CompletionFunc) {
		if cmd.Flags().Lookup(flag) == nil && cmd.PersistentFlags().Lookup(flag) == nil {
			return
		}
		if err := cmd.RegisterFlagCompletionFunc(flag, f); err != nil {
			panic(err) // registering twice is a programming error
		}
	}
	must(root, "log-level", fixed("debug", "info", "warn", "error"))
	must(root, "format", func(cmd *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return withPrefix(strings.Fields(formatsOf(cmd)), prefix), cobra.ShellCompDirectiveNoFileComp
	})
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		path := strings.TrimPrefix(strings.TrimPrefix(cmd.CommandPath(), root.Name()), " ")
		if spec, ok := argCompletions[path]; ok && cmd.ValidArgsFunction == nil {
			cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				i := len(args)
				if i >= len(spec.kinds) {
					if !spec.repeats {
						return nil, cobra.ShellCompDirectiveNoFileComp
					}
					i = len(spec.kinds) - 1
				}
				out := a.complete(cmd.Context(), spec.kinds[i], args, toComplete)
				if spec.repeats { // each target once
					out = slices.DeleteFunc(out, func(c cobra.Completion) bool {
						return slices.Contains(args, strings.SplitN(c, "\t", 2)[0])
					})
				}
				return out, cobra.ShellCompDirectiveNoFileComp
			}
		}
		if cmd != root {
			must(cmd, "phase", fixed("before", "after"))
			must(cmd, "incident", a.flagCompletion(argIncident))
			must(cmd, "snapshot", a.flagCompletion(argRef))
			must(cmd, "artifact", a.flagCompletion(argArtifact))
		}
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(root)
}

func (a *app) flagCompletion(k argKind) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return a.complete(cmd.Context(), k, args, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// withPrefix keeps the values that start with prefix.
func withPrefix(values []string, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, v := range values {
		if strings.HasPrefix(v, prefix) {
			out = append(out, v)
		}
	}
	return out
}

// formatsOf lists the output formats a command takes.
func formatsOf(cmd *cobra.Command) string {
	if f := cmd.Annotations["formats"]; f != "" {
		return f
	}
	return "text json"
}

// complete returns the candidates of kind k that start with prefix, each with a description
// after a tab where one helps. Completion never fails: what cannot be read is left out.
func (a *app) complete(ctx context.Context, k argKind, args []string, prefix string) []cobra.Completion {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	var out []cobra.Completion
	add := func(value, desc string) {
		if strings.HasPrefix(value, prefix) && !slices.ContainsFunc(out, func(c cobra.Completion) bool {
			return c == value || strings.HasPrefix(c, value+"\t")
		}) {
			out = append(out, cobra.CompletionWithDesc(value, desc))
		}
	}
	st := a.completionStore(ctx)
	switch k {
	case argTarget, argRef:
		if cfg, err := a.config(); err == nil {
			for _, t := range cfg.Targets {
				add(t.Name, "target ("+t.Transport+")")
			}
		}
		if st != nil {
			if names, err := st.Targets(ctx); err == nil {
				for _, n := range names {
					add(n, "target in the store")
				}
			}
		}
		if k == argTarget || st == nil {
			break
		}
		if snaps, err := st.Log(ctx, store.LogQuery{Limit: 100}); err == nil {
			for _, s := range snaps {
				add(store.Short(s.ID), s.Target+" #"+strconv.FormatInt(s.Seq, 10)+" "+s.TakenAt.UTC().Format(time.RFC3339))
			}
		}
		if ids, err := st.Incidents(ctx); err == nil {
			for _, id := range ids {
				add(id+":before", "incident "+id+" before the fix")
				add(id+":after", "incident "+id+" after the fix")
			}
		}
	case argIncident:
		if st == nil {
			break
		}
		if ids, err := st.Incidents(ctx); err == nil {
			for _, id := range ids {
				add(id, "incident")
			}
		}
	case argArtifact:
		if st == nil || len(args) == 0 {
			break
		}
		id, err := st.Resolve(ctx, args[0])
		if err != nil {
			break
		}
		if snap, err := st.Get(ctx, id); err == nil {
			for _, art := range snap.Manifest.Artifacts {
				add(art.Name, "")
			}
		}
	}
	return out
}

// completionStore opens the store for completion, or returns nil: completion never creates a
// store, so a SQLite path that does not exist yet has nothing to offer.
func (a *app) completionStore(ctx context.Context) *store.Store {
	if a.store != nil {
		return a.store
	}
	cfg, err := a.config()
	if err != nil {
		return nil
	}
	path := cfg.StorePath(a.storeFlag)
	if !strings.Contains(path, "://") && !strings.Contains(path, "=") {
		if _, err := os.Stat(path); err != nil {
			return nil
		}
	}
	s, err := store.Open(ctx, path)
	if err != nil {
		return nil
	}
	a.store = s // closed by run
	return s
}
