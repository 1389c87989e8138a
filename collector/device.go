package collector

// Network devices: profiles whose commands run in an interactive CLI session, provenance values
// kept as artifact metadata, and redactors for secrets that a pattern alone cannot place.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hardtrail/hardtrail/collector/transport"
)

// ShellRunner is implemented by transports that can drive a network device's interactive CLI.
//
// RunShell opens one terminal session, waits until the shell's prompt matches the last line of
// output, enters privileged mode when the shell has an enable line and the prompt is
// unprivileged, sends each setup line (pager off), then each command as its words joined by
// spaces, reading its output until the prompt matches again. A result's Stdout is what the command printed,
// without the echoed line, pager prompts or the prompt; a CLI's refusal ("% Invalid input") is
// ExitCode 1 with the message as Stderr. It returns one BatchResult per command, in order, each
// as Run would have returned it; a command that hangs past the command timeout is stopped with
// its session and the rest run in a new one. Its own error means no session could be opened
// or no prompt was seen (or privileged mode was refused), so nothing ran.
type ShellRunner interface {
	RunShell(ctx context.Context, sh transport.Shell, cmds []transport.Command) ([]transport.BatchResult, error)
}

// DefaultPrompt matches the prompts of most network CLIs: "edge-rtr1#", "asa-fw1> ",
// "FGT-HQ # ", "admin@PA-3220> ", "user@srx1> ", "[admin@MikroTik] > ".
const DefaultPrompt = `^\[?(?P<host>[\w.@:/-]+)\]?(?:\([\w.:/-]+\))? ?[>#$%] ?$`

// runShells runs the commands of every interactive profile through the transport's
// ShellRunner, one session per profile, and records each source's result. It returns the
// sources it ran.
func runShells(ctx context.Context, tr transport.Transport, profiles []*Profile, results map[*Source]*transport.BatchResult) (map[*Source]bool, error) {
	ran := map[*Source]bool{}
	for _, p := range profiles {
		if !p.Interactive {
			continue
		}
		sr, ok := tr.(ShellRunner)
		if !ok {
			return nil, fmt.Errorf("profile %s needs an interactive CLI session, which the %s transport cannot open", p.Name, tr.Info().Kind)
		}
		var cmds []transport.Command
		limit := time.Duration(0)
		for i := range p.Sources {
			s := &p.Sources[i]
			cmds = append(cmds, s.command(s.Command))
			limit += s.timeout()
		}
		sctx, cancel := context.WithTimeout(ctx, limit)
		res, err := sr.RunShell(sctx, transport.Shell{Prompt: p.prompt, Setup: p.PagerOff, Enable: p.Enable}, cmds)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", p.Name, err)
		}
		if len(res) != len(cmds) {
			return nil, fmt.Errorf("profile %s: %d results for %d commands", p.Name, len(res), len(cmds))
		}
		for i := range p.Sources {
			s := &p.Sources[i]
			results[s], ran[s] = &res[i], true
		}
	}
	return ran, nil
}

