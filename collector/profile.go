// Package collector captures a target's security-relevant configuration as artifacts: profiles of
// sources, run over a Transport, normalised and redacted before anything is stored.
package collector

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hardtrail/hardtrail/internal/tomlx"
)

// Source is one thing to capture: a command or a set of files.
type Source struct {
	// Name names the artifact (a command, or a single file without wildcards) or prefixes the
	// artifacts (one per file: NAME/ plus the file's path without its leading slash).
	Name    string   `toml:"name"`
	Command []string `toml:"command"`
	// Fallback commands are tried in order when the previous one is not installed
	// (dpkg-query, then rpm).
	Fallback [][]string `toml:"fallback"`
	Files    []string   `toml:"files"`
	// Watch names the files (absolute globs) a command's output depends on, such as sshd's
	// configuration for `sshd -T`. The agent captures a local target within a second of a
	// change to them, as it does for a files source's own files (WatchedFiles).
	Watch []string `toml:"watch"`
	Sudo  bool     `toml:"sudo"`
	// Normalise names built-in normalisers applied in order (see Normalisers).
	Normalise []string `toml:"normalise"`
	// Drop removes lines matching any of these regexps (volatile lines).
	Drop []string `toml:"drop"`
	// Replace rewrites every match of a regexp; `with` may use $1 expansions.
	Replace []Replace `toml:"replace"`
	// Sort sorts lines where their order carries no meaning.
	Sort bool `toml:"sort"`
	// Redact adds secret patterns: the first capture group (or the whole match) is replaced by a
	// keyed placeholder.
	Redact   []string       `toml:"redact"`
	Timeout  tomlx.Duration `toml:"timeout"`
	MaxBytes int64          `toml:"max_bytes"`
	// RedactWith names built-in structural redactors (see RedactorNames), run before the
	// patterns, for secrets a pattern cannot place, such as FortiOS's re-encrypted values.
	RedactWith []string `toml:"redact_with"`
	// RedactFormat names the format of the output for redaction (see RedactFormats); by
	// default a file's format comes from its name.
	RedactFormat string `toml:"redact_format"`
	// RedactEntropy redacts high-entropy strings too, secrets no rule names.
	RedactEntropy bool `toml:"redact_entropy"`
	// PortRange names the artifact of the same capture that holds the kernel's ephemeral port
	// range ("32768 60999"): listeners bound to loopback on ports inside it are dropped from
	// this source's `ss` output, unless KeepEphemeral is set.
	PortRange     string `toml:"port_range"`
	KeepEphemeral bool   `toml:"keep_ephemeral"`
	// Meta extracts named provenance values (who changed the configuration, and when) from
	// the redacted output, before normalisation drops their lines, into the artifact's metadata.
	Meta []MetaRule `toml:"meta"`

	drop      []*regexp.Regexp
	replace   []*regexp.Regexp
	redact    []*regexp.Regexp
	norm      []Normaliser
	redactors []StructRedactor
	// device marks a source of a network device profile, whose own rules know its syntax:
	// the built-in key rules read only key=value and key: value forms there, not directives.
	device bool
}

// Replace is one rewrite of a source's output.
type Replace struct {
	Pattern string `toml:"pattern"`
	With    string `toml:"with"`
}

// Profile is a named list of sources.
type Profile struct {
	Name        string `toml:"name"`
	Description string `toml:"description"`
	// RawCommands marks a network device profile: the target has no POSIX shell, so each
	// command is sent as its words, one SSH session each, and files cannot be read.
	RawCommands bool `toml:"raw_commands"`
	// Interactive runs the profile's commands in one interactive CLI session (a terminal),
	// for devices that refuse exec requests or drop the connection after one: PagerOff lines
	// first, then each command, its output read until Prompt matches the last line again.
	// It needs raw_commands.
	Interactive bool `toml:"interactive"`
	// Prompt matches the CLI's prompt on the last line of output (default DefaultPrompt); a
	// named group "host" names the target.
	Prompt string `toml:"prompt"`
	// PagerOff are CLI lines sent before the commands, such as "terminal length 0".
	PagerOff []string `toml:"pager_off"`
	// Enable is the CLI line that enters privileged mode ("enable"), sent with the target's
	// enable secret when the first prompt is unprivileged (ends in '>').
	Enable  string   `toml:"enable"`
	Sources []Source `toml:"source"`

	prompt *regexp.Regexp
}

// DefaultTimeout bounds one source unless it sets its own.
const DefaultTimeout = 60 * time.Second

