package collector

import (
	"bytes"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// The structural scanner: one pass over the text finds the places where a secret may sit (a
// secret word of a key name, a URL, the start of a well-known token), and each is then read by
// the format it is in: the key and its value in key = value, key: value, `key value`
// directives, JSON, XML elements and attributes, YAML block scalars, header lines; the userinfo
// of a URL; a token's own shape. Only those places are read, so redaction runs near memory
// speed on text without secrets.

// span is the place of one secret in the text.
type span struct{ s, e int }

type hintKind uint8

const (
	hintKey     hintKind = iota // a secret word or a special directive: read the key around it
	hintURL                     // "://": read the userinfo
	hintPattern                 // a token's prefix: run the token's pattern on the line
)

type hint struct {
	word string // lowercase
	kind hintKind
	pat  int // index in tokenPatterns, for hintPattern
}

// tokenPatterns find well-known token formats and other secrets a key does not name. The first
// capture group (or the whole match) is the secret; hints are lowercase literals of which one
// starts within every match.
var tokenPatterns = sync.OnceValue(func() []secretPattern {
	return []secretPattern{
		// crypt(3) password hashes: MD5, Apache apr1, bcrypt, SHA-256/512, yescrypt, scrypt, argon2,
		// PBKDF2. A hash never holds '<', which ends it inside an XML element.
		{re: regexp.MustCompile(`\$(?:1|2[abxy]?|5|6|7|y|gy|md5|sha1|apr1|argon2(?:id|i|d)|pbkdf2(?:-sha\d+)?|scrypt)\$[^\s:"',;<]{8,}`),
			hints: []string{"$1$", "$2$", "$2a$", "$2b$", "$2x$", "$2y$", "$5$", "$6$", "$7$", "$y$", "$gy$", "$md5", "$sha1$", "$apr1$", "$argon2", "$pbkdf2", "$scrypt$"}},
		// LDAP-style hashes: {SSHA}..., {SHA}..., {CRYPT}...
		{re: regexp.MustCompile(`(?i)\{(?:s?sha(?:256|384|512)?|smd5|md5|crypt|pbkdf2[-\w]*|argon2)\}([A-Za-z0-9+/=.$]{8,})`),
			hints: []string{"{ssha", "{sha", "{smd5", "{md5", "{crypt", "{pbkdf2", "{argon2"}},
		// strongSwan/libreswan ipsec.secrets: ": PSK "secret"", ": EAP "secret"".
		{re: regexp.MustCompile(`(?i)(?:^|\s):\s*(?:PSK|EAP|XAUTH|NTLM)\s+("[^"\n]*"|\S+)`), hints: []string{": psk", ": eap", ": xauth", ": ntlm"}},
		// IOS-style SNMP communities, in device output too.
		{re: regexp.MustCompile(`(?i)snmp-server\s+community\s+(\S+)`), hints: []string{"snmp-server"}},
		// SQL: IDENTIFIED BY 'secret', IDENTIFIED WITH plugin BY 'secret'.
		{re: regexp.MustCompile(`(?i)identified\s+(?:with\s+\S+\s+)?by\s+(?:password\s+)?(?:'([^'\n]*)'|"([^"\n]*)")`), hints: []string{"identified"}},
		// Cloud access key IDs.
		{re: regexp.MustCompile(`\b((?:AKIA|ASIA)[A-Z0-9]{16})\b`), hints: []string{"akia", "asia"}},
		{re: regexp.MustCompile(`\b(AIza[0-9A-Za-z_-]{35})`), hints: []string{"aiza"}},
		// GitHub, GitLab, Slack, Stripe, npm tokens.
		{re: regexp.MustCompile(`\b(gh[pousr]_[A-Za-z0-9]{30,255})`), hints: []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}},
		{re: regexp.MustCompile(`\b(github_pat_[A-Za-z0-9_]{22,255})`), hints: []string{"github_pat_"}},
		{re: regexp.MustCompile(`\b(gl(?:pat|dt|rt|cbt|ptt|ft|imt|agent|oas)-[A-Za-z0-9_-]{16,})`), hints: []string{"glpat-", "gldt-", "glrt-", "glcbt-", "glptt-", "glft-", "glimt-", "glagent-", "gloas-"}},
		{re: regexp.MustCompile(`\b(xox[abposre]-[A-Za-z0-9-]{10,})`), hints: []string{"xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-", "xoxe-"}},
		{re: regexp.MustCompile(`\b(xapp-\d-[A-Za-z0-9-]{10,})`), hints: []string{"xapp-"}},
		{re: regexp.MustCompile(`\b((?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9]{16,})`), hints: []string{"sk_live_", "rk_live_", "sk_test_", "rk_test_", "whsec_"}},
		{re: regexp.MustCompile(`\b(npm_[A-Za-z0-9]{36})`), hints: []string{"npm_"}},
		// JSON Web Tokens: header.payload.signature, the first two base64url JSON objects.
		{re: regexp.MustCompile(`\b(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})`), hints: []string{"eyj"}},
		// Webhook URLs: the path is the credential.
		{re: regexp.MustCompile(`(?i)hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9/_-]{16,})`), hints: []string{"hooks.slack.com/"}},
		{re: regexp.MustCompile(`(?i)(?:discord|discordapp)\.com/api/webhooks/\d+/([A-Za-z0-9_-]{20,})`), hints: []string{"discord.com/api/webhooks/", "discordapp.com/api/webhooks/"}},
		{re: regexp.MustCompile(`(?i)\.webhook\.office\.com/webhookb2/([A-Za-z0-9@/_-]{20,})`), hints: []string{".webhook.office.com/"}},
	}
})

