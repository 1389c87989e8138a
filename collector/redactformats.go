package collector

import (
	"bytes"
	"math"
	"path"
	"strings"
)

// File formats whose secrets no key names: the columns of chap-secrets, htpasswd, .pgpass,
// shadow and Postfix sasl_passwd files, and Redis ACL users. A file's format comes from its name unless its source sets
// redact_format; "text" turns the key rules off for output that is not configuration (package
// lists, unit lists), where a package named "passwd" is not a setting.

// RedactFormats lists the formats a source's redact_format may name.
var RedactFormats = []string{"auto", "text", "chap-secrets", "htpasswd", "pgpass", "shadow", "redis-acl", "sasl-passwd"}

// formatByName gives a file's format from its base name.
func formatByName(p string) string {
	base := path.Base(p)
	switch {
	case base == "nsswitch.conf" || base == "services" || base == "protocols" || base == "mime.types" || base == "ethertypes":
		return "text" // tables of names: nsswitch's "passwd: files", services' "kpasswd 464/tcp"
	case base == "chap-secrets" || base == "pap-secrets":
		return "chap-secrets"
	case base == ".htpasswd" || base == "htpasswd" || strings.HasSuffix(base, ".htpasswd") || base == "rsyncd.secrets":
		return "htpasswd"
	case base == "sasl_passwd" || base == "sasl_passwd.db" || base == "smtp_auth":
		return "sasl-passwd"
	case base == ".pgpass" || base == "pgpass.conf":
		return "pgpass"
	case base == "shadow" || base == "gshadow" || base == "shadow-" || base == "gshadow-":
		return "shadow"
	case strings.HasSuffix(base, ".acl") || strings.HasPrefix(base, "redis") && strings.HasSuffix(base, ".conf"):
		return "redis-acl"
	}
	return ""
}

// formatSpans returns the places of the secrets the format f puts in columns.
func formatSpans(f string, b []byte) []span {
	var out []span
	for ls := 0; ls < len(b); {
		le := lineEnd(b, ls)
		e := le
		if e > ls && b[e-1] == '\r' {
			e--
		}
		line := b[ls:e]
		t := bytes.TrimLeft(line, " \t")
		if len(t) > 0 && t[0] != '#' {
			out = appendFormat(f, b, ls, line, out)
		}
		ls = le + 1
	}
	return out
}

func appendFormat(f string, b []byte, ls int, line []byte, out []span) []span {
	switch f {
	case "chap-secrets":
		// client server secret [addresses...]
		a := args(b, ls, ls+len(line))
		if len(a.w) >= 3 {
			out = append(out, nonSecret(b, a.w[2:3])...)
		}
	case "htpasswd":
		// user:hash
		if c := colons(line); len(c) > 0 && c[0] > 0 && c[0]+1 < len(line) {
			out = append(out, span{ls + c[0] + 1, ls + len(line)})
		}
	case "pgpass":
		// host:port:database:user:password, with \: and \\ escapes
		if c := colons(line); len(c) >= 4 && c[3]+1 < len(line) {
			out = append(out, span{ls + c[3] + 1, ls + len(line)})
		}
	case "shadow":
		// name:hash:...; "*", "!" and "x" lock the account and hold no hash.
		c := colons(line)
		if len(c) == 0 {
			return out
		}
		end := len(line)
		if len(c) > 1 {
			end = c[1]
		}
		f := line[c[0]+1 : end]
		h := bytes.TrimLeft(f, "!")
		if len(h) > 1 && string(h) != "*LK*" && !bytes.Equal(h, []byte("*")) {
			s := ls + c[0] + 1 + (len(f) - len(h))
			out = append(out, span{s, s + len(h)})
		}
	case "sasl-passwd":
		// Postfix: [relay]:port user:password
		a := args(b, ls, ls+len(line))
		if len(a.w) >= 2 {
			v := b[a.w[1].s:a.w[1].e]
			if c := colons(v); len(c) > 0 && c[0]+1 < len(v) {
				out = append(out, span{a.w[1].s + c[0] + 1, a.w[1].e})
			}
		}
	case "redis-acl":
		// user NAME [on|off] [>password] [#sha256] [~keys] [+@all] ...
		if !bytes.HasPrefix(bytes.TrimLeft(line, " \t"), []byte("user ")) {
			return out
		}
		for _, w := range args(b, ls, ls+len(line)).w {
			v := b[w.s:w.e]
			if len(v) > 1 && (v[0] == '>' || v[0] == '<' || v[0] == '#') && !startsWithPlaceholder(v[1:]) && !startsWithPlaceholder(v) {
				out = append(out, span{w.s + 1, w.e})
			}
		}
	}
	return out
}