// compileShell checks the interactive settings of a profile and compiles its prompt.
func (p *Profile) compileShell() error {
	if !p.Interactive {
		if p.Prompt != "" || len(p.PagerOff) > 0 || p.Enable != "" {
			return fmt.Errorf("profile %q: prompt, pager_off and enable need interactive = true", p.Name)
		}
		return nil
	}
	if !p.RawCommands {
		return fmt.Errorf("profile %q: interactive needs raw_commands = true (a device CLI, not a shell)", p.Name)
	}
	pat := p.Prompt
	if pat == "" {
		pat = DefaultPrompt
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return fmt.Errorf("profile %q: prompt: %w", p.Name, err)
	}
	if re.MatchString("") {
		return fmt.Errorf("profile %q: prompt %q matches an empty line, so every pause in the output would end a command", p.Name, pat)
	}
	p.prompt = re
	for _, l := range p.PagerOff {
		if l == "" || strings.ContainsFunc(l, isControl) {
			return fmt.Errorf("profile %q: pager_off line %q: empty or holds a control character", p.Name, l)
		}
	}
	if p.Enable != "" && strings.ContainsFunc(p.Enable, isControl) {
		return fmt.Errorf("profile %q: enable line %q holds a control character", p.Name, p.Enable)
	}
	for i := range p.Sources {
		if len(p.Sources[i].Fallback) > 0 {
			return &CompileError{Profile: p.Name, Source: i, Key: "fallback", Err: fmt.Errorf("profile %q: source %q: fallback commands cannot run in an interactive session", p.Name, p.Sources[i].Name)}
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// MetaRule extracts one provenance value: the first capture group (or the whole match) of the
// pattern's first match in the redacted output. Patterns see the whole output: use (?m) for ^
// and $ at line ends, (?s) to span lines.
type MetaRule struct {
	Name    string `toml:"name"`
	Pattern string `toml:"pattern"`

	re *regexp.Regexp
}

// maxMetaValue bounds one metadata value; longer ones are cut on a rune boundary.
const maxMetaValue = 256

var metaNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`) })

// compileDevice checks and compiles a source's redactors and meta rules.
func (s *Source) compileDevice() error {
	s.redactors = s.redactors[:0]
	for _, n := range s.RedactWith {
		r, ok := structRedactors[n]
		if !ok {
			return fieldErr("redact_with", "redact_with: unknown redactor %q (known: %s)", n, strings.Join(RedactorNames(), ", "))
		}
		s.redactors = append(s.redactors, r)
	}
	seen := map[string]bool{}
	for i := range s.Meta {
		m := &s.Meta[i]
		if !metaNameRE().MatchString(m.Name) {
			return fieldErr("meta", "meta %d: name %q: want lowercase letters, digits and _, such as \"changed_by\"", i+1, m.Name)
		}
		if seen[m.Name] {
			return fieldErr("meta", "meta %q is defined twice", m.Name)
		}
		seen[m.Name] = true
		re, err := regexp.Compile(m.Pattern)
		if err != nil {
			return fieldErr("meta", "meta %q: %w", m.Name, err)
		}
		m.re = re
	}
	return nil
}

// redactAll runs the source's structural redactors, then its own patterns, then the built-in
// ones. The source's own come first because they know the format: they place a secret exactly
// where a generic pattern might take too much or too little.
func (s *Source) redactAll(red *Redactor, b []byte) []byte {
	for _, r := range s.redactors {
		b = r(red, b)
	}
	for _, re := range s.redact {
		b = red.replace(b, re.FindAllSubmatchIndex(b, -1))
	}
	return red.forSource(s, "").Redact(b, nil)
}

// finish turns raw output into stored content and metadata: redacted first, so neither ever
// holds a secret; metadata next, from lines normalisation may drop; then normalised.
func (s *Source) finish(red *Redactor, raw []byte) ([]byte, map[string]string) {
	b := s.redactAll(red, raw)
	return s.apply(b), s.extractMeta(b)
}

// extractMeta applies the meta rules to b.
func (s *Source) extractMeta(b []byte) map[string]string {
	var out map[string]string
	for _, m := range s.Meta {
		if m.re == nil {
			continue
		}
		idx := m.re.FindSubmatchIndex(b)
		if idx == nil {
			continue
		}
		st, en := idx[0], idx[1]
		for g := 2; g+1 < len(idx); g += 2 {
			if idx[g] >= 0 {
				st, en = idx[g], idx[g+1]
				break
			}
		}
		v := cleanMeta(b[st:en])
		if v == "" {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[m.Name] = v
	}
	return out
}

// cleanMeta makes a value printable on one line: invalid UTF-8 and control characters become
// spaces, runs of spaces one, and the value is cut at maxMetaValue bytes.
func cleanMeta(b []byte) string {
	var sb strings.Builder
	space := false
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		if r == utf8.RuneError || isControl(r) || r == ' ' {
			space = sb.Len() > 0
			continue
		}
		if space {
			sb.WriteByte(' ')
			space = false
		}
		if sb.Len()+utf8.RuneLen(r) > maxMetaValue {
			break
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// StructRedactor replaces secrets it finds by reading the structure of a device's output, with
// placeholders from the Redactor. It must accept any bytes.
type StructRedactor func(r *Redactor, b []byte) []byte

var structRedactors = map[string]StructRedactor{
	"fortios":    RedactFortiOS,
	"cisco-snmp": RedactCiscoSNMPHosts,
}

// RedactorNames lists the built-in structural redactors.
func RedactorNames() []string {
	out := make([]string, 0, len(structRedactors))
	for n := range structRedactors {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// PathPlaceholder is the placeholder of a secret that is keyed on where it sits (its path in
// the configuration) rather than on its value, for devices that re-encrypt a secret with a
// fresh salt every time they show it. It stays the same while the path does, so a secret that
// was rotated in place cannot be seen as a change: the placeholder says so.
func (r *Redactor) PathPlaceholder(path string) string {
	m := hmac.New(sha256.New, r.key)
	m.Write([]byte("path\x00"))
	m.Write([]byte(path))
	return placeholderPrefix + "by-path:" + hex.EncodeToString(m.Sum(nil)[:8]) + ":rotation-not-visible>"
}

var (
	fortiENC = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(\s*set (\S+) )ENC ("[^"]*"|\S+)(.*)$`) })
	fortiSet = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(\s*set (\S+) )"`) })
)