// keyHints are the lowercase words whose occurrence starts reading a key: every secret word
// holds one, and so do the SNMP directives whose names hold none.
var keyHints = []string{"pass", "pw", "secret", "token", "key", "psk", "communit", "auth", "credential",
	"private", "com2sec", "sink", "createuser", "usmuser"}

// hintTable indexes every hint by its first two bytes (lowercase), built on first use.
var hintTable = sync.OnceValue(buildHintTable)

type hintIndex struct {
	pair  [65536 / 64]uint64 // a bit for each first two bytes of a hint
	slot  [65536]uint8       // the hints' index in lists, plus one, by their first two bytes
	lists [][]hint
}

func buildHintTable() *hintIndex {
	h := &hintIndex{}
	add := func(x hint) {
		k := uint16(x.word[0])<<8 | uint16(x.word[1])
		h.pair[k/64] |= 1 << (k % 64)
		if h.slot[k] == 0 {
			h.lists = append(h.lists, nil)
			h.slot[k] = uint8(len(h.lists))
		}
		h.lists[h.slot[k]-1] = append(h.lists[h.slot[k]-1], x)
	}
	for _, w := range keyHints {
		add(hint{word: w, kind: hintKey})
	}
	add(hint{word: "://", kind: hintURL})
	for i, p := range tokenPatterns() {
		for _, w := range p.hints {
			add(hint{word: w, kind: hintPattern, pat: i})
		}
	}
	if len(h.lists) > 255 {
		panic("too many hint prefixes")
	}
	return h
}

var lowerTable = func() (t [256]byte) {
	for i := range t {
		c := byte(i)
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		t[i] = c
	}
	return t
}()

// hasPrefixFold reports whether b starts with the lowercase word w, ignoring ASCII case.
func hasPrefixFold(b []byte, w string) bool {
	if len(b) < len(w) {
		return false
	}
	for i := 0; i < len(w); i++ {
		if lowerTable[b[i]] != w[i] {
			return false
		}
	}
	return true
}

