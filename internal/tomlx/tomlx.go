// Package tomlx decodes TOML strictly: unknown keys are errors, and every error names
// file:line:column where the position can be found.
package tomlx

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
)

// Error is a decoding error at a position in a file. Line and Col are 1-based; zero when unknown.
type Error struct {
	File string
	Line int
	Col  int
	Key  string // dotted key path, when known
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, max(e.Col, 1))
	}
	b.WriteString(": ")
	if e.Key != "" {
		fmt.Fprintf(&b, "%s: ", e.Key)
	}
	b.WriteString(e.Msg)
	return b.String()
}

var lineRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^toml: (?:line (\d+) )?(?:\(last key "([^"]*)"\): |\(last key "([^"]*)"\))?:? ?`)
})

// Decode decodes data (read from file, which names it in errors) into v and rejects unknown keys.
func Decode(file string, data []byte, v any) error {
	md, err := toml.NewDecoder(strings.NewReader(string(data))).Decode(v)
	if err != nil {
		return convert(file, string(data), err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		line, col := Locate(string(data), []string(k))
		return &Error{File: file, Line: line, Col: col, Key: k.String(),
			Msg: "unknown key (check its spelling and the table it is in)"}
	}
	return nil
}

func convert(file, src string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if u := strings.TrimSpace(pe.Usage); u != "" {
			msg += " (" + firstLine(u) + ")"
		}
		return &Error{File: file, Line: pe.Position.Line, Col: pe.Position.Col, Key: pe.LastKey, Msg: msg}
	}
	// Type errors arrive as plain text: "toml: line N (last key "a.b"): message".
	s := err.Error()
	e := &Error{File: file, Msg: strings.TrimPrefix(s, "toml: ")}
	if m := lineRE().FindStringSubmatch(s); m != nil {
		e.Msg = s[len(m[0]):]
		e.Line, _ = strconv.Atoi(m[1])
		e.Key = m[2] + m[3]
		if e.Key != "" {
			l, c := Locate(src, strings.Split(e.Key, "."))
			if e.Line == 0 || l == e.Line {
				e.Line, e.Col = l, c
			}
		}
	}
	return e
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Locate finds the line and column where the key path is defined in src, searching table
// headers and key assignments. It returns 0, 0 when it cannot tell. A path may hold the index of
// an array-of-tables element after its name ("target", "2", "address"); without indexes the
// first definition wins.
func Locate(src string, key []string) (line, col int) {
	if len(key) == 0 {
		return 0, 0
	}
	indexed := false
	for _, p := range key {
		if isIndex(p) {
			indexed = true
		}
	}
	want := strings.Join(key, ".")
	match := func(canon []string) bool {
		if indexed {
			return strings.Join(canon, ".") == want
		}
		return strings.Join(stripIndexes(canon), ".") == want
	}
	var (
		cur       []string
		lastIndex = map[string]int{} // array table path without indexes -> current element
		count     = map[string]int{} // array table canonical path -> elements seen
	)
	withIndexes := func(parts []string) []string {
		var out []string
		for i, p := range parts {
			out = append(out, p)
			if n, ok := lastIndex[strings.Join(parts[:i+1], ".")]; ok {
				out = append(out, strconv.Itoa(n))
			}
		}
		return out
	}
	for i, l := range strings.Split(src, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[[") {
			h := t[2:]
			if j := strings.Index(h, "]]"); j >= 0 {
				h = h[:j]
			}
			parts := splitKey(h)
			parent := withIndexes(parts[:len(parts)-1])
			canonKey := strings.Join(append(append([]string(nil), parent...), parts[len(parts)-1]), ".")
			n := count[canonKey]
			count[canonKey]++
			lastIndex[strings.Join(parts, ".")] = n
			cur = append(append(append([]string(nil), parent...), parts[len(parts)-1]), strconv.Itoa(n))
			if match(cur) || match(cur[:len(cur)-1]) {
				return i + 1, strings.Index(l, parts[len(parts)-1]) + 1
			}
			continue
		}
		if strings.HasPrefix(t, "[") {
			h := strings.TrimPrefix(t, "[")
			if j := strings.IndexByte(h, ']'); j >= 0 {
				h = h[:j]
			}
			parts := splitKey(h)
			cur = withIndexes(parts)
			if match(cur) {
				return i + 1, strings.Index(l, parts[len(parts)-1]) + 1
			}
			continue
		}
		eq := strings.IndexByte(t, '=')
		if eq <= 0 || strings.HasPrefix(t, "#") {
			continue
		}
		k := splitKey(strings.TrimSpace(t[:eq]))
		full := append(append([]string(nil), cur...), k...)
		if match(full) {
			return i + 1, strings.Index(l, k[0]) + 1
		}
		// Inline tables: name = { key = ... }
		last := key[len(key)-1]
		for n := len(full) + 1; n <= len(full)+2 && n <= len(key); n++ {
			if match(append(full, key[len(full):n]...)) && n == len(key) {
				if c := strings.Index(l[strings.IndexByte(l, '='):], last); c >= 0 {
					return i + 1, strings.IndexByte(l, '=') + c + 1
				}
			}
		}
	}
	return 0, 0
}

func isIndex(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

func stripIndexes(parts []string) []string {
	var out []string
	for _, p := range parts {
		if !isIndex(p) {
			out = append(out, p)
		}
	}
	return out
}

func splitKey(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ".") {
		out = append(out, strings.Trim(strings.TrimSpace(p), `"'`))
	}
	return out
}

// Duration is a time.Duration written as a Go duration string ("30s", "5m"). A bare integer is
// refused: TOML has no unit for it and nanoseconds are never what was meant.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (write it with a unit, such as \"30s\" or \"5m\")", b)
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: negative", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Errorf is a validation error for the value at key in file, positioned when Locate finds it.
// The key is shown with array indexes written 1-based in brackets: target[2].address.
func Errorf(file string, src []byte, key []string, format string, args ...any) *Error {
	var line, col int
	// A missing key is reported where its table starts.
	for n := len(key); n > 0 && line == 0; n-- {
		line, col = Locate(string(src), key[:n])
	}
	return &Error{File: file, Line: line, Col: col, Key: showKey(key), Msg: fmt.Sprintf(format, args...)}
}

func showKey(key []string) string {
	var b strings.Builder
	for _, p := range key {
		if n, err := strconv.Atoi(p); err == nil {
			fmt.Fprintf(&b, "[%d]", n+1)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}
