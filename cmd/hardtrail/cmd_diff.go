package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/diff"
)

func init() { commands = append(commands, diffCmd) }

// artifactDiff is one artifact's difference between two snapshots.
type artifactDiff struct {
	Name    string `json:"artifact"`
	Change  string `json:"change"` // modified, added, removed, binary, not-captured
	Added   int    `json:"added"`
	Removed int    `json:"removed"`
	Note    string `json:"note,omitempty"`
	Patch   string `json:"patch,omitempty"`
}

// diffMode is what diffSnapshots makes of a text artifact's difference.
type diffMode int

const (
	diffStat  diffMode = iota // the counts only
	diffPatch                 // the counts and the patch in artifactDiff.Patch
	diffWrite                 // the counts, the patch written to the writer
)

// readSides reads the contents of the sides of an artifact that are present, both at once
// (store.ReadBlobs): what is derived from them is shown only once check has passed.
func readSides(ctx context.Context, st *store.Store, inA bool, a string, inB bool, b string) (ca, cb []byte, check func() error, err error) {
	var hashes []string
	if inA {
		hashes = append(hashes, a)
	}
	if inB {
		hashes = append(hashes, b)
	}
	c, err := st.ReadBlobs(ctx, hashes...)
	if err != nil {
		return nil, nil, nil, err
	}
	bs := c.Data
	if inA {
		ca, bs = bs[0], bs[1:]
	}
	if inB {
		cb = bs[0]
	}
	return ca, cb, c.Check, nil
}