// scanSecrets returns the places of the secrets the structural rules and token patterns find
// in b, in any order, possibly overlapping.
func (r *Redactor) scanSecrets(b []byte, keys bool) []span {
	var (
		out      []span
		keyEnd   = -1 // the end of the last key read: a key is read once
		patLines = map[int]int{}
	)
	// The line around i, found once per line so that a long line costs no more than many.
	ls, le := 0, -1
	line := func(i int) (int, int) {
		if i > le {
			base := le + 1
			if j := bytes.LastIndexByte(b[base:i], '\n'); j >= 0 {
				ls = base + j + 1
			} else {
				ls = base
			}
			le = lineEnd(b, i)
		}
		return ls, le
	}
	t := hintTable()
	for i := 0; i+1 < len(b); i++ {
		k := uint16(lowerTable[b[i]])<<8 | uint16(lowerTable[b[i+1]])
		if t.pair[k/64]&(1<<(k%64)) == 0 {
			continue
		}
		for _, h := range t.lists[t.slot[k]-1] {
			if !hasPrefixFold(b[i:], h.word) {
				continue
			}
			switch h.kind {
			case hintKey:
				if !keys || i < keyEnd {
					continue
				}
				ks, ke := expandKey(b, i)
				keyEnd = ke
				ls, le := line(i)
				out = r.readKey(b, ks, ke, ls, le, out)
			case hintURL:
				out = readURL(b, i, out)
			case hintPattern:
				ls, le := line(i)
				if done, ok := patLines[h.pat]; ok && done == ls {
					continue
				}
				patLines[h.pat] = ls
				for _, m := range tokenPatterns()[h.pat].re.FindAllSubmatchIndex(b[ls:le], -1) {
					s, e := m[0], m[1]
					for g := 2; g+1 < len(m); g += 2 {
						if m[g] >= 0 {
							s, e = m[g], m[g+1]
							break
						}
					}
					out = append(out, span{ls + s, ls + e})
				}
			}
		}
	}
	return out
}

func lineEnd(b []byte, from int) int {
	if j := bytes.IndexByte(b[from:], '\n'); j >= 0 {
		return from + j
	}
	return len(b)
}

func isKeyChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.'
}

