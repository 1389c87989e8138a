package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/collector/transport/ssh"
	"github.com/hardtrail/hardtrail/config"
)

// SSHConfig turns a target's settings into the SSH transport's, following jump targets by name.
func SSHConfig(cfg *config.Config, t *config.Target) (ssh.Config, error) {
	return sshConfig(cfg, t, map[string]bool{})
}

func sshConfig(cfg *config.Config, t *config.Target, seen map[string]bool) (ssh.Config, error) {
	if seen[t.Name] {
		return ssh.Config{}, fmt.Errorf("target %s: jump hosts form a loop", t.Name)
	}
	seen[t.Name] = true
	c := ssh.Config{
		Name:             t.Name,
		Address:          t.Address,
		PassphraseFile:   t.PassphraseFile,
		PassphraseEnv:    t.PassphraseEnv,
		EnableSecretFile: t.EnableSecretFile,
		EnableSecretEnv:  t.EnableSecretEnv,
		Fingerprints:     t.Fingerprints,
		CommandTimeout:   t.CommandTimeout.Duration,
		LegacyAlgorithms: t.LegacyAlgorithms,
		UseAgent:         os.Getenv("SSH_AUTH_SOCK") != "",
	}
	if t.UseAgent != nil {
		c.UseAgent = *t.UseAgent
	}
	if t.IdentityFile != "" {
		c.IdentityFiles = []string{t.IdentityFile}
	}
	if t.CertificateFile != "" {
		c.Certificates = []string{t.CertificateFile}
	}
	if t.KnownHosts != "" {
		c.KnownHosts = []string{t.KnownHosts}
	}
	if profiles, err := cfg.ProfilesFor(t); err == nil {
		for _, p := range profiles {
			if p.RawCommands {
				c.RawCommands = true
			}
		}
	}
	if t.Jump != "" {
		if jt, ok := cfg.Target(t.Jump); ok {
			j, err := sshConfig(cfg, jt, seen)
			if err != nil {
				return c, err
			}
			j.RawCommands = false
			c.Jump = &j
		} else {
			c.Jump = &ssh.Config{Name: t.Jump, Address: t.Jump}
		}
	}
	return c, nil
}

// Dial opens the transport to a target: this machine for a local target, an SSH connection
// (through its jump hosts) for an ssh one.
func Dial(ctx context.Context, cfg *config.Config, t *config.Target) (transport.Transport, error) {
	switch t.Transport {
	case "local":
		l := transport.NewLocal()
		if d := t.CommandTimeout.Duration; d > 0 {
			l.CommandTimeout = d
		}
		return l, nil
	case "ssh":
		c, err := SSHConfig(cfg, t)
		if err != nil {
			return nil, err
		}
		tr, err := ssh.Dial(ctx, c)
		if err != nil {
			return nil, err
		}
		return tr, nil
	}
	return nil, fmt.Errorf("target %s: unknown transport %q (want local or ssh)", t.Name, t.Transport)
}

// sshStage names the stage of an SSH failure: dial, handshake, hostkey, auth, command, timeout.
func sshStage(err error) string {
	var se *ssh.Error
	if errors.As(err, &se) {
		return string(se.Stage)
	}
	return ""
}