// RedactFortiOS redacts FortiOS `show` output. FortiOS re-encrypts every reversible secret
// (`set psksecret ENC ...`, `set passwd ENC ...`, and the `set private-key` PEM blocks of local
// certificates) with a fresh salt each time it shows the configuration, so their ciphertext
// changes on every read although the secret did not: those get a PathPlaceholder keyed on the
// secret's path (every enclosing `config` and `edit` line and the `set` key). Password hashes
// (`ENC SH2...`, `ENC AK1...`), which are stable, and SNMP community names get the ordinary
// placeholder of their value, so their rotation shows.
func RedactFortiOS(r *Redactor, b []byte) []byte {
	if !strings.Contains(string(b), "set ") {
		return b
	}
	ls := strings.SplitAfter(string(b), "\n")
	var out strings.Builder
	out.Grow(len(b))
	var stack []string
	path := func(key string) string {
		return strings.Join(append(slices.Clone(stack), "set "+key), "\x00")
	}
	for i := 0; i < len(ls); i++ {
		l := ls[i]
		body := strings.TrimRight(l, "\r\n")
		eol := l[len(body):]
		t := strings.TrimSpace(body)
		switch {
		case strings.HasPrefix(t, "config "):
			stack = append(stack, t)
		case strings.HasPrefix(t, "edit "):
			stack = append(stack, t)
		case t == "next":
			if n := len(stack); n > 0 && strings.HasPrefix(stack[n-1], "edit ") {
				stack = stack[:n-1]
			}
		case t == "end":
			for n := len(stack); n > 0; n-- {
				top := stack[n-1]
				stack = stack[:n-1]
				if strings.HasPrefix(top, "config ") {
					break
				}
			}
		case strings.HasPrefix(t, "set "):
			if l, ok := redactENC(r, body, path); ok {
				out.WriteString(l + eol)
				continue
			}
			if m := fortiSet().FindStringSubmatch(body); m != nil {
				q, ok := quoted(ls, i, len(m[0]))
				switch {
				case !ok:
				case strings.HasPrefix(q.val, "-----BEGIN") && strings.Contains(q.val, "PRIVATE KEY-----"):
					out.WriteString(m[0] + r.PathPlaceholder(path(m[2])) + `"` + q.tail + q.eol)
					i = q.end
					continue
				case m[2] == "name" && q.end == i && inSNMPCommunity(stack) && !strings.HasPrefix(q.val, placeholderPrefix):
					out.WriteString(m[0] + r.Placeholder([]byte(q.val)) + `"` + q.tail + q.eol)
					continue
				default:
					// Any other quoted value is kept, and lines inside it are not read as
					// config, edit, next or end; a line in it that sets an ENC value (where
					// a quote was left open) is still redacted.
					out.WriteString(l)
					for j := i + 1; j <= q.end; j++ {
						b := strings.TrimRight(ls[j], "\r\n")
						if red, ok := redactENC(r, b, path); ok {
							out.WriteString(red + ls[j][len(b):])
							continue
						}
						out.WriteString(ls[j])
					}
					i = q.end
					continue
				}
			}
		}
		out.WriteString(l)
	}
	return []byte(out.String())
}

