package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, storeCmd) }

func storeCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "Maintain the evidence store"}
	cmd.AddCommand(&cobra.Command{
		Use:   "verify",
		Short: "Recompute every hash and every chain link",
		Long:  "Recompute every stored blob's hash, every manifest's hash and every chain link, and name what is wrong.\nExit code 1 when anything fails.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			rep, err := st.Verify(ctx)
			if err != nil {
				return err
			}
			if a.json() {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else {
				for _, p := range rep.Problems {
					fmt.Fprintln(a.stdout, "FAIL", p)
				}
				if len(rep.Problems) == 0 {
					fmt.Fprintf(a.stdout, "ok: %s and %s verified in %s (%s, %s)\n", plural(rep.Snapshots, "snapshot", "snapshots"), plural(rep.Blobs, "blob", "blobs"),
						st.Path(), plural(rep.Links, "incident link", "incident links"), plural(rep.Results, "result", "results"))
				}
			}
			if len(rep.Problems) > 0 {
				return finding(fmt.Errorf("store %s: %s", st.Path(), plural(len(rep.Problems), "problem", "problems")))
			}
			return nil
		},
	})
	return cmd
}
