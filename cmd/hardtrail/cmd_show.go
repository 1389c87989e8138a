package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/agent/store"
)

func init() { commands = append(commands, showCmd) }

func showCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show REF [ARTIFACT]",
		Short: "Show a snapshot's manifest, or one artifact's stored content",
		Long: "Show a snapshot's manifest, or write one artifact's stored content to stdout.\n" +
			"REF is a snapshot ID or a unique prefix of 6+ hex digits, TARGET (its newest snapshot),\n" +
			"TARGET~N (N snapshots before the newest), or INCIDENT:before / INCIDENT:after.",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			a.readOnly = true
			snap, err := a.resolve(ctx, args[0])
			if err != nil {
				return err
			}
			if len(args) == 2 {
				b, e, err := a.store.Content(ctx, snap, args[1])
				if err != nil {
					return &exitError{code: exitUsage, err: err}
				}
				if e.Unavailable != "" {
					return usageErr("artifact %s of snapshot %s was not captured: %s", args[1], store.Short(snap.ID), e.Unavailable)
				}
				_, err = a.stdout.Write(b)
				return err
			}
			held, err := a.store.Held(ctx, snap.ID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if a.json() {
				return a.printJSON(struct {
					ID       string          `json:"id"`
					Manifest json.RawMessage `json:"manifest"`
					Held     *store.Held     `json:"held,omitempty"`
				}{snap.ID, snap.Raw, held})
			}
			m := snap.Manifest
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "snapshot\t%s\n", snap.ID)
			fmt.Fprintf(w, "target\t%s (#%d)\n", m.Target, m.Seq)
			fmt.Fprintf(w, "previous\t%s\n", orNone(m.Prev))
			fmt.Fprintf(w, "taken at\t%s (started %s)\n", m.TakenAt.Format("2006-01-02T15:04:05.000Z07:00"), m.Started.Format("15:04:05.000"))
			fmt.Fprintf(w, "host\t%s via %s%s\n", orNone(m.Hostname), m.Transport, prefixed(" ", m.Address))
			if m.HostKey != "" {
				fmt.Fprintf(w, "host key\t%s\n", m.HostKey)
			}
			if m.Legacy {
				fmt.Fprintf(w, "legacy algorithms\tallowed\n")
			}
			fmt.Fprintf(w, "profiles\t%s\n", strings.Join(m.Profiles, ", "))
			fmt.Fprintf(w, "tool version\t%s\n", m.ToolVersion)
			if m.Note != "" {
				fmt.Fprintf(w, "note\t%s\n", m.Note)
			}
			fmt.Fprintf(w, "changed\t%d of %d artifacts since the previous snapshot\n", snap.Changed, len(m.Artifacts))
			if held != nil {
				fmt.Fprintf(w, "held\tunchanged until %s (%d later captures, at most %s apart)\n", held.Until.Format("2006-01-02T15:04:05.000Z07:00"), held.Count, held.MaxGap.Round(time.Second))
			}
			fmt.Fprintln(w)
			fmt.Fprintf(w, "ARTIFACT\tSHA256\tSIZE\tEXIT\tSTATUS\n")
			for _, e := range m.Artifacts {
				status := "ok"
				switch {
				case e.Unavailable != "":
					status = "unavailable: " + e.Unavailable
				case e.Truncated:
					status = "truncated at cap"
				case e.ExitCode != nil && *e.ExitCode != 0:
					status = "exit " + fmt.Sprint(*e.ExitCode) + prefixed(": ", firstLineOf(e.Stderr))
				}
				exit := "-"
				if len(e.Command) > 0 && e.ExitCode != nil {
					exit = fmt.Sprint(*e.ExitCode)
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", e.Name, store.Short(e.SHA256), e.Size, exit, status)
			}
			return w.Flush()
		},
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func firstLineOf(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return s
}