var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*(/[A-Za-z0-9._@:+-]+)*$`) })

// Compile validates the profile and compiles its regexps. Errors name the profile and source.
func (p *Profile) Compile() error {
	if p.Name == "" {
		return fmt.Errorf("profile without a name")
	}
	if len(p.Sources) == 0 {
		return fmt.Errorf("profile %q: no sources", p.Name)
	}
	if err := p.compileShell(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i := range p.Sources {
		s := &p.Sources[i]
		s.device = p.RawCommands
		if p.RawCommands && len(s.Files) > 0 {
			return &CompileError{Profile: p.Name, Source: i, Key: "files", Err: fmt.Errorf("profile %q: source %q reads files, which a raw_commands profile cannot", p.Name, s.Name)}
		}
		if err := s.compile(); err != nil {
			key := "name"
			var fe *fieldError
			if errors.As(err, &fe) {
				key = fe.key
			}
			return &CompileError{Profile: p.Name, Source: i, Key: key, Err: fmt.Errorf("profile %q: source %d (%q): %w", p.Name, i+1, s.Name, err)}
		}
		if seen[s.Name] {
			return &CompileError{Profile: p.Name, Source: i, Key: "name", Err: fmt.Errorf("profile %q: source %q is defined twice", p.Name, s.Name)}
		}
		seen[s.Name] = true
	}
	return nil
}

// CompileError is a profile error in one source's field, so callers can point at it in the file.
type CompileError struct {
	Profile string
	Source  int    // index in the profile's sources
	Key     string // the source's field at fault
	Err     error
}

func (e *CompileError) Error() string { return e.Err.Error() }
func (e *CompileError) Unwrap() error { return e.Err }

// fieldError names the field of a source that is wrong.
type fieldError struct {
	key string
	err error
}

func (e *fieldError) Error() string { return e.err.Error() }

func fieldErr(key, format string, args ...any) error {
	return &fieldError{key: key, err: fmt.Errorf(format, args...)}
}

// WatchedFiles returns the globs whose files the source reads or depends on: its files and
// its watch list.
func (s *Source) WatchedFiles() []string {
	return append(slices.Clip(s.Files), s.Watch...)
}

func (s *Source) compile() error {
	if !nameRE().MatchString(s.Name) {
		return fieldErr("name", "name %q: want lowercase words separated by /, such as \"sshd/effective\"", s.Name)
	}
	switch {
	case len(s.Command) > 0 && len(s.Files) > 0:
		return fieldErr("files", "has both command and files; a source is one or the other")
	case len(s.Command) == 0 && len(s.Files) == 0:
		return fieldErr("name", "needs command = [argv...] or files = [globs]")
	case len(s.Fallback) > 0 && len(s.Command) == 0:
		return fieldErr("fallback", "fallback needs a command")
	}
	for _, c := range append([][]string{s.Command}, s.Fallback...) {
		if len(s.Command) > 0 && (len(c) == 0 || c[0] == "") {
			return fieldErr("command", "empty command")
		}
	}
	for _, f := range s.Files {
		if !path.IsAbs(f) {
			return fieldErr("files", "files: %q is not an absolute path", f)
		}
		if _, err := path.Match(f, "/"); err != nil {
			return fieldErr("files", "files: %q: %w", f, err)
		}
	}
	for _, f := range s.Watch {
		if !path.IsAbs(f) {
			return fieldErr("watch", "watch: %q is not an absolute path", f)
		}
		if _, err := path.Match(f, "/"); err != nil {
			return fieldErr("watch", "watch: %q: %w", f, err)
		}
	}
	if s.MaxBytes < 0 {
		return fieldErr("max_bytes", "max_bytes: must not be negative")
	}
	var err error
	if s.drop, err = compileAll("drop", s.Drop); err != nil {
		return &fieldError{key: "drop", err: err}
	}
	if s.redact, err = compileAll("redact", s.Redact); err != nil {
		return &fieldError{key: "redact", err: err}
	}
	s.replace = s.replace[:0]
	for _, r := range s.Replace {
		re, err := regexp.Compile(r.Pattern)
		if err != nil {
			return fieldErr("replace", "replace: %w", err)
		}
		s.replace = append(s.replace, re)
	}
	if s.RedactFormat != "" && !slices.Contains(RedactFormats, s.RedactFormat) {
		return fieldErr("redact_format", "redact_format: unknown format %q (known: %s)", s.RedactFormat, strings.Join(RedactFormats, ", "))
	}
	if s.PortRange != "" && !nameRE().MatchString(s.PortRange) {
		return fieldErr("port_range", "port_range %q: want an artifact name, such as \"net/ephemeral-ports\"", s.PortRange)
	}
	s.norm = s.norm[:0]
	for _, n := range s.Normalise {
		f, ok := normalisers[n]
		if !ok {
			return fieldErr("normalise", "normalise: unknown normaliser %q (known: %s)", n, strings.Join(NormaliserNames(), ", "))
		}
		s.norm = append(s.norm, f)
	}
	return s.compileDevice()
}

func compileAll(what string, pats []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, 0, len(pats))
	for _, p := range pats {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, re)
	}
	return out, nil
}

// singleFile reports whether a files source names exactly one path without wildcards, so its
// artifact takes the source's name.
func (s *Source) singleFile() bool {
	return len(s.Files) == 1 && !strings.ContainsAny(s.Files[0], `*?[\`)
}

// ArtifactName is the artifact name for a file captured by the source.
func (s *Source) ArtifactName(file string) string {
	if s.singleFile() {
		return s.Name
	}
	return s.Name + "/" + strings.TrimPrefix(file, "/")
}

//go:embed profiles/*.toml
var builtinFS embed.FS

// File is the layout of a profile file: [[profile]] tables.
type File struct {
	Profiles []Profile `toml:"profile"`
}

// LoadProfiles decodes and compiles the profiles in a TOML document.
func LoadProfiles(name string, data []byte) ([]Profile, error) {
	var f File
	if err := tomlx.Decode(name, data, &f); err != nil {
		return nil, err
	}
	for i := range f.Profiles {
		if err := f.Profiles[i].Compile(); err != nil {
			return nil, PositionError(name, data, []string{"profile", strconv.Itoa(i)}, err)
		}
	}
	return f.Profiles, nil
}

// Builtin returns the built-in profiles by name. They are parsed and compiled once per process
// (a fleet asks for them for every target) and shared: callers must not change them.
func Builtin() (map[string]*Profile, error) {
	all, err := builtinOnce()
	if err != nil {
		return nil, err
	}
	return maps.Clone(all), nil
}

var builtinOnce = sync.OnceValues(loadBuiltin)

func loadBuiltin() (map[string]*Profile, error) {
	out := map[string]*Profile{}
	for _, name := range BuiltinNames() {
		p, err := BuiltinProfile(name)
		if err != nil {
			return nil, err
		}
		out[name] = p
	}
	return out, nil
}

// BuiltinProfile decodes and compiles one built-in profile, or returns an error matching
// fs.ErrNotExist when there is none of that name. Each built-in profile is the one [[profile]]
// of profiles/NAME.toml, so a command that needs one profile, or only the names, does not
// decode the others; each is decoded once per process, and every caller shares it (a fleet
// capture asks for it once per target).
func BuiltinProfile(name string) (*Profile, error) {
	builtins.mu.Lock()
	defer builtins.mu.Unlock()
	if p, ok := builtins.m[name]; ok {
		return p, nil
	}
	f := "profiles/" + name + ".toml"
	if !IsBuiltin(name) {
		return nil, fmt.Errorf("builtin profile %q: %w", name, fs.ErrNotExist)
	}
	b, err := builtinFS.ReadFile(f)
	if err != nil {
		return nil, err
	}
	ps, err := LoadProfiles("builtin:"+f, b)
	if err != nil {
		return nil, err
	}
	if len(ps) != 1 || ps[0].Name != name {
		return nil, fmt.Errorf("builtin:%s: want one profile named %q", f, name)
	}
	if builtins.m == nil {
		builtins.m = map[string]*Profile{}
	}
	builtins.m[name] = &ps[0]
	return &ps[0], nil
}

// builtins holds the built-in profiles decoded so far, by name.
var builtins struct {
	mu sync.Mutex
	m  map[string]*Profile
}

// IsBuiltin reports whether a built-in profile has the name, without decoding any.
func IsBuiltin(name string) bool {
	return slices.Contains(BuiltinNames(), name)
}

// BuiltinNames lists the built-in profiles, sorted: the names of the embedded files.
func BuiltinNames() []string {
	files, _ := fs.Glob(builtinFS, "profiles/*.toml") // the pattern is valid
	names := make([]string, 0, len(files))
	for _, f := range files {
		names = append(names, strings.TrimSuffix(path.Base(f), ".toml"))
	}
	sort.Strings(names)
	return names
}

// PositionError points a profile compile error at its place in the file: prefix is the key
// path of the [[profile]] table.
func PositionError(file string, src []byte, prefix []string, err error) error {
	key := prefix
	var ce *CompileError
	if errors.As(err, &ce) {
		key = append(append([]string(nil), prefix...), "source", strconv.Itoa(ce.Source), ce.Key)
	}
	return tomlx.Errorf(file, src, key, "%v", err)
}
