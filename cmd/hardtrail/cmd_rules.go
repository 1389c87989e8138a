package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/rules"
	"github.com/hardtrail/hardtrail/rules/fetch"
)

func init() { commands = append(commands, rulesCmd) }

func rulesCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "rules", Short: "Validate and fetch rule packs"}
	cmd.AddCommand(rulesLintCmd(a), rulesFetchCmd(a))
	return cmd
}

// lintProblem is one problem in the JSON output of rules lint.
type lintProblem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Rule    string `json:"rule,omitempty"`
	Waiver  bool   `json:"waiver,omitempty"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
	Text    string `json:"text"` // the whole line as the text output prints it
}

// packSummary is what rules lint and rules fetch report about loaded rules.
type packSummary struct {
	OK       bool          `json:"ok"`
	Dir      string        `json:"dir,omitempty"`
	Rules    int           `json:"rules"`
	Waivers  int           `json:"waivers"`
	Foreign  int           `json:"waivers_for_other_rules,omitempty"`
	Files    []string      `json:"files"`
	Digest   string        `json:"digest,omitempty"`
	Problems []lintProblem `json:"problems,omitempty"`
}

func rulesLintCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "lint PATH...",
		Short: "Validate rule files and directories without evaluating them",
		Long: "Load rule files and directories (searched for *.toml) as one set, as check would, and print\n" +
			"\"ok: N rules, M waivers in K files (digest sha256:...)\" or every problem as FILE:LINE:COL: rule \"ID\": KEY: message.\n" +
			"The word builtin stands for the shipped packs, so waivers for shipped rules lint with: rules lint builtin waivers.toml.\n" +
			"Remote sources are not read: fetch them with rules fetch SOURCE DIR, then lint DIR.\n" +
			"Exit code 2 when any problem is found.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var srcs []rules.Source
			for _, p := range args {
				switch {
				case p == BuiltinRules:
					srcs = append(srcs, rules.ShippedSource())
				case fetch.IsRemote(p):
					return usageErr("rules lint reads local files only, and %s is a remote source: fetch it with hardtrail rules fetch SOURCE DIR, then lint DIR", fetch.RedactSource(p))
				default:
					srcs = append(srcs, rules.Source{Path: p})
				}
			}
			set, err := rules.LoadSources(srcs...)
			if err != nil {
				return a.lintFailed(err)
			}
			if err := a.lintIncidents(cmd.Context(), set); err != nil {
				return err
			}
			sum := packSummary{OK: true, Rules: set.Len(), Waivers: len(set.Waivers()), Files: set.Files(), Digest: set.Digest()}
			if a.json() {
				return a.printJSON(sum)
			}
			fmt.Fprintf(a.stdout, "ok: %s, %s in %s (digest %s)\n", plural(sum.Rules, "rule", "rules"), plural(sum.Waivers, "waiver", "waivers"), plural(len(sum.Files), "file", "files"), sum.Digest)
			return nil
		},
	}
}

// lintFailed prints every problem of a load error and ends with exit code 2.
func (a *app) lintFailed(err error) error {
	sum := packSummary{Files: []string{}}
	for _, e := range flattenErr(err) {
		p := lintProblem{Message: e.Error(), Text: e.Error()}
		var le *rules.LoadError
		var lim *rules.LimitError
		switch {
		case errors.As(e, &le):
			p = lintProblem{File: le.File, Line: le.Line, Col: le.Col, Rule: le.Rule, Waiver: le.Waiver, Key: le.Key, Message: le.Msg, Text: le.Error()}
		case errors.As(e, &lim):
			p.File = lim.Where
		}
		sum.Problems = append(sum.Problems, p)
	}
	if a.json() {
		if err := a.printJSON(sum); err != nil {
			return err
		}
	} else {
		for _, p := range sum.Problems {
			fmt.Fprintln(a.stdout, p.Text)
		}
	}
	return &exitError{code: exitUsage, err: fmt.Errorf("%s in the rules", plural(len(sum.Problems), "problem", "problems"))}
}

// flattenErr lists the errors joined in err.
func flattenErr(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErr(e)...)
		}
		return out
	}
	return []error{err}
}

func rulesFetchCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "fetch SOURCE DIR",
		Short: "Fetch a rule pack, check it, and install it as a directory",
		Long: "Download a rule pack, check every file (only directories and *.toml files, plus README, LICENSE,\n" +
			"COPYING and NOTICE; size and count limits), load it as rules, and only then install it as DIR,\n" +
			"replacing a pack already there. Nothing is installed when any check fails.\n\n" +
			"SOURCE is one of:\n" +
			"  https://HOST/PATH.tar.gz?checksum=sha256:HEX   (also .tgz, .tar, or a single .toml file)\n" +
			"  git::https://HOST/REPO?ref=COMMIT               (a full commit ID; also git::file:///PATH)\n" +
			"  file:///PATH or /PATH                           (a directory, a .toml file or an archive)\n" +
			"Archives and git sources may select a directory with //SUBDIR before the ?.\n" +
			"A pack's waivers may name rules from other sources; they are checked when the pack is loaded with them.\n" +
			"Exit code 2 when the source is refused, cannot be fetched, or its rules do not load.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			source, dir := args[0], args[1]
			if err := fetch.Fetch(cmd.Context(), source, dir, fetch.Options{Lint: lintPack, Logger: a.log}); err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			set, foreign, err := rules.CheckPack(packSource(dir))
			if err != nil {
				return &exitError{code: exitUsage, err: fmt.Errorf("installed pack %s: %w", dir, err)}
			}
			abs, _ := filepath.Abs(dir)
			sum := packSummary{OK: true, Dir: abs, Rules: set.Len(), Waivers: len(set.Waivers()) + foreign, Foreign: foreign, Files: set.Files(), Digest: set.Digest()}
			if a.json() {
				return a.printJSON(sum)
			}
			fmt.Fprintf(a.stdout, "installed %s: %s, %s in %s (digest %s)\n", abs, plural(sum.Rules, "rule", "rules"), plural(sum.Waivers, "waiver", "waivers"), plural(len(sum.Files), "file", "files"), sum.Digest)
			if foreign > 0 {
				fmt.Fprintf(a.stdout, "  %s for rules from other sources (checked when the pack is loaded with them; the digest leaves them out)\n", plural(foreign, "waiver is", "waivers are"))
			}
			for _, f := range sum.Files {
				fmt.Fprintf(a.stdout, "  %s\n", f)
			}
			return nil
		},
	}
}
