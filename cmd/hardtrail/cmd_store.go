package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/agent/headstamp"
	"github.com/hardtrail/hardtrail/agent/store"
)

func init() { commands = append(commands, storeCmd) }

func storeCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "Maintain the evidence store"}
	var head string
	verify := &cobra.Command{
		Use:   "verify [--head DIGEST]",
		Short: "Recompute every hash and every chain link",
		Long: "Recompute every stored blob's hash, every manifest's and record's hash and every chain link,\n" +
			"check every column that output relies on against what is hashed, check that the store still\n" +
			"extends every head recorded in it, and name what is wrong. Prints the store's head digest.\n" +
			"With --head DIGEST (from store head or an evidence bundle), also fail unless the store still\n" +
			"extends that head: no record it covers was removed or changed.\n" +
			"Exit code 1 when anything fails.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			head = strings.TrimSpace(head)
			if head != "" && !store.ValidHeadDigest(head) {
				return usageErr("--head %q is not a head digest: want the 64 lower-case hex digits store head prints", head)
			}
			a.readOnly = true // verification reads in one transaction; a copy on read-only media verifies
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			rep, err := st.VerifyWith(ctx, store.VerifyOptions{Head: head})
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
					fmt.Fprintf(a.stdout, "ok: %s and %s verified in %s (%s, %s, %s, %s, %s)\n",
						plural(rep.Snapshots, "snapshot", "snapshots"), plural(rep.Blobs, "blob", "blobs"), st.Path(),
						plural(rep.Links, "incident link", "incident links"), plural(rep.Results, "result", "results"),
						plural(rep.Events, "status event", "status events"), plural(rep.Held, "held record", "held records"),
						plural(rep.Heads, "recorded head", "recorded heads"))
					if head != "" {
						fmt.Fprintf(a.stdout, "extends head %s\n", head)
					}
				}
				fmt.Fprintf(a.stdout, "head %s\n", rep.Head.Digest)
			}
			if len(rep.Problems) > 0 {
				return finding(fmt.Errorf("store %s: %s", st.Path(), plural(len(rep.Problems), "problem", "problems")))
			}
			return nil
		},
	}
	verify.Flags().StringVar(&head, "head", "", "fail unless the store still extends this head digest")
	cmd.AddCommand(verify)
	var tsaURL, tsaCA, tsaDir string
	headCmd := &cobra.Command{
		Use:   "head [--tsa URL [--tsa-ca FILE] [--tsa-dir DIR]]",
		Short: "Print one digest over the newest record of every chain",
		Long: "Print the store's head: one SHA-256 digest over the newest record of every hash chain\n" +
			"(the snapshots of each target, links, results, status events, held spans), then the\n" +
			"digest's input, one line CHAIN SEQ ID per chain. Keep the digest elsewhere (a ticket, a\n" +
			"timestamp): store verify --head DIGEST later fails if any record it covers was removed.\n" +
			"The head is recorded in the store, so the digest alone is enough to check it.\n" +
			"With --tsa URL, also obtain an RFC 3161 timestamp over the digest and keep it as\n" +
			"head-TIME.tsr beside head-TIME.sha256 in --tsa-dir (default STORE.heads/), proving the\n" +
			"store held all of it at that time: openssl ts -verify -digest DIGEST -in head-TIME.tsr -CAfile CA.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if tsaURL == "" && (tsaCA != "" || tsaDir != "") {
				return usageErr("--tsa-ca and --tsa-dir need --tsa URL")
			}
			roots, err := loadTSACA(tsaCA)
			if err != nil {
				return usageErr("%v", err)
			}
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			h, err := st.Head(ctx)
			if err != nil {
				return err
			}
			var stamp *headstamp.Stamp
			if tsaURL != "" {
				if tsaDir == "" {
					tsaDir = headsDir(st)
				}
				if stamp, err = stampHead(ctx, h, tsaURL, roots, tsaDir); err != nil {
					return err
				}
			}
			if a.json() {
				out := struct {
					Format string `json:"format"`
					*store.Head
					Timestamp any `json:"timestamp,omitempty"`
				}{Format: store.HeadFormat, Head: h}
				if stamp != nil {
					out.Timestamp = map[string]any{"digest": stamp.Digest, "time": stamp.Token.Time, "serial": stamp.Token.Serial.String(),
						"signer": stamp.Token.Signer, "trusted": stamp.Token.Trusted, "file": stamp.File}
				}
				return a.printJSON(out)
			}
			fmt.Fprintln(a.stdout, h.Digest)
			for _, c := range h.Chains {
				fmt.Fprintf(a.stdout, "  %s %d %s\n", c.Chain, c.Seq, c.ID)
			}
			if stamp != nil {
				fmt.Fprintf(a.stdout, "%s; kept in %s\n", timestampLine(stamp.Token), stamp.File)
			}
			return nil
		},
	}
	headCmd.Flags().StringVar(&tsaURL, "tsa", "", "obtain an RFC 3161 timestamp over the head digest from this TSA URL")
	headCmd.Flags().StringVar(&tsaCA, "tsa-ca", "", "check the TSA's token against these CA certificates (PEM)")
	headCmd.Flags().StringVar(&tsaDir, "tsa-dir", "", "keep the timestamp in this directory (default STORE.heads/)")
	cmd.AddCommand(headCmd)
	cmd.AddCommand(storeCopyCmd(a), storeMigrateCmd(a))
	return cmd
}

func storeCopyCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "copy SRC DST",
		Short: "Copy a whole store to another, on either engine, keeping every ID",
		Long: "Copy every record of the store SRC into DST (each a SQLite path, a postgres:// URL or a\n" +
			"key=value connection string), keeping snapshot IDs, chains and every byte, then verify DST.\n" +
			"DST is created when missing; it must be empty or hold only records of SRC (an earlier copy):\n" +
			"run again, copy writes only what is new. The copy is one transaction: interrupted, it writes\n" +
			"nothing. Exit code 1 when DST does not verify.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			src, err := store.Open(ctx, args[0])
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			defer src.Close()
			dst, err := store.Open(ctx, args[1])
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			defer dst.Close()
			rep, err := store.Copy(ctx, src, dst)
			if errors.Is(err, store.ErrDiverged) {
				return &exitError{code: exitUsage, err: err}
			}
			if err != nil {
				return err
			}
			v, err := dst.Verify(ctx)
			if err != nil {
				return err
			}
			if a.json() {
				if err := a.printJSON(struct {
					*store.CopyReport
					Verify *store.VerifyReport `json:"verify"`
				}{rep, v}); err != nil {
					return err
				}
			} else {
				var copied, present int
				for _, t := range slices.Sorted(maps.Keys(rep.Copied)) {
					copied += rep.Copied[t]
				}
				for _, n := range rep.Present {
					present += n
				}
				fmt.Fprintf(a.stdout, "copied %d rows from %s to %s (%d already there)\n", copied, src.Path(), dst.Path(), present)
				for _, t := range slices.Sorted(maps.Keys(rep.Copied)) {
					fmt.Fprintf(a.stdout, "  %s %d\n", t, rep.Copied[t])
				}
				for _, p := range v.Problems {
					fmt.Fprintln(a.stdout, "FAIL", p)
				}
				if len(v.Problems) == 0 {
					fmt.Fprintf(a.stdout, "ok: %s verifies: %d snapshots, %d blobs\n", dst.Path(), v.Snapshots, v.Blobs)
				}
				fmt.Fprintf(a.stdout, "head %s\n", v.Head.Digest)
			}
			if len(v.Problems) > 0 {
				return finding(fmt.Errorf("store %s: %d problems after the copy", dst.Path(), len(v.Problems)))
			}
			return nil
		},
	}
}

func storeMigrateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Bring the store's schema up to date",
		Long: "Apply the schema steps the store lacks, in one transaction, and print its schema version.\n" +
			"Every command does this when it opens a store whose role may change the schema; on a\n" +
			"PostgreSQL store whose agents use the writer role, the owner runs store migrate after an\n" +
			"upgrade of hardtrail.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			v, err := st.SchemaVersion(ctx)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(map[string]any{"store": st.Path(), "engine": st.Engine(), "version": v, "applied": st.Migrated()})
			}
			fmt.Fprintf(a.stdout, "%s: schema version %d (%d steps applied now)\n", st.Path(), v, st.Migrated())
			return nil
		},
	}
}