// checkedWriter passes writes on to w once check has passed, so that nothing derived from
// contents still being checked against their hashes is written before they are.
type checkedWriter struct {
	w       io.Writer
	check   func() error
	checked bool
	err     error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	if !c.checked {
		c.checked, c.err = true, c.check()
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.w.Write(p)
}

// diffSnapshots compares every artifact (or the one named) of two snapshots, in name order,
// and calls emit for each that differs. Labels are a/TARGET/ARTIFACT and b/TARGET/ARTIFACT, so
// the patch applies with patch -p1. Each artifact's diff is computed once, and with diffWrite
// written to w as it is rendered, so only one artifact's contents are held at a time.
func diffSnapshots(ctx context.Context, st *store.Store, a, b *store.Snapshot, only string, mode diffMode, w *bufio.Writer, emit func(artifactDiff) error) error {
	names := map[string]bool{}
	for _, sn := range []*store.Snapshot{a, b} {
		for _, e := range sn.Manifest.Artifacts {
			names[e.Name] = true
		}
	}
	if only != "" {
		if !names[only] {
			return usageErr("neither snapshot has an artifact %q", only)
		}
		names = map[string]bool{only: true}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		ea, inA := a.Entry(n)
		eb, inB := b.Entry(n)
		if inA && inB && ea.SHA256 == eb.SHA256 && ea.Unavailable == eb.Unavailable {
			continue
		}
		la, lb := "a/"+a.Manifest.Target+"/"+n, "b/"+b.Manifest.Target+"/"+n
		d := artifactDiff{Name: n}
		switch {
		case inA && ea.Unavailable != "" || inB && eb.Unavailable != "":
			d.Change = "not-captured"
			d.Note = fmt.Sprintf("not captured in %s: %s", map[bool]string{true: "a", false: "b"}[ea.Unavailable != ""], ea.Unavailable+eb.Unavailable)
			if err := emit(d); err != nil {
				return err
			}
			continue
		}
		ca, cb, check, err := readSides(ctx, st, inA, ea.SHA256, inB, eb.SHA256)
		if err != nil {
			return err
		}
		switch {
		case diff.IsBinary(ca) || diff.IsBinary(cb):
			d.Change, d.Note = "binary", fmt.Sprintf("binary artifact differs: %s -> %s", orNone(store.Short(ea.SHA256)), orNone(store.Short(eb.SHA256)))
		case !inA:
			d.Change, la = "added", diff.DevNull
		case !inB:
			d.Change, lb = "removed", diff.DevNull
		default:
			d.Change = "modified"
		}
		switch {
		case d.Change == "binary":
		case mode == diffStat:
			d.Added, d.Removed = diff.Stat(ca, cb)
		case mode == diffPatch:
			var sb strings.Builder
			d.Added, d.Removed, _ = diff.WriteUnified(&sb, ca, cb, la, lb) // a Builder does not fail
			d.Patch = sb.String()
		case mode == diffWrite:
			// The comparison runs while the contents are checked; the output waits for the check.
			if d.Added, d.Removed, err = diff.WriteUnified(&checkedWriter{w: w, check: check}, ca, cb, la, lb); err != nil {
				return err
			}
		}
		if err := check(); err != nil {
			return err
		}
		if err := emit(d); err != nil {
			return err
		}
	}
	return nil
}

func diffCmd(a *app) *cobra.Command {
	var only string
	var stat, exitCode bool
	cmd := &cobra.Command{
		Use:   "diff REF REF [--artifact NAME] [--stat] [--exit-code]",
		Short: "Unified diff of two snapshots, per artifact",
		Long: "Unified diff of every artifact that differs between two snapshots, labelled a/TARGET/ARTIFACT\n" +
			"and b/TARGET/ARTIFACT so that the output applies with patch -p1. Added and removed artifacts\n" +
			"diff against /dev/null; binary artifacts are reported as differing by hash.\n" +
			"With --exit-code, exit 1 when they differ.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			a.readOnly = true
			// Starting touched code all over the binary that the comparison does not run
			// again: returned on another processor while the snapshots are resolved, it does
			// not add to the comparison's peak memory.
			released := make(chan struct{})
			go func() {
				defer close(released)
				releasePages(a.log)
			}()
			defer func() { <-released }()
			sa, err := a.resolve(ctx, args[0])
			if err != nil {
				return err
			}
			sb, err := a.resolve(ctx, args[1])
			if err != nil {
				return err
			}
			defer collectLate(sa, sb)()
			w := bufio.NewWriterSize(a.stdout, 32<<10)
			mode := diffWrite
			switch {
			case a.json():
				mode = diffPatch
			case stat:
				mode = diffStat
			}
			diffs := []artifactDiff{}
			err = diffSnapshots(ctx, a.store, sa, sb, only, mode, w, func(d artifactDiff) error {
				diffs = append(diffs, d)
				if mode == diffWrite && d.Note != "" {
					_, err := fmt.Fprintf(w, "artifact %s: %s\n", d.Name, d.Note)
					return err
				}
				return nil
			})
			if err != nil {
				return err
			}
			switch {
			case a.json():
				if err := a.printJSON(diffs); err != nil {
					return err
				}
			case stat:
				writeStat(w, diffs)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if exitCode && len(diffs) > 0 {
				return &exitError{code: exitFinding}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&only, "artifact", "", "diff only this artifact")
	cmd.Flags().BoolVar(&stat, "stat", false, "one line per artifact with lines added and removed")
	cmd.Flags().BoolVar(&exitCode, "exit-code", false, "exit 1 when the snapshots differ")
	return cmd
}

// collectLate turns the garbage collector off for the rest of a diff, whose memory is nearly all
// live until it ends (two artifacts and their line index, one pair at a time), so collecting
// would free little and cost time and memory of its own. A soft limit of 32 MiB above four
// times the largest pair of artifacts (or GOMEMLIMIT, when lower) brings collection back should
// the heap grow past what one pair needs (many pairs in a row). It returns what restores the
// settings.
func collectLate(a, b *store.Snapshot) func() {
	var largest int64
	for _, ea := range a.Manifest.Artifacts {
		eb, _ := b.Entry(ea.Name)
		largest = max(largest, ea.Size+eb.Size)
	}
	for _, eb := range b.Manifest.Artifacts {
		largest = max(largest, eb.Size)
	}
	limit := debug.SetMemoryLimit(-1) // GOMEMLIMIT's, when lower, stands
	debug.SetMemoryLimit(min(limit, 32<<20+4*largest))
	percent := debug.SetGCPercent(-1)
	return func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	}
}

func writeStat(w *bufio.Writer, diffs []artifactDiff) {
	width := 0
	for _, d := range diffs {
		width = max(width, len(d.Name))
	}
	adds, dels := 0, 0
	for _, d := range diffs {
		var b bytes.Buffer
		switch d.Change {
		case "binary", "not-captured":
			b.WriteString(d.Note)
		default:
			fmt.Fprintf(&b, "+%d -%d", d.Added, d.Removed)
			if d.Change != "modified" {
				b.WriteString(" (" + d.Change + ")")
			}
		}
		fmt.Fprintf(w, " %-*s | %s\n", width, d.Name, b.String())
		adds += d.Added
		dels += d.Removed
	}
	fmt.Fprintf(w, " %s changed, %s added, %d removed\n", plural(len(diffs), "artifact", "artifacts"), plural(adds, "line", "lines"), dels)
}
