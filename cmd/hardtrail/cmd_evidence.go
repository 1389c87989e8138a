package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/agent/evidence"
	"github.com/hardtrail/hardtrail/agent/store"
)

func init() { commands = append(commands, evidenceCmd) }

func evidenceCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "evidence", Short: "Export and verify an incident's evidence bundle"}
	cmd.AddCommand(evidenceExportCmd(a), evidenceVerifyCmd(a))
	return cmd
}

func evidenceExportCmd(a *app) *cobra.Command {
	var out, signKey string
	var rulesFlag []string
	cmd := &cobra.Command{
		Use:   "export ID -o FILE.tar.gz [--sign-key FILE]",
		Short: "Write an incident's evidence bundle: before, after, diffs, report, rule results",
		Long: "Write the evidence bundle of an incident as one .tar.gz: ID/manifest.json (the SHA-256 of every\n" +
			"file), ID/manifest.json.sig (with --sign-key), ID/before/TARGET/ARTIFACT and ID/after/TARGET/ARTIFACT\n" +
			"(the stored artifacts, byte for byte), ID/diff/TARGET/ARTIFACT.diff and ID/diff/combined.diff (applies\n" +
			"with patch -p1 inside ID/before to give ID/after), ID/report.md, ID/results.json and\n" +
			"ID/results.junit.xml (the rules linked to the incident on the before, after and newest snapshots).\n" +
			"The file is written atomically, and the same evidence gives the same bytes. Nothing else is written.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			id := args[0]
			if err := store.CheckIncidentID(id); err != nil {
				return usageErr("%v", err)
			}
			if out == "" {
				return usageErr("-o FILE.tar.gz is required")
			}
			var key ed25519.PrivateKey
			if signKey != "" {
				k, err := evidence.LoadPrivateKey(signKey)
				if err != nil {
					return usageErr("%v", err)
				}
				key = k
			}
			cfg, err := a.config()
			if err != nil {
				return err
			}
			// Exporting reads the store: never create one.
			if p := cfg.StorePath(a.storeFlag); p != "" && store.IsPath(p) {
				if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
					return usageErr("store %s does not exist: nothing to export (choose the store with --store)", p)
				}
			}
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			set, err := a.ruleSet(ctx, rulesFlag)
			if err != nil {
				return err
			}
			b, err := evidence.Build(ctx, st, id, set)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			sum, err := b.WriteFile(out, key)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			m := b.Manifest
			var exported []string
			for _, t := range m.Targets {
				if t.Exported {
					exported = append(exported, t.Target)
				}
			}
			signer, files := "", len(m.Files)+1 // and the manifest
			if key != nil {
				signer, files = evidence.Fingerprint(key.Public().(ed25519.PublicKey)), files+1
			}
			if a.json() {
				return a.printJSON(map[string]any{"file": out, "sha256": sum, "incident": id, "status": m.Status,
					"targets": exported, "files": files, "signed_by": signer})
			}
			fmt.Fprintf(a.stdout, "wrote %s: incident %s (%s), targets %s, %d files\n", out, id, m.Status, strings.Join(exported, ", "), files)
			fmt.Fprintf(a.stdout, "sha256 %s\n", sum)
			if key != nil {
				fmt.Fprintf(a.stdout, "signed by %s\n", signer)
			} else {
				fmt.Fprintln(a.stdout, "not signed (sign with --sign-key; make a key with hardtrail keygen)")
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "the bundle to write (.tar.gz)")
	cmd.Flags().StringVar(&signKey, "sign-key", "", "sign the manifest with this ed25519 private key (from hardtrail keygen)")
	cmd.Flags().StringArrayVar(&rulesFlag, "rules", nil, "rule files or directories whose rules name the incident (default: the config's rules, else the shipped packs)")
	return cmd
}

func evidenceVerifyCmd(a *app) *cobra.Command {
	var pubFile string
	cmd := &cobra.Command{
		Use:   "verify FILE [--pubkey FILE]",
		Short: "Check an evidence bundle: structure, every file's hash, the signature, the diffs",
		Long: "Check an evidence bundle in memory, writing nothing: only regular files and directories under one\n" +
			"top directory, every file against manifest.json (SHA-256 and size, none missing or added), the\n" +
			"signature with --pubkey, and that diff/combined.diff applied to before/ gives after/.\n" +
			"Without --pubkey everything but the signature is checked, and the output says so.\n" +
			"Exit 0 when the bundle verifies, 1 naming the first file that fails, 2 when it cannot be read.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var pub ed25519.PublicKey
			if pubFile != "" {
				k, err := evidence.LoadPublicKey(pubFile)
				if err != nil {
					return usageErr("%v", err)
				}
				pub = k
			}
			f, err := os.Open(args[0])
			if err != nil {
				return usageErr("%v", err)
			}
			defer f.Close()
			v, err := evidence.Verify(f, pub, evidence.DefaultLimits)
			var fail *evidence.Failure
			switch {
			case errors.As(err, &fail):
				return finding(fmt.Errorf("%s does not verify: %w", args[0], err))
			case err != nil:
				return usageErr("%s: %v", args[0], err)
			}
			m := v.Manifest
			if a.json() {
				return a.printJSON(map[string]any{"ok": true, "file": args[0], "incident": m.Incident, "status": m.Status,
					"files": v.Files, "bytes": v.Bytes, "targets": v.Targets, "signed": v.Signed,
					"signature_checked": v.SignatureChecked, "signer": v.Signer})
			}
			fmt.Fprintf(a.stdout, "ok: %s: incident %s (%s), %d files (%d bytes), targets %s\n",
				args[0], m.Incident, m.Status, v.Files, v.Bytes, strings.Join(v.Targets, ", "))
			switch {
			case v.SignatureChecked:
				fmt.Fprintf(a.stdout, "signature: good, signed by %s\n", v.Signer)
			case v.Signed && v.Signer != "":
				fmt.Fprintf(a.stdout, "signature: NOT CHECKED (no --pubkey); the manifest says %s signed it\n", v.Signer)
			case v.Signed:
				fmt.Fprintln(a.stdout, "signature: NOT CHECKED (no --pubkey)")
			default:
				fmt.Fprintln(a.stdout, "signature: none (the bundle is not signed)")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pubFile, "pubkey", "", "check the signature with this ed25519 public key (PREFIX.pub from hardtrail keygen)")
	return cmd
}
