package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/hardtrail/hardtrail/agent/evidence"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/internal/sshsig"
)

func init() { commands = append(commands, evidenceCmd) }

func evidenceCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "evidence", Short: "Export and verify an incident's evidence bundle"}
	cmd.AddCommand(evidenceExportCmd(a), evidenceVerifyCmd(a))
	return cmd
}

func evidenceExportCmd(a *app) *cobra.Command {
	var out, signKey, tsaURL, tsaCA string
	var rulesFlag []string
	cmd := &cobra.Command{
		Use:   "export ID -o FILE.tar.gz [--sign-key FILE]",
		Short: "Write an incident's evidence bundle: before, after, diffs, report, rule results",
		Long: "Write the evidence bundle of an incident as one .tar.gz: ID/manifest.json (the SHA-256 of every\n" +
			"file), ID/manifest.json.sig (with --sign-key), ID/before/TARGET/ARTIFACT and ID/after/TARGET/ARTIFACT\n" +
			"(the stored artifacts, byte for byte), ID/diff/TARGET/ARTIFACT.diff and ID/diff/combined.diff (applies\n" +
			"with patch -p1 inside ID/before to give ID/after), ID/report.md, ID/results.json and\n" +
			"ID/results.junit.xml (the rules linked to the incident on the before, after and newest snapshots),\n" +
			"ID/snapshots/SNAPSHOT.json (each snapshot's canonical manifest: its SHA-256 is its ID), ID/rules/ (the\n" +
			"linked rule files verbatim), ID/records/ (the incident record; each signed link or record and its\n" +
			"SSHSIG signature). The manifest and report hold the regression history since the fix.\n" +
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
			if p := cfg.StorePath(a.storeFlag); p != "" {
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
			if tsaCA != "" && tsaURL == "" {
				return usageErr("--tsa-ca needs --tsa URL")
			}
			roots, err := loadTSACA(tsaCA)
			if err != nil {
				return usageErr("%v", err)
			}
			stamp, err := seal(ctx, b, key, tsaURL, roots)
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
				j := map[string]any{"file": out, "sha256": sum, "incident": id, "status": m.Status,
					"targets": exported, "files": files, "signed_by": signer}
				if stamp != nil {
					j["timestamp"] = map[string]any{"time": stamp.Time, "serial": stamp.Serial.String(), "signer": stamp.Signer, "trusted": stamp.Trusted}
				}
				return a.printJSON(j)
			}
			fmt.Fprintf(a.stdout, "wrote %s: incident %s (%s), targets %s, %s\n", out, id, m.Status, strings.Join(exported, ", "), plural(files, "file", "files"))
			fmt.Fprintf(a.stdout, "sha256 %s\n", sum)
			if key != nil {
				fmt.Fprintf(a.stdout, "signed by %s\n", signer)
			} else {
				fmt.Fprintln(a.stdout, "not signed (sign with --sign-key; make a key with hardtrail keygen)")
			}
			if stamp != nil {
				fmt.Fprintln(a.stdout, timestampLine(stamp))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "the bundle to write (.tar.gz)")
	cmd.Flags().StringVar(&signKey, "sign-key", "", "sign the manifest with this ed25519 private key (from hardtrail keygen)")
	cmd.Flags().StringVar(&tsaURL, "tsa", "", "obtain an RFC 3161 timestamp over the manifest from this TSA URL (stored as ID/manifest.json.tsr)")
	cmd.Flags().StringVar(&tsaCA, "tsa-ca", "", "check the TSA's token against these CA certificates (PEM)")
	cmd.Flags().StringArrayVar(&rulesFlag, "rules", nil, "rule files or directories whose rules name the incident (default: the config's rules, else the shipped packs)")
	return cmd
}

func evidenceVerifyCmd(a *app) *cobra.Command {
	var pubFile, allowedFile, tsaCA string
	cmd := &cobra.Command{
		Use:   "verify FILE [--pubkey FILE]",
		Short: "Check an evidence bundle: structure, every file's hash, the signature, the diffs",
		Long: "Check an evidence bundle in memory, writing nothing: only regular files and directories under one\n" +
			"top directory, every file against manifest.json (SHA-256 and size, none missing or added), the\n" +
			"signature with --pubkey, and that diff/combined.diff applied to before/ gives after/. A format 2\n" +
			"bundle also has each snapshots/ID.json checked against its ID and the artifacts, the linked rules of\n" +
			"rules/ evaluated again over before/ and after/ and compared with results.json, and every operator\n" +
			"signature (SSHSIG) over what it signed; with --allowed-signers each signer's key must be allowed.\n" +
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
			var signers []sshsig.AllowedSigner
			if allowedFile != "" {
				sg, err := loadAllowedSigners(allowedFile)
				if err != nil {
					return usageErr("%v", err)
				}
				signers = sg
			}
			f, err := os.Open(args[0])
			if err != nil {
				return usageErr("%v", err)
			}
			defer f.Close()
			roots, err := loadTSACA(tsaCA)
			if err != nil {
				return usageErr("%v", err)
			}
			v, err := evidence.Verify(f, pub, evidence.DefaultLimits, evidence.WithTSARoots(roots))
			var fail *evidence.Failure
			switch {
			case errors.As(err, &fail):
				return finding(fmt.Errorf("%s does not verify: %w", args[0], err))
			case err != nil:
				return usageErr("%s: %v", args[0], err)
			}
			m := v.Manifest
			type operator struct {
				What       string   `json:"what"`
				By         string   `json:"by"`
				File       string   `json:"file"`
				Key        string   `json:"key"`
				Principals []string `json:"principals,omitempty"`
			}
			ops := []operator{}
			var refused []string
			for _, o := range v.Operators {
				op := operator{What: o.What, By: o.By, File: o.File, Key: ssh.FingerprintSHA256(o.Key)}
				if allowedFile != "" {
					who, err := sshsig.Allowed(signers, o.Key, "", sshsig.Namespace)
					if err != nil {
						refused = append(refused, fmt.Sprintf("%s (%s): %v", o.What, o.File, err))
					}
					op.Principals = who
				}
				ops = append(ops, op)
			}
			if len(refused) > 0 {
				return finding(fmt.Errorf("%s does not verify: operator signatures by keys not in %s: %s", args[0], allowedFile, strings.Join(refused, "; ")))
			}
			status := string(m.Status)
			if m.Headline != "" {
				status = m.Headline
			}
			if a.json() {
				return a.printJSON(map[string]any{"ok": true, "file": args[0], "incident": m.Incident, "format": m.Format, "status": m.Status,
					"headline": m.Headline, "files": v.Files, "bytes": v.Bytes, "targets": v.Targets, "signed": v.Signed,
					"signature_checked": v.SignatureChecked, "signer": v.Signer, "operator_signatures": ops, "sealed": v.Sealed})
			}
			fmt.Fprintf(a.stdout, "ok: %s: incident %s (%s), %s (%d bytes), targets %s\n",
				args[0], m.Incident, status, plural(v.Files, "file", "files"), v.Bytes, strings.Join(v.Targets, ", "))
			if m.Format == evidence.Format {
				fmt.Fprintf(a.stdout, "rules: %d linked rules evaluated again over before/ and after/: the outcomes match results.json\n", len(m.Rules))
			}
			for _, o := range ops {
				line := fmt.Sprintf("operator signature: %s by %s: good (%s)", o.What, o.By, o.Key)
				if allowedFile != "" {
					line += ", allowed as " + strings.Join(o.Principals, ",")
				} else {
					line += ", key not checked (give --allowed-signers)"
				}
				fmt.Fprintln(a.stdout, line)
			}
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
			for _, l := range sealedLines(v.Sealed) {
				fmt.Fprintln(a.stdout, l)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pubFile, "pubkey", "", "check the signature with this ed25519 public key (PREFIX.pub from hardtrail keygen)")
	cmd.Flags().StringVar(&tsaCA, "tsa-ca", "", "require the bundle's timestamp, when it has one, to be issued under these CA certificates (PEM)")
	cmd.Flags().StringVar(&allowedFile, "allowed-signers", "", "require every operator signature to be by a key of this allowed_signers file (ssh-keygen format)")
	return cmd
}
