package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/agent/fleet"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/rules"
)

func init() { commands = append(commands, checkCmd) }

// CaptureRule is the rule ID under which check reports a target it could not capture.
const CaptureRule = "capture"

func checkCmd(a *app) *cobra.Command {
	var refs, sources []string
	cmd := &cobra.Command{
		Use:   "check [TARGET...] [--snapshot REF]... [--rules PATH|URL|builtin]... [--format text|json|junit]",
		Short: "Evaluate regression rules on fresh or stored snapshots",
		Long: "Capture every target of the config (or the named ones), store the snapshots, and evaluate the rules\n" +
			"on them; with --snapshot, evaluate stored snapshots instead and capture nothing. The results are\n" +
			"stored with each snapshot under the rules' digest.\n\n" +
			"Rules come from --rules (repeatable: a rule file or directory, \"builtin\" for the shipped packs, or a\n" +
			"remote source such as https://HOST/pack.tar.gz?checksum=sha256:HEX or git::https://HOST/REPO?ref=COMMIT,\n" +
			"fetched into a cache beside the store), else from the config's rules, else the shipped packs. All\n" +
			"sources load as one set, so a file of waivers can be given beside the packs it waives.\n\n" +
			"A target that cannot be captured is reported as rule \"capture\" in error. A failed rule's remediation\n" +
			"is printed under it. Rule sources that hold no rule at all are an error: there is nothing to check.\n" +
			"Exit code 0 when every rule passes, is skipped or is waived; 1 when any rule fails or errs (its\n" +
			"artifact was not captured, so the control is not evidenced) or a target failed to capture;\n" +
			"2 when the rules do not load or hold no rule, a REF or TARGET is unknown, or the flags are wrong.",
		Annotations: map[string]string{"formats": "text json junit"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(refs) > 0 && len(args) > 0 {
				return usageErr("give either TARGETs to capture or --snapshot REFs to evaluate, not both")
			}
			set, err := a.ruleSet(ctx, sources)
			if err != nil {
				return err
			}
			if set.Len() == 0 {
				return usageErr("no rules to evaluate: %s hold no [[rule]] table, so a check would prove nothing "+
					"(give --rules with a rule file or directory, or %q for the shipped packs)", filesOrNone(set.Files()), BuiltinRules)
			}
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			if err := a.warnUnknownIncidents(ctx, st, set); err != nil {
				return err
			}
			// Each target or REF gives one report: of a snapshot to evaluate, or of a failed capture.
			type item struct {
				snap *store.Snapshot
				rep  rules.Report
			}
			var items []item
			now := time.Now()
			if len(refs) > 0 {
				seen := map[string]bool{}
				for _, ref := range refs {
					snap, err := a.resolve(ctx, ref)
					if err != nil {
						return err
					}
					if !seen[snap.ID] {
						seen[snap.ID] = true
						items = append(items, item{snap: snap})
					}
				}
			} else {
				cfg, err := a.config()
				if err != nil {
					return err
				}
				red, err := a.redactor()
				if err != nil {
					return err
				}
				sn := &fleet.Snapshotter{Config: cfg, Store: st, Redactor: red, Logger: a.log}
				progress := newProgress(a.stderr, len(args), len(cfg.Targets))
				results, err := sn.Run(ctx, args, "", func(r fleet.Result) {
					progress.done(r)
					progress.draw()
				})
				if err != nil {
					return usageErr("%v", err)
				}
				progress.finish(results)
				for _, r := range results {
					if r.Err != nil {
						items = append(items, item{rep: captureReport(r, set.Digest(), now)})
						continue
					}
					snap, err := st.Get(ctx, r.Saved.ID)
					if err != nil {
						return err
					}
					items = append(items, item{snap: snap})
				}
			}
			reports := make([]rules.Report, len(items))
			for i, it := range items {
				reports[i] = it.rep
				if it.snap == nil {
					continue
				}
				if reports[i], err = fleet.Check(ctx, st, it.snap, set, now); err != nil {
					return err
				}
			}
			switch a.format {
			case "json":
				err = rules.WriteJSON(a.stdout, reports...)
			case "junit":
				err = rules.WriteJUnit(a.stdout, reports...)
			default:
				err = rules.WriteText(a.stdout, reports...)
			}
			if err != nil {
				return err
			}
			return checkOutcome(reports)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&refs, "snapshot", nil, "evaluate this stored snapshot (REF: ID, prefix, TARGET, TARGET~N, INCIDENT:before|after) instead of capturing; repeatable")
	f.StringArrayVar(&sources, "rules", nil, "rule file, directory, \"builtin\" or remote source; repeatable (default: the config's rules, else the shipped packs)")
	return cmd
}

// captureReport is the report of a target that could not be captured: one result in error.
func captureReport(r fleet.Result, digest string, at time.Time) rules.Report {
	res := rules.Result{
		Rule: CaptureRule, Title: "The target is captured", Severity: rules.High, Kind: CaptureRule,
		Controls: []string{}, Incidents: []string{}, Outcome: rules.Error,
		Message:  fmt.Sprintf("capture failed at %s: %v", r.Stage, r.Err),
		Expected: "a snapshot of the target", Actual: "no snapshot",
	}
	return rules.NewReport([]rules.Result{res}, r.Target, "", digest, at)
}

// checkOutcome is nil when every result passed, was skipped or waived, and a finding (exit 1)
// that counts what did not otherwise.
func checkOutcome(reports []rules.Report) error {
	var fail, errs, uncaptured int
	var targets []string
	for _, r := range reports {
		bad := false
		for _, res := range r.Results {
			switch {
			case res.Kind == CaptureRule && r.Snapshot == "":
				uncaptured++
				bad = true
			case res.Outcome == rules.Fail:
				fail++
				bad = true
			case res.Outcome == rules.Error:
				errs++
				bad = true
			}
		}
		if bad {
			targets = append(targets, r.Target)
		}
	}
	if fail+errs+uncaptured == 0 {
		return nil
	}
	var parts []string
	if fail > 0 {
		parts = append(parts, plural(fail, "rule failed", "rules failed"))
	}
	if errs > 0 {
		parts = append(parts, plural(errs, "rule erred", "rules erred"))
	}
	if uncaptured > 0 {
		parts = append(parts, plural(uncaptured, "target failed to capture", "targets failed to capture"))
	}
	return finding(fmt.Errorf("%s (%s)", strings.Join(parts, ", "), strings.Join(targets, ", ")))
}

// filesOrNone names the rule files for a message: "the rule files a.toml, b.toml", or "the rule
// sources" when no file was found.
func filesOrNone(files []string) string {
	if len(files) == 0 {
		return "the rule sources"
	}
	return "the rule files " + strings.Join(files, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
