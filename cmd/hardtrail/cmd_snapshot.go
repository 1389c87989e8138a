package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/agent/fleet"
	"github.com/hardtrail/hardtrail/agent/store"
)

func init() { commands = append(commands, snapshotCmd) }

type snapshotLine struct {
	ID        string `json:"id,omitempty"`
	Target    string `json:"target"`
	Artifacts int    `json:"artifacts"`
	Changed   int    `json:"changed"`
	NewBlobs  int    `json:"new_blobs"`
	Error     string `json:"error,omitempty"`
	Stage     string `json:"stage,omitempty"`
}

func snapshotCmd(a *app) *cobra.Command {
	var note string
	var tf tagFlags
	cmd := &cobra.Command{
		Use:   "snapshot [TARGET...] [--incident ID --phase before|after]",
		Short: "Capture targets and store the snapshots",
		Long: "Capture every target of the config (or the named ones) and store one snapshot each.\n" +
			"Prints one line per target: snapshot ID, target, artifacts, artifacts changed since the previous snapshot.\n" +
			"With --incident and --phase, each snapshot is also linked to the incident.\n" +
			"Exit code 1 when a target failed to capture while others succeeded.",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			tagging, err := tf.check()
			if err != nil {
				return err
			}
			cfg, err := a.config()
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
			note := red.RedactString(note) // a note is stored too
			// Starting and loading touched code all over the binary that capturing does not
			// run again; returned now, it does not count in a fleet capture's memory.
			releasePages(a.log)
			inFlight := len(cfg.Targets)
			if len(args) > 0 {
				inFlight = len(args)
			}
			limitCaptureMemory(cfg.Agent.Concurrency, inFlight)
			sn := &fleet.Snapshotter{Config: cfg, Store: st, Redactor: red, Logger: a.log}
			progress := newProgress(a.stderr, len(args), len(cfg.Targets))
			var tagErr error
			results, err := sn.Run(ctx, args, note, func(r fleet.Result) {
				if tagging && r.Err == nil {
					if _, err := tf.tag(ctx, st, r.Saved.ID, note); err != nil {
						tagErr = err
					}
				}
				progress.done(r)
				if !a.json() {
					progress.clear()
					printSnapshotLine(a, r)
					progress.draw()
				}
			})
			if err != nil {
				return usageErr("%v", err)
			}
			progress.finish(results)
			failed := 0
			var lines []snapshotLine
			for _, r := range results {
				l := snapshotLine{Target: r.Target}
				if r.Err != nil {
					failed++
					l.Error, l.Stage = r.Err.Error(), r.Stage
				} else {
					l.ID, l.Artifacts, l.Changed, l.NewBlobs = r.Saved.ID, r.Saved.Artifacts, r.Saved.Changed, r.Saved.NewBlobs
				}
				lines = append(lines, l)
			}
			if a.json() {
				if err := a.printJSON(lines); err != nil {
					return err
				}
			}
			if tagErr != nil {
				return tagErr
			}
			if failed > 0 {
				return finding(fmt.Errorf("%d of %d targets failed to capture", failed, len(results)))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "a note stored in the snapshot's manifest (and the incident link)")
	tf.add(cmd, false)
	return cmd
}

func printSnapshotLine(a *app, r fleet.Result) {
	if r.Err != nil {
		fmt.Fprintf(a.stdout, "%-12s  %s  failed at %s: %v\n", "-", r.Target, r.Stage, r.Err)
		return
	}
	fmt.Fprintf(a.stdout, "%s  %s  %s  %d changed\n", store.Short(r.Saved.ID), r.Target, plural(r.Saved.Artifacts, "artifact", "artifacts"), r.Saved.Changed)
}

// captureHeapBase and captureHeapPerTarget size the soft heap limit of a capture: what the
// process holds, and what a target in flight (its connection, its outputs, their normalised
// and redacted copies) holds on top.
const (
	captureHeapBase      = 18 << 20
	captureHeapPerTarget = 256 << 10
)

// limitCaptureMemory sets a soft limit on the Go runtime's memory for a capture of targets,
// concurrency at once, unless GOMEMLIMIT sets one: the collector then collects garbage when its
// heap nears what the targets in flight need, instead of letting it grow to twice what is
// live. Past the limit it collects more often (it never fails for it), at most half the CPU.
// A capture of fewer targets at once than fleetFrom has no limit: one large artifact would
// otherwise make it collect continually.
func limitCaptureMemory(concurrency, targets int) {
	n := min(concurrency, targets)
	if os.Getenv("GOMEMLIMIT") != "" || n < fleetFrom {
		return
	}
	debug.SetMemoryLimit(captureHeapBase + int64(n)*captureHeapPerTarget)
}

// fleetFrom is the number of targets in flight from which a capture limits its memory.
const fleetFrom = 8
