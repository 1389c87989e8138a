package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/agent/trends"
)

func init() { commands = append(commands, reportCmd) }

func reportCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "report", Short: "Reports over the whole store"}
	cmd.AddCommand(reportTrendsCmd(a))
	return cmd
}

func reportTrendsCmd(a *app) *cobra.Command {
	var since, until, out string
	cmd := &cobra.Command{
		Use:   "trends [--since 12mo] [--until DATE] [--format md|html|csv|json] [-o FILE]",
		Short: "The incident trend report: incidents per month and category, time to verify, regressions, recurring weaknesses",
		Long: "Aggregate the incidents opened in the period (ISO 27001 Annex A 5.27, step 7): incidents per month and per\n" +
			"category, time from open to remediated and to verified (median and 90th percentile), regressions per\n" +
			"incident, control, target and artifact, and the rules that failed in two or more incidents or on two or\n" +
			"more targets. --since is a date or a length back from --until (12mo, 1y, 6w, 90d); --until is the last\n" +
			"day (default now). --format md (the default), html (one self-contained page with SVG charts), csv\n" +
			"(section,key,measure,value rows for spreadsheets) or json. The store is only read.",
		Annotations: map[string]string{"formats": "text md html csv json"},
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			w, err := trends.ParseWindow(since, until, time.Now())
			if err != nil {
				return usageErr("%v", err)
			}
			format := a.format
			if format == "text" {
				format = "md"
			}
			cfg, err := a.config()
			if err != nil {
				return err
			}
			if p := cfg.StorePath(a.storeFlag); p != "" {
				if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
					return usageErr("store %s does not exist: no incidents to report on (choose the store with --store)", p)
				}
			}
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			incs, err := trends.Load(ctx, st, incidentRecord(st))
			if err != nil {
				return err
			}
			var b bytes.Buffer
			if err := trends.Compute(incs, w).Write(&b, format); err != nil {
				return err
			}
			if out == "" {
				_, err := a.stdout.Write(b.Bytes())
				return err
			}
			if err := writeAtomic(out, b.Bytes()); err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			fmt.Fprintf(a.stderr, "wrote %s\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "12mo", "start: a date YYYY-MM-DD or a length back from --until (12mo, 1y, 6w, 90d)")
	cmd.Flags().StringVar(&until, "until", "", "last day of the period, YYYY-MM-DD (default now)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the report to this file (default standard output)")
	return cmd
}

// writeAtomic writes a file whole or not at all: a temporary file beside it, synced, renamed.
func writeAtomic(name string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// incidentRecord gives the trend report what incident records say: the category of the open
// record (the newest one, when the incident was reopened) and when it was first opened.
func incidentRecord(st *store.Store) trends.Record {
	return func(ctx context.Context, id string) (string, time.Time, error) {
		recs, err := st.Records(ctx, id)
		if err != nil {
			return "", time.Time{}, err
		}
		var cat string
		var opened time.Time
		for _, r := range recs {
			if r.Kind != store.KindOpen {
				continue
			}
			if opened.IsZero() || r.At.Before(opened) {
				opened = r.At
			}
			if r.Category != "" {
				cat = r.Category
			}
		}
		return cat, opened, nil
	}
}