// redactENC replaces the value of a `set KEY ENC VALUE` line: by a PathPlaceholder, or for a
// password hash (SH2..., AK1...) by the placeholder of its value.
func redactENC(r *Redactor, line string, path func(key string) string) (string, bool) {
	m := fortiENC().FindStringSubmatch(line)
	if m == nil {
		return "", false
	}
	val := strings.Trim(m[3], `"`)
	ph := r.PathPlaceholder(path(m[2]))
	switch {
	case strings.HasPrefix(val, placeholderPrefix):
		ph = m[3]
	case strings.HasPrefix(val, "SH2") || strings.HasPrefix(val, "AK1"):
		ph = r.Placeholder([]byte(val))
	}
	return m[1] + "ENC " + ph + m[4], true
}

// quotedValue is a double-quoted value that starts on one line and may end on a later one.
type quotedValue struct {
	val  string // between the quotes, lines joined by "\n"
	tail string // what follows the closing quote on its line
	end  int    // the line holding the closing quote
	eol  string // that line's terminator
}

// maxQuotedLines bounds a multi-line value (a PEM block is some tens of lines).
const maxQuotedLines = 256

// quoted reads the value whose opening quote ends at byte off of line i. ok is false when the
// value is not closed within maxQuotedLines.
func quoted(ls []string, i, off int) (quotedValue, bool) {
	var parts []string
	rest := ls[i][off:]
	for j := i; j < len(ls) && j < i+maxQuotedLines; j++ {
		if j > i {
			rest = ls[j]
		}
		body := strings.TrimRight(rest, "\r\n")
		if q := closingQuote(body); q >= 0 {
			parts = append(parts, body[:q])
			return quotedValue{val: strings.Join(parts, "\n"), tail: body[q+1:], end: j, eol: rest[len(body):]}, true
		}
		parts = append(parts, body)
	}
	return quotedValue{}, false
}

