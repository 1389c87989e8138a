package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/agent/evidence"
)

func init() { commands = append(commands, keygenCmd) }

func keygenCmd(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen -o PREFIX",
		Short: "Create an ed25519 key pair for signing evidence bundles",
		Long: "Create an ed25519 key pair: PREFIX holds the private key (PEM PKCS#8, mode 0600) and\n" +
			"PREFIX.pub the public key (PEM PKIX), which auditors use with evidence verify --pubkey, or\n" +
			"with openssl pkeyutl -verify. Each file is written atomically and existing files are never\n" +
			"overwritten; when an earlier run stopped after writing PREFIX, a new run writes its PREFIX.pub.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErr("-o PREFIX is required")
			}
			_, statErr := os.Lstat(out)
			pub, err := evidence.GenerateKey(out, nil)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			fp := evidence.Fingerprint(pub)
			if a.json() {
				return a.printJSON(map[string]string{"private_key": out, "public_key": out + ".pub", "fingerprint": fp})
			}
			if statErr == nil {
				fmt.Fprintf(a.stdout, "completed the key pair of an earlier run that stopped after writing %s\n", out)
			}
			fmt.Fprintf(a.stdout, "private key %s (keep it secret; sign with evidence export --sign-key %s)\n", out, out)
			fmt.Fprintf(a.stdout, "public key  %s (give it to auditors: evidence verify --pubkey %s)\n", out+".pub", out+".pub")
			fmt.Fprintf(a.stdout, "fingerprint %s\n", fp)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the private key to PREFIX and the public key to PREFIX.pub")
	return cmd
}