// expandKey widens the word at i to the whole key name around it.
func expandKey(b []byte, i int) (int, int) {
	s, e := i, i
	for s > 0 && isKeyChar(b[s-1]) {
		s--
	}
	for e < len(b) && isKeyChar(b[e]) {
		e++
	}
	// A key does not end a sentence or start a flag: "password." and "--password".
	for e > s && (b[e-1] == '.' || b[e-1] == '-') {
		e--
	}
	for s < e && b[s] == '-' {
		s++
	}
	return s, e
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// keyContext says where a key sits on its line.
type keyContext struct {
	atStart bool // the key starts the line: a setting or directive, perhaps commented out
	quote   byte // the key is quoted with this character
	element bool // the key names an XML element: <password>
	indent  int  // the line's indentation
}

func keyContextAt(b []byte, ls, ks int) keyContext {
	var c keyContext
	p := ls
	for p < ks && isSpace(b[p]) {
		p++
	}
	c.indent = p - ls
	if ks > ls {
		switch q := b[ks-1]; q {
		case '"', '\'':
			c.quote = q
		case '<':
			c.element = true
		}
	}
	pre := b[p:ks]
	if c.quote != 0 {
		pre = pre[:len(pre)-1]
	}
	switch {
	case len(pre) == 0:
		c.atStart = true
	case string(pre) == "#" || string(pre) == ";" || string(pre) == "- " || string(pre) == "export ":
		c.atStart = true
	}
	return c
}

// strongKeys are keys whose next word is the secret wherever they stand on a line, as in
// .netrc's "machine h login u password p" or ipsec.secrets' ": PSK secret".
var strongKeys = map[string]bool{"password": true, "passwd": true, "passphrase": true, "secret": true, "community": true, "psk": true}

// bareDirectives are secret words that, alone as a directive, are not a setting of a secret:
// pf's "pass in quick ...", PAM's and OpenVPN's "auth ...".
var bareDirectives = map[string]bool{"pass": true, "auth": true}

// strongInline reports whether a key, normalised, is unmistakably a secret's name wherever it
// stands on a line.
func strongInline(nk string) bool {
	for _, w := range []string{"password", "passwd", "passphrase", "secret", "psk", "apikey", "authtoken", "accesskey", "community", "privatekey", "presharedkey"} {
		if strings.Contains(nk, w) {
			return true
		}
	}
	return false
}

// readKey reads the key b[ks:ke] and, when it names a secret, appends the place of its value.
func (r *Redactor) readKey(b []byte, ks, ke, ls, le int, out []span) []span {
	if ke <= ks {
		return out
	}
	key := string(b[ks:ke])
	if le > ls && b[le-1] == '\r' {
		le--
	}
	ctx := keyContextAt(b, ls, ks)
	nk := normKey(key)
	if ctx.atStart && (r == nil || !r.separated) {
		if d, ok := snmpDirectives[nk]; ok {
			return append(out, d(b, ke, le)...)
		}
	}
	if nk == "authorization" || nk == "proxyauthorization" {
		return readAuthorization(b, ke, le, ctx, out)
	}
	if (nk == "key" || nk == "name") && namesValue(b, ke, le) {
		return out // key="Environment" value="...": the value is read if the name is a secret
	}
	if !IsSecretKey(key) {
		return out
	}
	if namedBefore(b, ls, ks, ctx) {
		return readNamedValue(b, ke, le, ctx, out)
	}
	p := ke
	if ctx.quote != 0 {
		if p < le && b[p] == ctx.quote {
			p++
			if p < le && b[p] == ']' {
				p++ // os.environ["PASSWORD"] = ...
			}
			// define('DB_PASSWORD', 'secret'): a call's next argument.
			q := p
			for q < le && isSpace(b[q]) {
				q++
			}
			if q < le && b[q] == ',' {
				q++
				for q < le && isSpace(b[q]) {
					q++
				}
				if q < le && (b[q] == '"' || b[q] == '\'') {
					vs, ve := quotedSpan(b, q, le)
					return appendValue(b, vs, ve, out)
				}
				return out
			}
		} else {
			ctx.quote = 0 // the quote opens a string that holds the key: 'X-Api-Key: ...'
		}
	}
	if ctx.element {
		if p < le && b[p] == '>' {
			vs := p + 1
			ve := vs
			for ve < le && b[ve] != '<' {
				ve++
			}
			// An element closed on its line: <password>...</password>, not X11's <Key>Escape.
			if ve+2+len(key) < le+1 && b[ve+1] == '/' && bytes.EqualFold(b[ve+2:min(le, ve+2+len(key))], []byte(key)) {
				return appendValue(b, vs, ve, out)
			}
		}
		return out
	}
	sp := p
	for p < le && isSpace(b[p]) {
		p++
	}
	spaced := p > sp
	sep := byte(0)
	if p < le {
		switch c := b[p]; {
		case c == '=' && (p+1 >= le || b[p+1] != '='):
			sep = '='
			p++
			if p < le && b[p] == '>' {
				p++
			}
		case c == ':' && (p+1 >= le || (b[p+1] != ':' && b[p+1] != '/')):
			sep = ':'
			p++
			if p < le && b[p] == '=' {
				p++
			}
		}
	}
	separated := r != nil && r.separated
	if separated && !ctx.atStart && ctx.quote == 0 && !ctx.element && !strongInline(nk) {
		// A device's own lines ("Running Permanent Activation Key: ..."): its profile knows
		// which of them hold secrets; here only the unmistakable names count.
		return out
	}
	if sep == 0 {
		if !spaced || p >= le || separated || bareDirectives[nk] || ctx.quote != 0 {
			return out // a quoted key needs a separator: "the 'password' field" is prose
		}
		if t := bytes.TrimLeft(b[ls:ks], " \t"); !ctx.atStart && len(t) > 0 && (t[0] == '#' || t[0] == ';' || bytes.HasPrefix(t, []byte("//"))) {
			return out // prose in a comment: "# client server secret IP addresses"
		}
		lk := strings.ToLower(key)
		compound := strings.ContainsAny(key, "_-")
		if !ctx.atStart && !strongKeys[lk] && !compound {
			return out
		}
		vs, ve := word(b, p, le)
		// A type digit before the secret, as in "password 7 0822455D0A16".
		if ve == vs+1 && '0' <= b[vs] && b[vs] <= '9' {
			q := ve
			for q < le && isSpace(b[q]) {
				q++
			}
			if q < le {
				vs, ve = word(b, q, le)
			}
		}
		return appendValue(b, vs, ve, out)
	}
	for p < le && isSpace(b[p]) {
		p++
	}
	if p >= le {
		return out
	}
	if p+2 < len(b) && (b[p] == '"' || b[p] == '\'') && b[p+1] == b[p] && b[p+2] == b[p] {
		// A TOML or Python multi-line string: up to the closing triple quote.
		q := string(b[p : p+3])
		if j := bytes.Index(b[p+3:], []byte(q)); j >= 0 {
			return appendValue(b, p+3, p+3+j, out)
		}
		return appendValue(b, p+3, le, out)
	}
	if b[p] == '"' || b[p] == '\'' {
		vs, ve := quotedSpan(b, p, le)
		return appendValue(b, vs, ve, out)
	}
	if ctx.atStart {
		ve := le
		for ve > p && isSpace(b[ve-1]) {
			ve--
		}
		if ve > p && (b[ve-1] == ';' || b[ve-1] == ',') {
			ve--
		}
		v := b[p:ve]
		if sep == ':' && ctx.atStart && isBlockIndicator(v) {
			return blockScalar(b, le, ctx.indent, out)
		}
		if len(v) == 0 || v[0] == '{' || v[0] == '[' {
			return out
		}
		return appendValue(b, p, ve, out)
	}
	ve := p
	for ve < le && !isValueEnd(b[ve]) {
		ve++
	}
	if ve > p && (b[p] == '{' || b[p] == '[') {
		return out
	}
	return appendValue(b, p, ve, out)
}

func isValueEnd(c byte) bool {
	switch c {
	case ' ', '\t', ',', ';', '&', ')', '}', ']', '>', '<', '"', '\'':
		return true
	}
	return false
}

// word is the first argument at p: a quoted string's content, or up to whitespace, without a
// directive's closing ';'.
func word(b []byte, p, le int) (int, int) {
	if p < le && (b[p] == '"' || b[p] == '\'') {
		return quotedSpan(b, p, le)
	}
	if p < le && b[p] == '[' {
		// PAM's [success=1 default=ignore] is one word.
		if j := bytes.IndexByte(b[p:le], ']'); j > 0 {
			return p, p + j + 1
		}
	}
	e := p
	for e < le && !isSpace(b[e]) {
		e++
	}
	if e > p && b[e-1] == ';' {
		e--
	}
	return p, e
}

// quotedValue is the content of the string quoted at p, up to its closing quote or the line's end.
func quotedSpan(b []byte, p, le int) (int, int) {
	q := b[p]
	e := p + 1
	for e < le && b[e] != q {
		if b[e] == '\\' && q == '"' && e+1 < le {
			e++
		}
		e++
	}
	return p + 1, e
}

func appendValue(b []byte, s, e int, out []span) []span {
	if e <= s || isNonSecretValue(b[s:e]) {
		return out
	}
	// A value that holds or runs into a placeholder was read before: what is left of it was
	// judged then, with the secret in place.
	if bytes.Contains(b[s:e], []byte(placeholderPrefix)) || bytes.HasPrefix(b[e:], []byte(placeholderPrefix)) {
		return out
	}
	return append(out, span{s, e})
}

func isBlockIndicator(v []byte) bool {
	if len(v) == 0 || (v[0] != '|' && v[0] != '>') {
		return false
	}
	for _, c := range v[1:] {
		if c != '-' && c != '+' && !('0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// blockScalar is the place of a YAML block scalar's lines after the line ending at le: every
// following line indented deeper than the key's.
func blockScalar(b []byte, le, indent int, out []span) []span {
	s := le + 1
	if s >= len(b) {
		return out
	}
	e := -1
	for p := s; p < len(b); {
		q := lineEnd(b, p)
		n := 0
		for p+n < q && isSpace(b[p+n]) {
			n++
		}
		if p+n < q && n <= indent {
			break
		}
		if p+n < q {
			e = q
		}
		if q >= len(b) {
			break
		}
		p = q + 1
	}
	if e < 0 {
		return out
	}
	for s < e && (isSpace(b[s]) || b[s] == '\n') {
		s++
	}
	if bytes.HasPrefix(b[s:e], []byte("-----BEGIN")) {
		return out // a PEM block, redacted as one
	}
	return append(out, span{s, e})
}

// namedBefore reports whether the key stands as the value of a name or key field: .NET's
// <add key="ApiKey" value="..."/>, a Kubernetes env entry "- name: DB_PASSWORD".
func namedBefore(b []byte, ls, ks int, ctx keyContext) bool {
	e := ks
	if ctx.quote != 0 {
		e--
	}
	pre := bytes.TrimRight(b[ls:e], " \t")
	for _, suf := range []string{"name=", "key=", "name:", `"name":`, `"key":`} {
		if len(pre) >= len(suf) && hasPrefixFold(pre[len(pre)-len(suf):], suf) {
			return true
		}
	}
	return false
}

// namesValue reports whether a name or key field ending at ke is followed by a value field
// on its line or the next.
func namesValue(b []byte, ke, le int) bool {
	w := b[ke:min(le, ke+namedWindow)]
	if valueField(w) >= 0 {
		return true
	}
	// <entry key="db.user">content</entry>: the element's content is the value.
	if i := bytes.IndexByte(w, '>'); i > 1 && (w[i-1] == '"' || w[i-1] == '\'') && (w[0] == '=' || w[0] == ':') {
		return true
	}
	if le+1 < len(b) {
		nl := min(lineEnd(b, le+1), le+1+namedWindow)
		return valueField(bytes.TrimLeft(b[le+1:nl], " \t")) == 0
	}
	return false
}

// valueField returns where w holds a value field ("value=", "value:", `"value":`), or -1.
func valueField(w []byte) int {
	for off := 0; ; {
		i := indexFold(w[off:], "value")
		if i < 0 {
			return -1
		}
		i += off
		p := i + len("value")
		if p < len(w) && (w[p] == '"' || w[p] == '\'') {
			p++
		}
		for p < len(w) && isSpace(w[p]) {
			p++
		}
		if p < len(w) && (w[p] == '=' || w[p] == ':') && (i == 0 || !isKeyChar(w[i-1])) {
			return i
		}
		off = i + 1
	}
}

// readNamedValue reads the value field after a secret's name given as another field's value:
// on the same line after it, or on the next line.
func readNamedValue(b []byte, ke, le int, ctx keyContext, out []span) []span {
	if ctx.quote != 0 && ke < le && b[ke] == ctx.quote {
		ke++
	}
	// <entry key="db.password">secret</entry>: the element's content.
	if ke < le && b[ke] == '>' {
		ve := ke + 1
		for ve < le && b[ve] != '<' {
			ve++
		}
		return appendValue(b, ke+1, ve, out)
	}
	// look finds the value field within a window after from, and reads its value to the
	// line's end at most.
	look := func(from, to int) ([]span, bool) {
		i := valueField(b[from:min(to, from+namedWindow)])
		if i < 0 {
			return out, false
		}
		p := from + i + len("value")
		if p < to && (b[p] == '"' || b[p] == '\'') {
			p++
		}
		for p < to && isSpace(b[p]) {
			p++
		}
		if p >= to || (b[p] != '=' && b[p] != ':') {
			return out, false
		}
		p++
		for p < to && isSpace(b[p]) {
			p++
		}
		if p >= to {
			return out, false
		}
		var vs, ve int
		if b[p] == '"' || b[p] == '\'' {
			vs, ve = quotedSpan(b, p, to)
		} else {
			vs, ve = p, p
			for ve < to && !isValueEnd(b[ve]) {
				ve++
			}
		}
		return appendValue(b, vs, ve, out), true
	}
	if o, ok := look(ke, le); ok {
		return o
	}
	if le+1 < len(b) {
		o, _ := look(le+1, lineEnd(b, le+1))
		return o
	}
	return out
}

// namedWindow bounds how far after a secret's name its value field is looked for.
const namedWindow = 512

func indexFold(b []byte, w string) int {
	for i := 0; i+len(w) <= len(b); i++ {
		if hasPrefixFold(b[i:], w) {
			return i
		}
	}
	return -1
}

// authSchemes are the HTTP authentication schemes whose credentials follow them.
var authSchemes = map[string]bool{"basic": true, "bearer": true, "digest": true, "token": true, "negotiate": true,
	"ntlm": true, "apikey": true, "hoba": true, "mutual": true, "aws4-hmac-sha256": true, "sharedkey": true, "otp": true}

// readAuthorization reads an HTTP Authorization header's credentials: after the scheme, the
// token (Basic, Bearer, Token) or every parameter (Digest, AWS4).
func readAuthorization(b []byte, ke, le int, ctx keyContext, out []span) []span {
	p := ke
	if ctx.quote != 0 && p < le && b[p] == ctx.quote {
		p++
	}
	for p < le && isSpace(b[p]) {
		p++
	}
	sep := false
	if p < le && (b[p] == ':' || b[p] == '=') {
		sep = true
		p++
	}
	for p < le && isSpace(b[p]) {
		p++
	}
	end := le
	if p < le && (b[p] == '"' || b[p] == '\'') {
		var s int
		s, end = quotedSpan(b, p, le)
		p = s
	}
	ws := p
	for p < end && !isSpace(b[p]) && b[p] != '"' {
		p++
	}
	scheme := strings.ToLower(string(b[ws:p]))
	if !authSchemes[scheme] {
		if !sep {
			return out
		}
		// No scheme: the whole value is the credential.
		ve := ws
		for ve < end && !isSpace(b[ve]) && b[ve] != ';' && b[ve] != '"' && b[ve] != '\'' {
			ve++
		}
		return appendValue(b, ws, ve, out)
	}
	for p < end && isSpace(b[p]) {
		p++
	}
	ve := p
	if scheme == "digest" || scheme == "aws4-hmac-sha256" {
		ve = end
		for ve > p && (isSpace(b[ve-1]) || b[ve-1] == ';') {
			ve--
		}
	} else {
		for ve < end && !isSpace(b[ve]) && b[ve] != ';' && b[ve] != '"' && b[ve] != '\'' {
			ve++
		}
	}
	return appendValue(b, p, ve, out)
}

// readURL reads the userinfo of the URL whose "://" is at i: its password, and its user when
// that is a key (an error-reporting DSN's https://KEY@host/1).
func readURL(b []byte, i int, out []span) []span {
	s := i + 3
	e := s
	at := -1
	colon := -1
	for e < len(b) {
		c := b[e]
		if c == '/' || c == '?' || c == '#' || c == '\n' || c == '\r' || isSpace(c) || c == '"' || c == '\'' || c == '>' || c == '`' {
			break
		}
		if c == '@' {
			at = e // the last '@' before the host: passwords may hold one
		}
		if c == ':' && colon < 0 && at < 0 {
			colon = e
		}
		e++
	}
	if at < 0 {
		return out
	}
	if colon >= 0 && colon < at {
		if colon+1 < at && !startsWithPlaceholder(b[colon+1:at]) && !isNonSecretValue(b[colon+1:at]) {
			out = append(out, span{colon + 1, at})
		}
		return out
	}
	if looksLikeKey(b[s:at]) {
		out = append(out, span{s, at})
	}
	return out
}

// looksLikeKey reports whether a URL's user is a key rather than a name: long, of letters and
// digits, with both.
func looksLikeKey(u []byte) bool {
	if len(u) < 16 {
		return false
	}
	letters, digits := 0, 0
	for _, c := range u {
		switch {
		case '0' <= c && c <= '9':
			digits++
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			letters++
		case c == '-' || c == '_':
		default:
			return false
		}
	}
	return letters > 0 && digits > 0
}

// snmpDirectives read net-snmp's directives that hold communities and USM passphrases where a
// key rule would not find them: each returns the places of the secrets on the line, given the
// end of the directive's name and of the line.
var snmpDirectives = map[string]func(b []byte, ke, le int) []span{
	// com2sec [-Cn CONTEXT] SECNAME SOURCE COMMUNITY
	"com2sec":  func(b []byte, ke, le int) []span { return args(b, ke, le).skipOpt("-Cn").at(2) },
	"com2sec6": func(b []byte, ke, le int) []span { return args(b, ke, le).skipOpt("-Cn").at(2) },
	// trapsink HOST [COMMUNITY [PORT]]
	"trapsink":   func(b []byte, ke, le int) []span { return args(b, ke, le).at(1) },
	"trap2sink":  func(b []byte, ke, le int) []span { return args(b, ke, le).at(1) },
	"informsink": func(b []byte, ke, le int) []span { return args(b, ke, le).at(1) },
	// snmptrapd: authCommunity TYPES COMMUNITY [SOURCE [OID | -v VIEW]]
	"authcommunity": func(b []byte, ke, le int) []span { return args(b, ke, le).at(1) },
	// rocommunity COMMUNITY [SOURCE [OID | -V VIEW [CONTEXT]]], and the like
	"rocommunity":   func(b []byte, ke, le int) []span { return args(b, ke, le).at(0) },
	"rwcommunity":   func(b []byte, ke, le int) []span { return args(b, ke, le).at(0) },
	"rocommunity6":  func(b []byte, ke, le int) []span { return args(b, ke, le).at(0) },
	"rwcommunity6":  func(b []byte, ke, le int) []span { return args(b, ke, le).at(0) },
	"trapcommunity": func(b []byte, ke, le int) []span { return args(b, ke, le).at(0) },
	// createUser [-e ENGINEID] NAME (MD5|SHA|...) [-m|-l] AUTHPASS [(DES|AES|...) [-m|-l] [PRIVPASS]]
	"createuser": func(b []byte, ke, le int) []span {
		a := args(b, ke, le).skipOpt("-e")
		var out []span
		i := 2 // after NAME and the auth protocol
		for i < len(a.w) && (string(b[a.w[i].s:a.w[i].e]) == "-m" || string(b[a.w[i].s:a.w[i].e]) == "-l") {
			i++
		}
		if i < len(a.w) {
			out = append(out, a.w[i])
		}
		i += 2 // the privacy protocol, then its passphrase
		for i < len(a.w) && (string(b[a.w[i].s:a.w[i].e]) == "-m" || string(b[a.w[i].s:a.w[i].e]) == "-l") {
			i++
		}
		if i < len(a.w) {
			out = append(out, a.w[i])
		}
		return nonSecret(b, out)
	},
	// The keys net-snmp stores: usmUser ... AUTH-OID 0xKEY PRIV-OID 0xKEY ...
	"usmuser": func(b []byte, ke, le int) []span {
		a := args(b, ke, le)
		var out []span
		for i := 1; i < len(a.w); i++ {
			prev := b[a.w[i-1].s:a.w[i-1].e]
			if bytes.HasPrefix(prev, []byte(".1.3.6.1.6.3.10.1.")) && bytes.HasPrefix(b[a.w[i].s:a.w[i].e], []byte("0x")) {
				out = append(out, a.w[i])
			}
		}
		return out
	},
}

type argList struct {
	b []byte
	w []span
}

// args splits a directive's arguments after its name at whitespace; a quoted argument's
// place is its content.
func args(b []byte, p, le int) argList {
	a := argList{b: b}
	for p < le {
		for p < le && isSpace(b[p]) {
			p++
		}
		if p >= le {
			break
		}
		var s, e int
		if b[p] == '"' || b[p] == '\'' {
			s, e = quotedSpan(b, p, le)
			p = e + 1
		} else {
			s = p
			for p < le && !isSpace(b[p]) {
				p++
			}
			e = p
		}
		a.w = append(a.w, span{s, e})
	}
	return a
}

// skipOpt drops an option and its value from the front: "-Cn ctx".
func (a argList) skipOpt(opt string) argList {
	if len(a.w) >= 2 && string(a.b[a.w[0].s:a.w[0].e]) == opt {
		a.w = a.w[2:]
	}
	return a
}

func (a argList) at(i int) []span {
	if i < len(a.w) {
		return nonSecret(a.b, a.w[i:i+1])
	}
	return nil
}

func nonSecret(b []byte, ss []span) []span {
	out := ss[:0]
	for _, s := range ss {
		if s.e > s.s && !startsWithPlaceholder(b[s.s:s.e]) && !isMask(b[s.s:s.e]) {
			out = append(out, s)
		}
	}
	return out
}

// replaceSpans puts placeholders over the secrets at spans; overlapping ones become one.
func (r *Redactor) replaceSpans(b []byte, spans []span) []byte {
	if len(spans) == 0 {
		return b
	}
	sort.Slice(spans, func(i, j int) bool {
		return spans[i].s < spans[j].s || spans[i].s == spans[j].s && spans[i].e > spans[j].e
	})
	merged := spans[:1]
	for _, s := range spans[1:] {
		last := &merged[len(merged)-1]
		if s.s < last.e {
			last.e = max(last.e, s.e)
			continue
		}
		merged = append(merged, s)
	}
	var out bytes.Buffer
	out.Grow(len(b))
	last := 0
	for _, s := range merged {
		secret := b[s.s:s.e]
		if startsWithPlaceholder(secret) || isMask(secret) {
			continue
		}
		out.Write(b[last:s.s])
		out.WriteString(r.Placeholder(secret))
		last = s.e
	}
	if last == 0 {
		return b
	}
	out.Write(b[last:])
	return out.Bytes()
}

func startsWithPlaceholder(b []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(b, `"'`), []byte(placeholderPrefix))
}
