package collector

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/hardtrail/hardtrail/internal/atomicfile"
)

// secretPattern finds one kind of secret. The first capture group, or the whole match when there
// is none, is the secret. Hints are lowercase literals one of which every match contains: the
// regexp runs only on the lines that hold a hint (or, for a pattern spanning lines, only when the
// content holds one), which keeps redaction at memory speed on large files.
type secretPattern struct {
	re        *regexp.Regexp
	hints     []string
	multiline bool
}

var secretPatterns = []secretPattern{
	// The body of PEM private keys of every kind (RSA, EC, OPENSSH, ENCRYPTED, PKCS#8).
	{re: regexp.MustCompile(`(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\r?\n(.*?)\r?\n?-----END [A-Z0-9 ]*PRIVATE KEY-----`),
		hints: []string{"private key-----"}, multiline: true},
	// crypt(3) password hashes: MD5, bcrypt, SHA-256/512, yescrypt, scrypt, argon2. A hash never
	// holds '<', which ends it inside an XML element (<phash>, <bcrypt-hash>).
	{re: regexp.MustCompile(`\$(?:1|2[abxy]?|5|6|7|y|gy|md5|sha1|argon2(?:id|i|d))\$[^\s:"',;<]{8,}`),
		hints: []string{"$"}},
	// key = value or key: value secrets in INI, YAML, shell and daemon config files.
	{re: regexp.MustCompile(`(?i)(?:password|passwd|passphrase|secret|pre[-_]?shared[-_]?key|psk|wpa_passphrase|api[-_]?key|auth[-_]?token|access[-_]?key|community)["']?\s*[=:]\s*("[^"\n]*"|'[^'\n]*'|[^\s"',;]+)`),
		hints: []string{"password", "passwd", "passphrase", "secret", "shared", "psk", "api_key", "api-key", "apikey",
			"auth_token", "auth-token", "authtoken", "access_key", "access-key", "accesskey", "community"}},
	// SNMP community strings: net-snmp's rocommunity/rwcommunity/com2sec and IOS-style lines.
	{re: regexp.MustCompile(`(?im)^\s*(?:ro|rw)community6?\s+(\S+)`), hints: []string{"community"}},
	{re: regexp.MustCompile(`(?im)^\s*com2sec6?\s+(?:-Cn\s+\S+\s+)?\S+\s+\S+\s+(\S+)`), hints: []string{"com2sec"}},
	{re: regexp.MustCompile(`(?im)^\s*snmp-server\s+community\s+(\S+)`), hints: []string{"community"}},
	// strongSwan/libreswan ipsec.secrets: ": PSK "secret"".
	{re: regexp.MustCompile(`(?im)^[^#\n]*:\s*(?:PSK|EAP|XAUTH|NTLM)\s+("[^"\n]*"|\S+)`), hints: []string{"psk", "eap", "xauth", "ntlm"}},
	// WireGuard and similar base64 private keys written as PrivateKey = ....
	{re: regexp.MustCompile(`(?i)\b(?:private[-_]?key|presharedkey)\s*=\s*([A-Za-z0-9+/]{40,}={0,2})`),
		hints: []string{"privatekey", "private_key", "private-key", "presharedkey"}},
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
	var lower []byte
	for _, p := range secretPatterns {
		if lower == nil {
			lower = asciiLower(b)
		}
		if idx := p.find(b, lower); idx != nil {
			b = r.replace(b, idx)
			lower = nil
		}
	}
	for _, re := range extra {
		b = r.replace(b, re.FindAllSubmatchIndex(b, -1))
	}
	return b
}

// find returns the submatch indexes of every match in b; lower is b in ASCII lowercase.
func (p *secretPattern) find(b, lower []byte) [][]int {
	if p.multiline {
		for _, h := range p.hints {
			if bytes.Contains(lower, []byte(h)) {
				return p.re.FindAllSubmatchIndex(b, -1)
			}
		}
		return nil
	}
	// The lines holding a hint, in order, without repeats.
	var starts []int
	seen := map[int]bool{}
	for _, h := range p.hints {
		for off := 0; ; {
			i := bytes.Index(lower[off:], []byte(h))
			if i < 0 {
				break
			}
			i += off
			ls := bytes.LastIndexByte(b[:i], '\n') + 1
			if !seen[ls] {
				seen[ls] = true
				starts = append(starts, ls)
			}
			le := bytes.IndexByte(b[i:], '\n')
			if le < 0 {
				break
			}
			off = i + le
		}
	}
	if len(starts) == 0 {
		return nil
	}
	sort.Ints(starts)
	var out [][]int
	for _, ls := range starts {
		le := len(b)
		if j := bytes.IndexByte(b[ls:], '\n'); j >= 0 {
			le = ls + j
		}
		for _, m := range p.re.FindAllSubmatchIndex(b[ls:le], -1) {
			for k := range m {
				if m[k] >= 0 {
					m[k] += ls
				}
			}
			out = append(out, m)
		}
	}
	return out
}

func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// replace puts placeholders over the secrets at idx, as FindAllSubmatchIndex returns them.
func (r *Redactor) replace(b []byte, idx [][]int) []byte {
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
		if bytes.HasPrefix(bytes.TrimLeft(secret, `"'`), []byte(placeholderPrefix)) || isMask(secret) {
			continue
		}
		out.Write(b[last:s])
		out.WriteString(r.Placeholder(secret))
		last = e
	}
	out.Write(b[last:])
	return out.Bytes()
}

// isMask reports whether a value is a device's mask ("*****", as Cisco ASA shows keys), which
// hides the secret already and is kept as it is.
func isMask(b []byte) bool {
	return len(b) >= 3 && len(bytes.Trim(b, "*")) == 0
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
	// Create fails if another process created the key first; then theirs is the key.
	err = atomicfile.Create(path, 0o600, func(w io.Writer) error {
		_, err := io.WriteString(w, hex.EncodeToString(buf)+"\n")
		return err
	})
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("redaction key %s: %w", path, err)
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