// colons returns the places of the field separators in a colon-separated line: a colon after
// a backslash, or inside a placeholder, separates nothing.
func colons(line []byte) []int {
	var out []int
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\':
			if !bytes.HasPrefix(line[i+1:], []byte(placeholderPrefix)) {
				i++
			}
		case line[i] == '<' && bytes.HasPrefix(line[i:], []byte(placeholderPrefix)):
			if j := bytes.IndexByte(line[i:], '>'); j > 0 {
				i += j
			}
		case line[i] == ':':
			out = append(out, i)
		}
	}
	return out
}

// Entropy: opt-in per source (redact_entropy = true), strings of 20 or more characters drawn
// from letters, digits and + / _ - (and = as padding) that mix cases and digits and carry at least
// minEntropy bits per character, or hexadecimal strings of 32 or more digits.
const (
	minEntropyLen = 20
	minEntropy    = 3.5
	minHexLen     = 32
)

func isTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '_' || c == '-'
}

// entropySpans returns the places of high-entropy strings in b.
func entropySpans(b []byte) []span {
	var out []span
	for i := 0; i < len(b); {
		if !isTokenChar(b[i]) {
			i++
			continue
		}
		s := i
		for i < len(b) && isTokenChar(b[i]) {
			i++
		}
		for i < len(b) && b[i] == '=' { // base64 padding
			i++
		}
		if i-s >= minEntropyLen && HighEntropy(b[s:i]) {
			// A placeholder's digits are no secret, nor is the path before them.
			if s >= len(placeholderPrefix) && bytes.HasSuffix(b[:s], []byte(placeholderPrefix)) {
				continue
			}
			out = append(out, span{s, i})
		}
	}
	return out
}

// HighEntropy reports whether t looks like a random secret rather than a word, a path or a
// name: see the entropy constants.
func HighEntropy(t []byte) bool {
	t = bytes.Trim(t, "=/-_")
	if len(t) < minEntropyLen {
		return false
	}
	for _, p := range publicBlobs {
		if bytes.HasPrefix(t, []byte(p)) {
			return false
		}
	}
	var upper, lower, digit, hex int
	for _, c := range t {
		switch {
		case 'A' <= c && c <= 'Z':
			upper++
		case 'a' <= c && c <= 'z':
			lower++
			if c <= 'f' {
				hex++
			}
		case '0' <= c && c <= '9':
			digit++
			hex++
		}
	}
	if hex == len(t) && len(t) >= minHexLen && digit > 0 && lower > 0 {
		return true
	}
	if upper == 0 || lower == 0 || digit == 0 {
		return false
	}
	// A path's parts are words: usr/share/doc. A secret rarely has more than two slashes.
	if bytes.Count(t, []byte("/")) > 2 {
		return false
	}
	return shannon(t) >= minEntropy
}

// publicBlobs start base64 text that is public: certificates (a kubeconfig's
// certificate-authority-data) and SSH public keys.
var publicBlobs = []string{"LS0tLS1CRUdJTiBDRVJUSUZJQ0FUR", "AAAAB3NzaC1yc2E", "AAAAC3NzaC1lZDI1NTE5", "AAAAE2VjZHNhLXNoYTIt", "AAAAB3NzaC1kc3M"}

func shannon(t []byte) float64 {
	var n [256]int
	for _, c := range t {
		n[c]++
	}
	h := 0.0
	for _, k := range n {
		if k > 0 {
			p := float64(k) / float64(len(t))
			h -= p * math.Log2(p)
		}
	}
	return h
}
