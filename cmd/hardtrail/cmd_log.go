package main

import (
	"bufio"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/agent/store"
)

func init() { commands = append(commands, logCmd) }

// logDefault is how many snapshots log shows unless -n says otherwise: a fleet's store holds
// hundreds of thousands, and a terminal wants the newest.
const logDefault = 1000

func logCmd(a *app) *cobra.Command {
	var n int
	cmd := &cobra.Command{
		Use:   "log [TARGET]",
		Short: "List snapshots, newest first",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			a.readOnly = true
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			q := store.LogQuery{Limit: n}
			if n > 0 {
				q.Limit = n + 1 // one more tells whether older ones were left out
			}
			if len(args) == 1 {
				q.Target = args[0]
			}
			sums, err := st.Log(ctx, q)
			if err != nil {
				return err
			}
			if n > 0 && len(sums) > n {
				sums = sums[:n]
				if !cmd.Flags().Changed("max-count") {
					fmt.Fprintf(a.stderr, "hardtrail: log: the newest %d snapshots; older ones are not shown (-n 0 shows every one)\n", n)
				}
			}
			if q.Target != "" && len(sums) == 0 {
				return usageErr("target %q has no snapshots", q.Target)
			}
			if a.json() {
				if sums == nil {
					sums = []store.Summary{}
				}
				return a.printJSON(sums)
			}
			w := bufio.NewWriterSize(a.stdout, 64<<10)
			for _, s := range sums {
				fmt.Fprintf(w, "%s  %s  %-20s  #%-5d %4d artifacts %4d changed", store.Short(s.ID), s.TakenAt.UTC().Format(time.RFC3339), s.Target, s.Seq, s.Artifacts, s.Changed)
				if s.Note != "" {
					fmt.Fprintf(w, "  %q", s.Note)
				}
				w.WriteByte('\n')
			}
			return w.Flush()
		},
	}
	cmd.Flags().IntVarP(&n, "max-count", "n", logDefault, "show at most N snapshots (0: all)")
	return cmd
}
