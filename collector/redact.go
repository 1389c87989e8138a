package collector

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
)

// secretPatterns find secrets in any artifact. The first capture group, or the whole match when
// there is none, is the secret.
var secretPatterns = []*regexp.Regexp{
	// The body of PEM private keys of every kind (RSA, EC, OPENSSH, ENCRYPTED, PKCS#8).
	regexp.MustCompile(`(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\r?\n(.*?)\r?\n?-----END [A-Z0-9 ]*PRIVATE KEY-----`),
	// crypt(3) password hashes: MD5, bcrypt, SHA-256/512, yescrypt, scrypt, argon2.
	regexp.MustCompile(`\$(?:1|2[abxy]?|5|6|7|y|gy|md5|sha1|argon2(?:id|i|d))\$[^\s:"',;]{8,}`),
	// key = value or key: value secrets in INI, YAML, shell and daemon config files.
	regexp.MustCompile(`(?i)(?:password|passwd|passphrase|secret|pre[-_]?shared[-_]?key|psk|wpa_passphrase|api[-_]?key|auth[-_]?token|access[-_]?key|community)["']?\s*[=:]\s*("[^"\n]*"|'[^'\n]*'|[^\s"',;]+)`),
	// SNMP community strings: net-snmp's rocommunity/rwcommunity/com2sec and IOS-style lines.
	regexp.MustCompile(`(?im)^\s*(?:ro|rw)community6?\s+(\S+)`),
	regexp.MustCompile(`(?im)^\s*com2sec6?\s+(?:-Cn\s+\S+\s+)?\S+\s+\S+\s+(\S+)`),
	regexp.MustCompile(`(?im)^\s*snmp-server\s+community\s+(\S+)`),
	// strongSwan/libreswan ipsec.secrets: ": PSK "secret"".
	regexp.MustCompile(`(?im)^[^#\n]*:\s*(?:PSK|EAP|XAUTH|NTLM)\s+("[^"\n]*"|\S+)`),
	// WireGuard and similar base64 private keys written as PrivateKey = ....
	regexp.MustCompile(`(?i)\b(?:private[-_]?key|presharedkey)\s*=\s*([A-Za-z0-9+/]{40,}={0,2})`),
}

// placeholderPrefix starts every redaction placeholder.
const placeholderPrefix = "<redacted:"

// Redactor replaces secrets by a keyed placeholder: the same secret gives the same placeholder
// under one key, so a rotated secret still shows as a changed line, and the secret itself never
// reaches storage.
type Redactor struct {
	key []byte
}

// NewRedactor returns a redactor keyed by key (at least 16 bytes).
func NewRedactor(key []byte) (*Redactor, error) {
	if len(key) < 16 {
		return nil, errors.New("redaction key shorter than 16 bytes")
	}
	return &Redactor{key: bytes.Clone(key)}, nil
}

// Placeholder is the keyed placeholder of one secret.
func (r *Redactor) Placeholder(secret []byte) string {
	m := hmac.New(sha256.New, r.key)
	m.Write(secret)
	return placeholderPrefix + hex.EncodeToString(m.Sum(nil)[:8]) + ">"
}

// Redact replaces every secret found by the built-in patterns and by extra.
func (r *Redactor) Redact(b []byte, extra []*regexp.Regexp) []byte {
	for _, re := range secretPatterns {
		b = r.replace(b, re)
	}
	for _, re := range extra {
		b = r.replace(b, re)
	}
	return b
}

func (r *Redactor) replace(b []byte, re *regexp.Regexp) []byte {
	idx := re.FindAllSubmatchIndex(b, -1)
	if idx == nil {
		return b
	}
	var out bytes.Buffer
	last := 0
	for _, m := range idx {
		s, e := m[0], m[1]
		for g := 2; g+1 < len(m); g += 2 {
			if m[g] >= 0 {
				s, e = m[g], m[g+1]
				break
			}
		}
		if s < last || e <= s {
			continue
		}
		secret := b[s:e]
		if bytes.HasPrefix(secret, []byte(placeholderPrefix)) {
			continue
		}
		out.Write(b[last:s])
		out.WriteString(r.Placeholder(secret))
		last = e
	}
	out.Write(b[last:])
	return out.Bytes()
}

// LoadOrCreateKey reads the redaction key at path, creating it (32 random bytes, mode 0600) on
// first use. Creation is atomic: concurrent first uses agree on one key. A key file that others
// can read is refused.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, err := readKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("redaction key: %w", err)
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".redact-key-*")
	if err != nil {
		return nil, fmt.Errorf("redaction key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, err
	}
	if _, err := tmp.Write([]byte(hex.EncodeToString(buf) + "\n")); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("redaction key %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("redaction key %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	// link fails if another process created the key first; then theirs is the key.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("redaction key %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return readKey(path)
}

func readKey(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("redaction key %s is readable by others (mode %04o): run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("redaction key: %w", err)
	}
	key, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("redaction key %s: want at least 32 hex digits", path)
	}
	return key, nil
}
