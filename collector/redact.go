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
	"strings"
	"sync"

	"github.com/hardtrail/hardtrail/internal/atomicfile"
)

// secretPattern finds one kind of secret. The first capture group, or the whole match when there
// is none, is the secret. Hints are literals one of which every match contains (lowercase, and
// at the match's start, for token patterns; as written for multi-line ones): the regexp runs
// only on the lines that hold a hint (or, for a pattern spanning lines, only when the content
// holds one), which keeps redaction at memory speed on large files.
type secretPattern struct {
	re    *regexp.Regexp
	hints []string
}

// blockPatterns find secrets that span lines: the body of private key blocks of every kind
// (PEM: RSA, EC, DSA, OPENSSH, ENCRYPTED, PKCS#8; PGP; OpenVPN static keys) and OpenVPN's
// inline credentials.
var blockPatterns = sync.OnceValue(func() []secretPattern {
	return []secretPattern{
		{re: regexp.MustCompile(`(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----\r?\n(.*?)\r?\n?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----`),
			hints: []string{"PRIVATE KEY"}},
		{re: regexp.MustCompile(`(?s)-----BEGIN OpenVPN Static key V\d-----\r?\n(.*?)\r?\n?-----END OpenVPN Static key V\d-----`),
			hints: []string{"OpenVPN Static key"}},
		{re: regexp.MustCompile(`(?s)<auth-user-pass>\r?\n(.*?)\r?\n?</auth-user-pass>`),
			hints: []string{"<auth-user-pass>"}},
	}
})

// secretPatterns are every pattern of the built-in rules, for the benchmark's floor.
var secretPatterns = sync.OnceValue(func() []secretPattern {
	return append(append([]secretPattern(nil), blockPatterns()...), tokenPatterns()...)
})

// placeholderPrefix starts every redaction placeholder.
const placeholderPrefix = "<redacted:"

// Redactor replaces secrets by a keyed placeholder: the same secret gives the same placeholder
// under one key, so a rotated secret still shows as a changed line, and the secret itself never
// reaches storage.
type Redactor struct {
	key []byte
	// format is the file format of the text (see RedactFormats): "" reads keys only, "text"
	// not even those.
	format string
	// entropy adds high-entropy strings (opt-in per source).
	entropy bool
	// separated reads keys only in key=value and key: value forms, not as directives
	// (network devices, whose profiles know their syntax).
	separated bool
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

// Redact replaces every secret found by the built-in rules and by extra: key blocks first,
// then the structural rules, token patterns and the format's columns in one pass, then extra.
func (r *Redactor) Redact(b []byte, extra []*regexp.Regexp) []byte {
	for _, p := range blockPatterns() {
		if idx := p.findBlock(b); idx != nil {
			b = r.replace(b, idx)
		}
	}
	var opt Redactor // a nil Redactor has the default options, and no key to place secrets with
	if r != nil {
		opt = *r
	}
	// A file of columns (chap-secrets, htpasswd, pgpass, shadow) has no settings to read.
	columns := opt.format != "" && opt.format != "text" && opt.format != "auto" && opt.format != "redis-acl"
	spans := r.scanSecrets(b, opt.format != "text" && !columns)
	if opt.format != "" && opt.format != "text" && opt.format != "auto" {
		spans = append(spans, formatSpans(opt.format, b)...)
	}
	if opt.entropy {
		spans = append(spans, entropySpans(b)...)
	}
	b = r.replaceSpans(b, spans)
	for _, re := range extra {
		b = r.replace(b, re.FindAllSubmatchIndex(b, -1))
	}
	return b
}

// RedactString is Redact for a string.
func (r *Redactor) RedactString(s string) string {
	if s == "" {
		return s
	}
	return string(r.Redact([]byte(s), nil))
}

// forSource is the redactor for one source's output: the file format (by the source's
// redact_format, else by the file's name) and the source's entropy switch.
func (r *Redactor) forSource(s *Source, file string) *Redactor {
	if r == nil {
		return nil
	}
	f := s.RedactFormat
	if f == "" || f == "auto" {
		f = formatByName(file)
	}
	if f == "" {
		f = r.format
	}
	if f == r.format && s.RedactEntropy == r.entropy && s.device == r.separated {
		return r
	}
	c := *r
	c.format, c.entropy, c.separated = f, s.RedactEntropy, s.device
	return &c
}

// findBlock returns the submatch indexes of a multi-line pattern, when the text holds a hint.
func (p *secretPattern) findBlock(b []byte) [][]int {
	for _, h := range p.hints {
		if bytes.Contains(b, []byte(h)) {
			return p.re.FindAllSubmatchIndex(b, -1)
		}
	}
	return nil
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

// secretFlags are short options whose value is a secret, by program: mysql -pSECRET,
// sshpass -p SECRET, the net-snmp tools' -c COMMUNITY and -A/-X passphrases.
var secretFlags = map[string]string{
	"mysql": "p", "mysqldump": "p", "mysqladmin": "p", "mariadb": "p", "mariadb-dump": "p",
	"sshpass": "p", "snmpwalk": "cAX", "snmpget": "cAX", "snmpbulkwalk": "cAX", "snmpgetnext": "cAX",
	"snmpset": "cAX", "snmptrap": "cAX", "snmptable": "cAX", "snmpbulkget": "cAX",
}

// RedactArgv redacts a command line: the value of any option named for a secret
// (--password=X, --token X, -p X for the programs in secretFlags), then every word as text.
func (r *Redactor) RedactArgv(argv []string) []string {
	if len(argv) == 0 {
		return argv
	}
	out := make([]string, len(argv))
	copy(out, argv)
	short := ""
	if len(argv) > 0 {
		short = secretFlags[filepath.Base(argv[0])]
	}
	for i := 1; i < len(out); i++ {
		a := out[i]
		if len(a) < 2 || a[0] != '-' || startsWithPlaceholder([]byte(a)) {
			continue
		}
		if a[1] != '-' && short != "" && strings.ContainsRune(short, rune(a[1])) {
			if len(a) > 2 && !startsWithPlaceholder([]byte(a[2:])) {
				out[i] = a[:2] + r.Placeholder([]byte(a[2:]))
			} else if len(a) == 2 && i+1 < len(out) {
				if !startsWithPlaceholder([]byte(out[i+1])) {
					out[i+1] = r.Placeholder([]byte(out[i+1]))
				}
				i++
			}
			continue
		}
		name := strings.TrimLeft(a, "-")
		if k, v, ok := strings.Cut(name, "="); ok {
			if IsSecretKey(k) && !isNonSecretValue([]byte(v)) {
				out[i] = a[:len(a)-len(v)] + r.Placeholder([]byte(v))
			}
			continue
		}
		if IsSecretKey(name) && i+1 < len(out) && !strings.HasPrefix(out[i+1], "-") && !isNonSecretValue([]byte(out[i+1])) {
			out[i+1] = r.Placeholder([]byte(out[i+1]))
			i++
		}
	}
	for i := range out {
		out[i] = r.RedactString(out[i])
	}
	return out
}

// redactFields redacts what a capture stores beside an artifact's content: its command line,
// the reason it is unavailable, its metadata. Stderr and content are redacted as they are read.
func (r *Redactor) redactFields(a *Artifact) {
	if r == nil {
		return
	}
	a.Command = r.RedactArgv(a.Command)
	a.Unavailable = r.RedactString(a.Unavailable)
	a.Stderr = r.RedactString(a.Stderr)
	for k, v := range a.Meta {
		a.Meta[k] = r.RedactString(v)
	}
}