// closingQuote is the index of the first double quote in s not escaped by a backslash, or -1.
func closingQuote(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

func inSNMPCommunity(stack []string) bool {
	for _, s := range stack {
		if s == "config system snmp community" {
			return true
		}
	}
	return false
}

// hostSetting are the words that start a second `snmp-server host HOST` line on NX-OS, which
// carries no community.
var hostSetting = map[string]bool{"use-vrf": true, "filter-vrf": true, "source-interface": true}

// RedactCiscoSNMPHosts redacts the community of `snmp-server host` lines in the syntax Cisco
// IOS, IOS XE, NX-OS and Arista EOS share: HOST, an optional `vrf NAME`, an optional `traps` or
// `informs`, an optional `version 1|2c|3` (3 with auth, noauth or priv), then the community or,
// for version 3, the user name, which is kept. A v1 line names no version: the community
// follows the host or the notification type directly.
func RedactCiscoSNMPHosts(r *Redactor, b []byte) []byte {
	if !strings.Contains(string(b), "snmp-server host ") {
		return b
	}
	ls := strings.SplitAfter(string(b), "\n")
	for i, l := range ls {
		body := strings.TrimRight(l, "\r\n")
		if !strings.HasPrefix(strings.TrimLeft(body, " "), "snmp-server host ") {
			continue
		}
		f := strings.Fields(body)
		k := 3 // after snmp-server host HOST
		if k < len(f) && hostSetting[f[k]] {
			continue // NX-OS sets the host's VRF or source on a line of its own
		}
		if k+1 < len(f) && f[k] == "vrf" {
			k += 2
		}
		if k < len(f) && (f[k] == "traps" || f[k] == "informs") {
			k++
		}
		v3 := false
		if k+1 < len(f) && f[k] == "version" {
			v3 = f[k+1] == "3"
			k += 2
			if v3 && k < len(f) && (f[k] == "auth" || f[k] == "noauth" || f[k] == "priv") {
				k++
			}
		}
		if v3 || k >= len(f) || strings.HasPrefix(f[k], placeholderPrefix) || isMask([]byte(f[k])) {
			continue
		}
		// Replace the k-th field in place, keeping the line's spacing.
		off := 0
		for j := 0; j <= k; j++ {
			off += strings.Index(body[off:], f[j])
			if j < k {
				off += len(f[j])
			}
		}
		ls[i] = body[:off] + r.Placeholder([]byte(f[k])) + body[off+len(f[k]):] + l[len(body):]
	}
	return []byte(strings.Join(ls, ""))
}

// NormaliseCLI cleans a network device's CLI output: CRLF and stray CR line ends become LF,
// terminal escape sequences and other control characters are removed, trailing whitespace is
// trimmed, and blank lines at the start and the end are dropped.
func NormaliseCLI(b []byte) []byte {
	b = transport.StripEscapes(b)
	ls := lines(b)
	for i, l := range ls {
		ls[i] = strings.TrimRightFunc(strings.Map(func(r rune) rune {
			if r == '\t' || !isControl(r) {
				return r
			}
			return -1
		}, l), func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' })
	}
	for len(ls) > 0 && ls[0] == "" {
		ls = ls[1:]
	}
	for len(ls) > 0 && ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	return join(ls)
}

// pfsenseVolatile are the elements of a pfSense or OPNsense config.xml that change without a
// configuration change: <revision> (the time, user and description of the last save, which
// change on every save), a rule's <updated> (rewritten when the rule is saved unchanged), and
// the packages' rule-update stamps (Snort and Suricata fetch rules by themselves).
var pfsenseVolatile = []string{"revision", "updated", "last_rule_upd_time", "last_rule_upd_status"}

// NormalisePfsenseRevision removes the pfsenseVolatile elements of a pfSense or OPNsense
// config.xml wherever they appear (a source's meta rules keep them as provenance). Lines
// holding nothing but the element go with it.
func NormalisePfsenseRevision(b []byte) []byte {
	s := string(b)
	for _, name := range pfsenseVolatile {
		for {
			next := dropElement(s, name)
			if next == s {
				break
			}
			s = next
		}
	}
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return []byte(s)
}

// dropElement removes every <name>...</name> element of s.
func dropElement(s, name string) string {
	open, end := "<"+name+">", "</"+name+">"
	var out strings.Builder
	for {
		i := strings.Index(s, open)
		if i < 0 {
			break
		}
		j := strings.Index(s[i:], end)
		if j < 0 {
			break
		}
		e := i + j + len(end)
		ls := strings.LastIndexByte(s[:i], '\n') + 1
		le := len(s)
		if k := strings.IndexByte(s[e:], '\n'); k >= 0 {
			le = e + k + 1
		}
		if strings.TrimSpace(s[ls:i]) == "" && strings.TrimSpace(s[e:le]) == "" {
			i, e = ls, le
		}
		out.WriteString(s[:i])
		s = s[e:]
	}
	out.WriteString(s)
	return out.String()
}

func init() {
	// Device normalisers join the built-in ones (normalise.go).
	normalisers["cli"] = NormaliseCLI
	normalisers["pfsense-revision"] = NormalisePfsenseRevision
}
