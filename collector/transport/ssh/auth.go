package ssh

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// auth holds the keys one hop offers: identity files (each certificate before its plain key),
// then the agent's keys.
type auth struct {
	signers   []gossh.Signer
	offered   []string // "TYPE SHA256:... (SOURCE)" for messages
	agent     agent.ExtendedAgent
	agentConn net.Conn
}

// loadAuth reads the identity files, their certificates and, when asked, connects to the agent.
// Passphrases come from a file or an environment variable, never from the command line, and are
// not kept after the keys are decrypted.
func loadAuth(cfg *Config) (*auth, error) {
	a := &auth{}
	files := cfg.IdentityFiles
	if len(files) == 0 && !cfg.UseAgent {
		files = defaultIdentityFiles()
		if len(files) == 0 {
			return nil, errors.New("no key to offer: set identity_file, or use_agent with SSH_AUTH_SOCK")
		}
	}
	var plain []gossh.Signer
	for _, f := range files {
		s, err := loadKey(f, cfg)
		if err != nil {
			return nil, err
		}
		plain = append(plain, s)
	}
	certs := map[int][]gossh.Signer{} // index into plain -> certificate signers
	certFiles := slices.Clone(cfg.Certificates)
	for _, f := range files {
		if _, err := os.Stat(f + "-cert.pub"); err == nil && !slices.Contains(certFiles, f+"-cert.pub") {
			certFiles = append(certFiles, f+"-cert.pub")
		}
	}
	for _, cf := range certFiles {
		cert, err := loadCert(cf)
		if err != nil {
			return nil, err
		}
		matched := false
		for i, s := range plain {
			if bytes.Equal(s.PublicKey().Marshal(), cert.Key.Marshal()) {
				cs, err := gossh.NewCertSigner(cert, s)
				if err != nil {
					return nil, fmt.Errorf("certificate %s: %w", cf, err)
				}
				certs[i] = append(certs[i], cs)
				matched = true
			}
		}
		if !matched && !cfg.UseAgent {
			return nil, fmt.Errorf("certificate %s certifies %s, which is none of the identity files", cf, gossh.FingerprintSHA256(cert.Key))
		}
	}
	for i, s := range plain {
		for _, cs := range certs[i] {
			a.add(cs, files[i]+" certificate")
		}
		a.add(s, files[i])
	}
	if cfg.UseAgent {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, errors.New("use_agent is set but SSH_AUTH_SOCK is empty: start ssh-agent and add the key")
		}
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("ssh-agent at %s: %w", sock, err)
		}
		a.agent, a.agentConn = agent.NewClient(conn), conn
	}
	return a, nil
}

func (a *auth) add(s gossh.Signer, source string) {
	a.signers = append(a.signers, s)
	a.offered = append(a.offered, describeKey(s.PublicKey(), source))
}

func describeKey(k gossh.PublicKey, source string) string {
	d := fmt.Sprintf("%s %s (%s", k.Type(), gossh.FingerprintSHA256(k), source)
	if cert, ok := k.(*gossh.Certificate); ok {
		d = fmt.Sprintf("%s %s (%s, principals %s", k.Type(), gossh.FingerprintSHA256(cert.Key), source,
			strings.Join(cert.ValidPrincipals, ","))
		if cert.ValidBefore != gossh.CertTimeInfinity {
			until := time.Unix(int64(cert.ValidBefore), 0).UTC()
			d += ", valid until " + until.Format(time.RFC3339)
			if time.Now().After(until) {
				d += " EXPIRED"
			}
		}
	}
	return d + ")"
}

// method is the one publickey method offered: x/crypto tries each method name once, so file keys
// and agent keys go through a single callback.
func (a *auth) method() gossh.AuthMethod {
	return gossh.PublicKeysCallback(func() ([]gossh.Signer, error) {
		signers := append([]gossh.Signer(nil), a.signers...)
		if a.agent != nil {
			as, err := a.agent.Signers()
			if err != nil {
				return signers, nil
			}
			signers = append(signers, as...)
		}
		return signers, nil
	})
}

// describe lists the keys offered, for an authentication failure.
func (a *auth) describe() string {
	offered := append([]string(nil), a.offered...)
	if a.agent != nil {
		keys, err := a.agent.List()
		if err != nil {
			offered = append(offered, fmt.Sprintf("agent: %v", err))
		}
		for _, k := range keys {
			offered = append(offered, describeKey(k, "agent"))
		}
	}
	if len(offered) == 0 {
		return "no key"
	}
	return strings.Join(offered, "; ")
}

func (a *auth) close() {
	if a != nil && a.agentConn != nil {
		a.agentConn.Close()
	}
}

func defaultIdentityFiles() []string {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		p := filepath.Join(home, ".ssh", n)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func loadKey(path string, cfg *Config) (gossh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	s, err := gossh.ParsePrivateKey(pem)
	var missing *gossh.PassphraseMissingError
	if errors.As(err, &missing) {
		pass, perr := passphrase(cfg)
		if perr != nil {
			return nil, fmt.Errorf("identity file %s is encrypted: %w", path, perr)
		}
		s, err = gossh.ParsePrivateKeyWithPassphrase(pem, pass)
		clear(pass)
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, fmt.Errorf("identity file %s: the passphrase is wrong", path)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	return s, nil
}

func passphrase(cfg *Config) ([]byte, error) {
	switch {
	case cfg.PassphraseFile != "":
		b, err := os.ReadFile(cfg.PassphraseFile)
		if err != nil {
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
		return bytes.TrimRight(b, "\r\n"), nil
	case cfg.PassphraseEnv != "":
		v, ok := os.LookupEnv(cfg.PassphraseEnv)
		if !ok {
			return nil, fmt.Errorf("passphrase variable %s is not set", cfg.PassphraseEnv)
		}
		return []byte(v), nil
	}
	return nil, errors.New("set passphrase_file or passphrase_env")
}

// enableSecret reads the target's enable secret from its file or variable.
func enableSecret(cfg *Config) ([]byte, error) {
	switch {
	case cfg.EnableSecretFile != "":
		b, err := os.ReadFile(cfg.EnableSecretFile)
		if err != nil {
			return nil, fmt.Errorf("enable secret file: %w", err)
		}
		if b = bytes.TrimRight(b, "\r\n"); len(b) == 0 || bytes.ContainsAny(b, "\r\n") {
			return nil, fmt.Errorf("enable secret file %s: want the secret on one line", cfg.EnableSecretFile)
		}
		return b, nil
	case cfg.EnableSecretEnv != "":
		v, ok := os.LookupEnv(cfg.EnableSecretEnv)
		if !ok || v == "" {
			return nil, fmt.Errorf("enable secret variable %s is not set", cfg.EnableSecretEnv)
		}
		if strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("enable secret variable %s: want the secret on one line", cfg.EnableSecretEnv)
		}
		return []byte(v), nil
	}
	return nil, fmt.Errorf("%w: set enable_secret_file or enable_secret_env on the target, or log in as a user that lands privileged", ErrNoEnableSecret)
}

func loadCert(path string) (*gossh.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	k, _, _, _, err := gossh.ParseAuthorizedKey(b)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", path, err)
	}
	cert, ok := k.(*gossh.Certificate)
	if !ok || cert.CertType != gossh.UserCert {
		return nil, fmt.Errorf("certificate %s: not an OpenSSH user certificate", path)
	}
	return cert, nil
}
