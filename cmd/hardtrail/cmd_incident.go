package main

import (
	"context"
	"fmt"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/agent/incident"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/rules"
)

func init() { commands = append(commands, tagCmd, incidentCmd) }

// operator is who tags: --by, else the OS user.
func operator(by string) string {
	if by != "" {
		return by
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// tagFlags are the flags shared by tag and snapshot.
type tagFlags struct {
	incident, phase, by string
}

func (f *tagFlags) add(cmd *cobra.Command, required bool) {
	cmd.Flags().StringVar(&f.incident, "incident", "", "incident ID, such as INC-2026-0042")
	cmd.Flags().StringVar(&f.phase, "phase", "", "before or after")
	cmd.Flags().StringVar(&f.by, "by", "", "operator recorded with the link (default: the OS user)")
	if required {
		cmd.MarkFlagRequired("incident")
		cmd.MarkFlagRequired("phase")
	}
}

// check validates the flags before any work; set reports whether tagging was asked for.
func (f *tagFlags) check() (set bool, err error) {
	if f.incident == "" && f.phase == "" {
		return false, nil
	}
	if f.incident == "" || f.phase == "" {
		return false, usageErr("--incident and --phase go together")
	}
	if err := store.CheckIncidentID(f.incident); err != nil {
		return false, usageErr("%v", err)
	}
	if err := store.CheckPhase(f.phase); err != nil {
		return false, usageErr("--phase: %v", err)
	}
	if operator(f.by) == "" {
		return false, usageErr("cannot tell who is tagging: pass --by")
	}
	return true, nil
}

func (f *tagFlags) tag(ctx context.Context, st *store.Store, snapshot, note string) (*store.Link, error) {
	return st.Tag(ctx, store.Link{Incident: f.incident, Phase: f.phase, Snapshot: snapshot, By: operator(f.by), Note: note})
}

func tagCmd(a *app) *cobra.Command {
	var f tagFlags
	var note string
	cmd := &cobra.Command{
		Use:   "tag REF --incident ID --phase before|after [--note TEXT]",
		Short: "Link an existing snapshot to an incident as its before or after state",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := f.check(); err != nil {
				return err
			}
			snap, err := a.resolve(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			red, err := a.redactor()
			if err != nil {
				return err
			}
			l, err := f.tag(cmd.Context(), a.store, snap.ID, red.RedactString(note))
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(l)
			}
			fmt.Fprintf(a.stdout, "%s  %s  %s of %s, by %s\n", store.Short(l.Snapshot), l.Target, l.Phase, l.Incident, l.By)
			return nil
		},
	}
	f.add(cmd, true)
	cmd.Flags().StringVar(&note, "note", "", "a note kept with the link")
	return cmd
}

func incidentCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "incident", Short: "Incidents: status and timeline"}
	var rulesFlag []string
	cmd.PersistentFlags().StringArrayVar(&rulesFlag, "rules", nil, "rule files or directories whose rules name the incident (default: the config's rules, else the shipped packs)")
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "Every incident with its status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			set, err := a.ruleSet(ctx, rulesFlag)
			if err != nil {
				return err
			}
			ids, err := st.Incidents(ctx)
			if err != nil {
				return err
			}
			type row struct {
				Incident string          `json:"incident"`
				Status   incident.Status `json:"status"`
				Targets  []string        `json:"targets"`
				Last     time.Time       `json:"last_tagged"`
			}
			var rows []row
			for _, id := range ids {
				s, err := incident.Analyse(ctx, st, id, set, time.Now())
				if err != nil {
					return err
				}
				r := row{Incident: id, Status: s.Status, Last: s.Links[len(s.Links)-1].At}
				for _, t := range s.Targets {
					r.Targets = append(r.Targets, t.Target)
				}
				rows = append(rows, r)
			}
			if a.json() {
				if rows == nil {
					rows = []row{}
				}
				return a.printJSON(rows)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "INCIDENT\tSTATUS\tTARGETS\tLAST TAGGED")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Incident, r.Status, strings.Join(r.Targets, ","), r.Last.Format(time.RFC3339))
			}
			return w.Flush()
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "show ID",
		Short: "An incident's timeline, what the remediation changed, and whether it holds",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			if err := store.CheckIncidentID(args[0]); err != nil {
				return usageErr("%v", err)
			}
			set, err := a.ruleSet(ctx, rulesFlag)
			if err != nil {
				return err
			}
			s, err := incident.Analyse(ctx, st, args[0], set, time.Now())
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			h, err := statusHistory(ctx, st, s)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(h.withState(s))
			}
			if err := writeIncident(a, s); err != nil {
				return err
			}
			return writeHistory(a, s, h)
		},
	})
	return cmd
}

func writeIncident(a *app, s *incident.State) error {
	w := a.stdout
	fmt.Fprintf(w, "incident %s: %s\n\ntimeline\n", s.Incident, s.Status)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, l := range s.Links {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\tby %s\t%s\n", l.At.Format(time.RFC3339), l.Phase, l.Target, store.Short(l.Snapshot), l.By, l.Note)
	}
	tw.Flush()
	for _, t := range s.Targets {
		fmt.Fprintf(w, "\ntarget %s: %s (%s)\n", t.Target, t.Status, t.Cause)
		if t.Before != nil && t.After != nil {
			fmt.Fprintf(w, "  before %s, after %s, newest %s\n", store.Short(t.Before.Snapshot), store.Short(t.After.Snapshot), store.Short(t.Latest))
		}
		for _, art := range t.Artifacts {
			line := "  " + art.Name + ": "
			if art.Hardened {
				line += fmt.Sprintf("hardened (+%d -%d), ", art.Added, art.Removed)
			}
			line += art.State
			if art.Note != "" {
				line += " (" + art.Note + ")"
			}
			fmt.Fprintln(w, line)
			if art.Regression == nil {
				continue
			}
			for _, h := range art.Regression.Hardened {
				for _, l := range h.Back {
					fmt.Fprintf(w, "    reverted: line %d is back: %s\n", l.Line, l.Text)
				}
				for _, l := range h.Gone {
					fmt.Fprintf(w, "    reverted: line %d is gone: %s\n", l.Line, l.Text)
				}
			}
			for _, d := range art.Regression.Drift {
				for _, l := range d.Removed {
					fmt.Fprintf(w, "    drift: -%s\n", l.Text)
				}
				for _, l := range d.Added {
					fmt.Fprintf(w, "    drift: +%s\n", l.Text)
				}
			}
		}
		if len(t.RulesBefore)+len(t.RulesAfter)+len(t.RulesLatest) > 0 {
			fmt.Fprintln(w, "  linked rules (before / after / newest):")
			outcome := func(rs []rules.Result, id string) string {
				for _, r := range rs {
					if r.Rule == id {
						return string(r.Outcome)
					}
				}
				return "-"
			}
			ids := t.RulesLatest
			if len(ids) == 0 {
				ids = t.RulesAfter
			}
			for _, r := range ids {
				fmt.Fprintf(w, "    %s: %s / %s / %s  %s\n", r.Rule, outcome(t.RulesBefore, r.Rule), outcome(t.RulesAfter, r.Rule), outcome(t.RulesLatest, r.Rule), r.Title)
			}
		}
	}
	return nil
}
