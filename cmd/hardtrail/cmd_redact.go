package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/collector"
)

func init() { commands = append(commands, redactCmd) }

func redactCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "redact", Short: "Audit redaction before the first snapshot"}
	var profile string
	check := &cobra.Command{
		Use:   "check [--profile P] FILE...",
		Short: "Print what would be stored for files, and what looks secret but would not be redacted",
		Long: `check reads each FILE as a capture would (the files source of --profile that reads its
path, else the built-in rules), prints what would be stored, and lists every value that looks
secret but would be stored as it is, as FILE:LINE:COLUMN. The exit code is 1 when it finds one.
Placeholders use the store's redaction key when it exists, else a key of their own.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			return runRedactCheck(a, profile, files)
		},
	}
	check.Flags().StringVar(&profile, "profile", "", "profile whose sources read the files (built-in or from the config)")
	cmd.AddCommand(check)
	return cmd
}

func runRedactCheck(a *app, profile string, files []string) error {
	var p *collector.Profile
	if profile != "" {
		c, err := a.config()
		if err != nil {
			return err
		}
		for i := range c.Profiles {
			if c.Profiles[i].Name == profile {
				p = &c.Profiles[i]
			}
		}
		if p == nil {
			b, err := collector.Builtin()
			if err != nil {
				return err
			}
			p = b[profile]
		}
		if p == nil {
			return usageErr("--profile %q: no such profile (built-in: %s)", profile, strings.Join(collector.BuiltinNames(), ", "))
		}
	}
	red, err := a.checkRedactor()
	if err != nil {
		return err
	}
	var results []collector.CheckResult
	found := 0
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return usageErr("%s: %v", f, err)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return &exitError{code: exitUsage, err: fmt.Errorf("redact check: %w", err)}
		}
		var src *collector.Source
		if p != nil {
			if src = p.SourceFor(abs); src == nil {
				fmt.Fprintf(a.stderr, "hardtrail: %s: no files source of profile %s reads it; the built-in rules apply\n", f, p.Name)
			}
		}
		res, err := red.Check(abs, b, src)
		if err != nil {
			return err
		}
		res.Path = f
		for i := range res.Findings {
			res.Findings[i].Path = f
		}
		found += len(res.Findings)
		results = append(results, res)
	}
	if a.json() {
		if err := a.printJSON(results); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			fmt.Fprintf(a.stdout, "==> %s <==\n%s", r.Path, r.Stored)
			if r.Stored != "" && !strings.HasSuffix(r.Stored, "\n") {
				fmt.Fprintln(a.stdout)
			}
		}
		for _, r := range results {
			for _, f := range r.Findings {
				fmt.Fprintln(a.stdout, f)
			}
		}
		if found > 0 {
			fmt.Fprintf(a.stdout, "%d value(s) look secret but would not be redacted: add a redact pattern to the source, or set redact_entropy = true\n", found)
		}
	}
	if found > 0 {
		return finding(nil)
	}
	return nil
}

// checkRedactor uses the store's redaction key when it exists, so placeholders read as the
// store's would, and never creates one.
func (a *app) checkRedactor() (*collector.Redactor, error) {
	c, err := a.config()
	if err != nil {
		return nil, err
	}
	kf := c.KeyFile(c.StorePath(a.storeFlag))
	if _, err := os.Stat(kf); err == nil {
		return a.redactor()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("redaction key: %w", err)}
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return collector.NewRedactor(key)
}
