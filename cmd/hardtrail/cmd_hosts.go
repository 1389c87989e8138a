package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	gossh "golang.org/x/crypto/ssh"

	"github.com/hardtrail/hardtrail/agent/fleet"
	"github.com/hardtrail/hardtrail/collector/transport/ssh"
)

func init() { commands = append(commands, hostsCmd) }

func hostsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "hosts", Short: "SSH host keys of targets"}
	var fingerprint string
	var replace bool
	add := &cobra.Command{
		Use:   "add TARGET --fingerprint SHA256:...",
		Short: "Enrol a target's SSH host key after checking it against a fingerprint you trust",
		Long: "Fetch the host key a target presents (through its jump host, if it has one), check it against\n" +
			"--fingerprint, obtained out of band (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the\n" +
			"host), and add it to the target's known_hosts file (default ~/.ssh/known_hosts).\n" +
			"A key that does not match is refused. When the file already trusts another key of the same\n" +
			"type for the host (its key changed), the key is refused unless --replace is given, which\n" +
			"removes the old entries, so that one key of each type stays trusted for the host.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := a.config()
			if err != nil {
				return err
			}
			t, ok := cfg.Target(args[0])
			if !ok {
				return usageErr("unknown target %q", args[0])
			}
			if t.Transport != "ssh" {
				return usageErr("target %s is %s, not ssh: it has no host key", t.Name, t.Transport)
			}
			sc, err := fleet.SSHConfig(cfg, t)
			if err != nil {
				return usageErr("%v", err)
			}
			var key gossh.PublicKey
			if sc.Jump != nil {
				key, err = ssh.ScanHostKeyVia(ctx, *sc.Jump, t.Address, 15*time.Second)
			} else {
				key, err = ssh.ScanHostKey(ctx, t.Address, 15*time.Second)
			}
			if err != nil {
				return finding(fmt.Errorf("target %s: %w", t.Name, err))
			}
			got := gossh.FingerprintSHA256(key)
			if fingerprint == "" {
				return usageErr("target %s (%s) presents %s %s: check it with the host's owner, then run: hardtrail hosts add %s --fingerprint %s",
					t.Name, t.Address, key.Type(), got, t.Name, got)
			}
			if fingerprint != got {
				return finding(fmt.Errorf("target %s (%s) presents %s %s, not the given %s: refusing to enrol it (a changed or intercepted key?)",
					t.Name, t.Address, key.Type(), got, fingerprint))
			}
			path := t.KnownHosts
			if path == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return usageErr("no known_hosts set for %s and no home directory: %v", t.Name, err)
				}
				path = filepath.Join(home, ".ssh", "known_hosts")
			}
			var removed []string
			added := true
			if replace {
				removed, err = ssh.ReplaceKnownHost(path, t.Address, key)
			} else {
				added, err = ssh.AddKnownHost(path, t.Address, key)
			}
			var conflict *ssh.KnownHostConflict
			if errors.As(err, &conflict) {
				if conflict.Shared {
					return finding(fmt.Errorf("target %s: %w", t.Name, err))
				}
				return finding(fmt.Errorf("target %s: %w; if the host's key was replaced on purpose, enrol the new one in place of the old: hardtrail hosts add %s --fingerprint %s --replace",
					t.Name, err, t.Name, got))
			}
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(map[string]any{"target": t.Name, "address": t.Address, "key_type": key.Type(), "fingerprint": got,
					"known_hosts": path, "added": added, "replaced": nonNilStrings(removed)})
			}
			for _, r := range removed {
				fmt.Fprintf(a.stdout, "%s: removed %s\n", t.Name, r)
			}
			if !added {
				fmt.Fprintf(a.stdout, "%s: %s %s already in %s\n", t.Name, key.Type(), got, path)
				return nil
			}
			fmt.Fprintf(a.stdout, "%s: %s %s added to %s\n", t.Name, key.Type(), got, path)
			return nil
		},
	}
	add.Flags().StringVar(&fingerprint, "fingerprint", "", "the SHA256 fingerprint the host key must have")
	add.Flags().BoolVar(&replace, "replace", false, "remove the entries trusting another key of the same type for the host (after a host key change)")
	cmd.AddCommand(add)
	return cmd
}

func nonNilStrings(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}
