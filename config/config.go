// Package config loads hardtrail.toml: the store, rule sources, agent settings, redaction key,
// targets and user profiles, strictly and with positioned errors.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/collector"
	"github.com/hardtrail/hardtrail/internal/tomlx"
)

// Defaults.
const (
	DefaultListen      = "127.0.0.1:9527"
	DefaultInterval    = 5 * time.Minute
	DefaultConcurrency = 64
	DefaultTimeout     = 5 * time.Minute
	SystemConfig       = "/etc/hardtrail/hardtrail.toml"
)

// Config is hardtrail.toml.
type Config struct {
	Store    string              `toml:"store"`
	Rules    []string            `toml:"rules"`
	Agent    Agent               `toml:"agent"`
	Redact   Redact              `toml:"redact"`
	Targets  []Target            `toml:"target"`
	Profiles []collector.Profile `toml:"profile"`

	// File is where the config was read from; empty for the built-in defaults.
	File string `toml:"-"`
}

// Agent configures the daemon.
type Agent struct {
	Listen      string         `toml:"listen"`
	Interval    tomlx.Duration `toml:"interval"`
	Concurrency int            `toml:"concurrency"`
	WebConfig   string         `toml:"web_config"`
	// TSAURL, when set, is an RFC 3161 timestamp authority the agent asks once a day for a
	// token over the store head; TSACA is the CA file its tokens are checked against.
	TSAURL string `toml:"tsa_url"`
	TSACA  string `toml:"tsa_ca"`
	// ID names the agent among the agents that divide targets through a shared store's
	// leases; default: the host name and the address /metrics listens on.
	ID string `toml:"id"`
}

// validAgentID reports whether id is 1 to 128 of A-Z a-z 0-9 . _ : @ / [ ] -, starting with a
// letter or digit (checked by hand: a regexp with {0,127} compiles to 127 copies of its class).
func validAgentID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("._:@/[]-", rune(c))) {
			return false
		}
	}
	return true
}

// Redact configures redaction.
type Redact struct {
	// KeyFile holds the HMAC key of redaction placeholders; default: beside the store.
	KeyFile string `toml:"key_file"`
}

// Target is one machine or device to capture.
type Target struct {
	Name      string   `toml:"name"`
	Transport string   `toml:"transport"` // local or ssh
	Address   string   `toml:"address"`   // user@host:port
	Profiles  []string `toml:"profiles"`
	// SSH settings.
	IdentityFile     string         `toml:"identity_file"`
	CertificateFile  string         `toml:"certificate_file"`   // default: IDENTITY-cert.pub when it exists
	PassphraseFile   string         `toml:"passphrase_file"`    // unlocks an encrypted identity file
	PassphraseEnv    string         `toml:"passphrase_env"`     // or: the name of a variable holding it
	EnableSecretFile string         `toml:"enable_secret_file"` // a device CLI's enable secret (profiles with enable)
	EnableSecretEnv  string         `toml:"enable_secret_env"`  // or: the name of a variable holding it
	UseAgent         *bool          `toml:"use_agent"`          // default: true when $SSH_AUTH_SOCK is set
	KnownHosts       string         `toml:"known_hosts"`
	Fingerprints     []string       `toml:"fingerprints"` // pinned host keys, "SHA256:..."
	Jump             string         `toml:"jump"`
	Timeout          tomlx.Duration `toml:"timeout"`         // whole collection of this target
	CommandTimeout   tomlx.Duration `toml:"command_timeout"` // each command (default 60s)
	LegacyAlgorithms bool           `toml:"legacy_algorithms"`
}

// Default is the configuration used when no file exists: one local target with the linux profile.
func Default() *Config {
	c := &Config{Targets: []Target{{Name: "local"}}}
	if err := c.validate(nil); err != nil {
		panic(err)
	}
	return c
}

// Load reads and validates a config file.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, src)
}

// Parse decodes and validates a config document; name is used in errors.
func Parse(name string, src []byte) (*Config, error) {
	c := &Config{}
	if err := tomlx.Decode(name, src, c); err != nil {
		return nil, err
	}
	c.File = name
	if err := c.validate(src); err != nil {
		return nil, err
	}
	return c, nil
}

// Resolve finds the config to use: the flag, else $HARDTRAIL_CONFIG, else the system file when
// it exists, else the built-in defaults.
func Resolve(flag string) (*Config, error) {
	if flag == "" {
		flag = os.Getenv("HARDTRAIL_CONFIG")
	}
	if flag != "" {
		return Load(flag)
	}
	if _, err := os.Stat(SystemConfig); err == nil {
		return Load(SystemConfig)
	}
	return Default(), nil
}

func (c *Config) validate(src []byte) error {
	errf := func(key []string, format string, args ...any) error {
		if c.File == "" {
			return fmt.Errorf("%s: "+format, append([]any{strings.Join(key, ".")}, args...)...)
		}
		return tomlx.Errorf(c.File, src, key, format, args...)
	}
	if c.Agent.Listen == "" {
		c.Agent.Listen = DefaultListen
	} else if _, _, err := net.SplitHostPort(c.Agent.Listen); err != nil {
		return errf([]string{"agent", "listen"}, "want host:port, such as %q: %v", DefaultListen, err)
	}
	if c.Agent.Interval.Duration == 0 {
		c.Agent.Interval.Duration = DefaultInterval
	} else if c.Agent.Interval.Duration < time.Second {
		return errf([]string{"agent", "interval"}, "%s is too short (at least 1s)", c.Agent.Interval.Duration)
	}
	if c.Agent.Concurrency == 0 {
		c.Agent.Concurrency = DefaultConcurrency
	} else if c.Agent.Concurrency < 0 || c.Agent.Concurrency > 4096 {
		return errf([]string{"agent", "concurrency"}, "%d is out of range (1 to 4096)", c.Agent.Concurrency)
	}
	if id := c.Agent.ID; id != "" && !validAgentID(id) {
		return errf([]string{"agent", "id"}, "%q: want up to 128 letters, digits and ._:@/[]- , starting with a letter or digit", id)
	}
	if u := c.Agent.TSAURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return errf([]string{"agent", "tsa_url"}, "%q is not an http or https URL of a timestamp authority", u)
		}
	}
	if c.Store != "" {
		if _, err := store.ParseLocation(c.Store); err != nil {
			return errf([]string{"store"}, "%v", err)
		}
	}
	if c.File != "" {
		abs, err := filepath.Abs(c.File)
		if err != nil {
			return err
		}
		base := filepath.Dir(abs)
		for _, p := range []*string{&c.Store, &c.Agent.WebConfig, &c.Agent.TSACA, &c.Redact.KeyFile} {
			if p == &c.Store && !store.IsPath(c.Store) {
				continue // a PostgreSQL connection string
			}
			*p = relTo(base, *p)
		}
		for i := range c.Targets {
			t := &c.Targets[i]
			for _, p := range []*string{&t.IdentityFile, &t.CertificateFile, &t.PassphraseFile, &t.KnownHosts, &t.EnableSecretFile} {
				*p = relTo(base, *p)
			}
		}
	}
	own := map[string]bool{}
	for i := range c.Profiles {
		p := &c.Profiles[i]
		key := []string{"profile", strconv.Itoa(i)}
		if err := p.Compile(); err != nil {
			if c.File == "" {
				return err
			}
			return collector.PositionError(c.File, src, key, err)
		}
		if own[p.Name] {
			return errf(append(key, "name"), "profile %q is defined twice", p.Name)
		}
		own[p.Name] = true
	}
	if len(c.Targets) == 0 {
		return errf([]string{"target"}, "no targets: add a [[target]] table")
	}
	seen := map[string]bool{}
	for i := range c.Targets {
		t := &c.Targets[i]
		key := []string{"target", strconv.Itoa(i)}
		if !store.ValidTarget(t.Name) {
			return errf(append(key, "name"), "target name %q: want letters, digits and . _ @ -, starting with a letter or digit", t.Name)
		}
		if seen[t.Name] {
			return errf(append(key, "name"), "target %q is defined twice", t.Name)
		}
		seen[t.Name] = true
		if t.Transport == "" {
			t.Transport = "local"
			if t.Address != "" {
				t.Transport = "ssh"
			}
		}
		switch t.Transport {
		case "local":
			if t.Address != "" {
				return errf(append(key, "address"), "target %q: a local target has no address", t.Name)
			}
		case "ssh":
			if t.Address == "" {
				return errf(append(key, "address"), "target %q: ssh needs address = \"user@host:port\"", t.Name)
			}
			if err := checkAddress(t.Address); err != nil {
				return errf(append(key, "address"), "target %q: %v", t.Name, err)
			}
		default:
			return errf(append(key, "transport"), "target %q: unknown transport %q (want local or ssh)", t.Name, t.Transport)
		}
		if len(t.Profiles) == 0 {
			t.Profiles = []string{"linux"}
		}
		for _, p := range t.Profiles {
			if !own[p] && !collector.IsBuiltin(p) {
				return errf(append(key, "profiles"), "target %q: unknown profile %q (built in: %s)", t.Name, p, strings.Join(collector.BuiltinNames(), ", "))
			}
		}
		if err := c.checkEnable(t, key, own, errf); err != nil {
			return err
		}
		if t.Timeout.Duration == 0 {
			t.Timeout.Duration = DefaultTimeout
		}
		for j, fp := range t.Fingerprints {
			if !strings.HasPrefix(fp, "SHA256:") || len(fp) != len("SHA256:")+43 {
				return errf(append(key, "fingerprints"), "target %q: fingerprint %d %q: want SHA256: and 43 base64 characters, as ssh-keygen -lf prints it", t.Name, j+1, fp)
			}
		}
		if t.Transport == "local" && (t.IdentityFile != "" || t.KnownHosts != "" || t.Jump != "" || len(t.Fingerprints) > 0 || t.LegacyAlgorithms) {
			return errf(key, "target %q: SSH settings on a local target (set address, or transport = \"ssh\")", t.Name)
		}
	}
	for i, t := range c.Targets {
		if t.Jump == "" {
			continue
		}
		if t.Jump == t.Name {
			return errf([]string{"target", strconv.Itoa(i), "jump"}, "target %q jumps through itself", t.Name)
		}
		if !seen[t.Jump] {
			if err := checkAddress(t.Jump); err != nil {
				return errf([]string{"target", strconv.Itoa(i), "jump"}, "target %q: jump %q is neither a target name nor user@host:port: %v", t.Name, t.Jump, err)
			}
		}
		if path := c.jumpCycle(t.Name); path != nil {
			return errf([]string{"target", strconv.Itoa(i), "jump"}, "target %q: jump hosts form a cycle: %s (one of them must connect directly)", t.Name, strings.Join(path, " -> "))
		}
	}
	return nil
}

// jumpCycle follows the jumps from the named target through other targets and returns the
// path when it comes back to that target; nil when the chain ends at a direct connection or at
// a jump given as an address, or runs into a cycle the target is not part of (that cycle is
// reported at a target of its own).
func (c *Config) jumpCycle(name string) []string {
	var path []string
	at := map[string]bool{}
	for {
		t, ok := c.Target(name)
		if !ok {
			return nil
		}
		path = append(path, name)
		if at[name] {
			if name != path[0] {
				return nil
			}
			return path
		}
		at[name] = true
		if t.Jump == "" {
			return nil
		}
		name = t.Jump
	}
}

var envNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })

// checkEnable validates a target's enable secret settings: one source at most, a valid
// variable name, an SSH target, and a profile that enters privileged mode.
func (c *Config) checkEnable(t *Target, key []string, own map[string]bool, errf func([]string, string, ...any) error) error {
	if t.EnableSecretFile == "" && t.EnableSecretEnv == "" {
		return nil
	}
	field := "enable_secret_file"
	if t.EnableSecretFile == "" {
		field = "enable_secret_env"
	}
	if t.EnableSecretFile != "" && t.EnableSecretEnv != "" {
		return errf(append(key, "enable_secret_env"), "target %q: set enable_secret_file or enable_secret_env, not both", t.Name)
	}
	if t.EnableSecretEnv != "" && !envNameRE().MatchString(t.EnableSecretEnv) {
		// The value is not quoted back: it may be the secret itself.
		return errf(append(key, field), "target %q: not an environment variable name (name the variable that holds the secret, never the secret)", t.Name)
	}
	if t.Transport != "ssh" {
		return errf(append(key, field), "target %q: an enable secret is for network devices reached over SSH", t.Name)
	}
	var enablers []string
	builtin, _ := collector.Builtin()
	for n, p := range builtin {
		if p.Enable != "" {
			enablers = append(enablers, n)
		}
	}
	sort.Strings(enablers)
	for _, name := range t.Profiles {
		var p *collector.Profile
		if own[name] {
			for i := range c.Profiles {
				if c.Profiles[i].Name == name {
					p = &c.Profiles[i]
				}
			}
		} else {
			p = builtin[name]
		}
		if p != nil && p.Enable != "" {
			return nil
		}
	}
	return errf(append(key, field), "target %q: none of its profiles (%s) enters privileged mode, so the enable secret would never be used (built-in profiles that do: %s)",
		t.Name, strings.Join(t.Profiles, ", "), strings.Join(enablers, ", "))
}

func checkAddress(a string) error {
	hostport := a
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		if i == 0 {
			return errors.New("empty user before @")
		}
		hostport = a[i+1:]
	}
	if hostport == "" {
		return errors.New("empty host")
	}
	if strings.HasPrefix(hostport, "[") || strings.Count(hostport, ":") == 1 {
		h, p, err := net.SplitHostPort(hostport)
		if err != nil {
			return fmt.Errorf("want user@host:port: %v", err)
		}
		if h == "" {
			return errors.New("empty host")
		}
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("bad port %q", p)
		}
	}
	return nil
}

func relTo(base, p string) string {
	if p == "" || filepath.IsAbs(p) || strings.Contains(p, "://") {
		return p
	}
	if strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, p[2:])
		}
	}
	return filepath.Join(base, p)
}

// Target returns the named target.
func (c *Config) Target(name string) (*Target, bool) {
	for i := range c.Targets {
		if c.Targets[i].Name == name {
			return &c.Targets[i], true
		}
	}
	return nil, false
}

// ProfilesFor returns the compiled profiles a target uses, its own before built-in ones.
func (c *Config) ProfilesFor(t *Target) ([]*collector.Profile, error) {
	var out []*collector.Profile
	for _, name := range t.Profiles {
		var p *collector.Profile
		for i := range c.Profiles {
			if c.Profiles[i].Name == name {
				p = &c.Profiles[i]
			}
		}
		if p == nil {
			if !collector.IsBuiltin(name) {
				return nil, fmt.Errorf("target %s: unknown profile %q", t.Name, name)
			}
			b, err := collector.BuiltinProfile(name)
			if err != nil {
				return nil, err
			}
			p = b
		}
		out = append(out, p)
	}
	return out, nil
}

// DefaultStore is the store path when neither flag, environment nor config names one:
// /var/lib/hardtrail/hardtrail.db for root, else $XDG_DATA_HOME/hardtrail/hardtrail.db.
func DefaultStore() string {
	if os.Geteuid() == 0 {
		return "/var/lib/hardtrail/hardtrail.db"
	}
	d := os.Getenv("XDG_DATA_HOME")
	if d == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			h = "."
		}
		d = filepath.Join(h, ".local", "share")
	}
	return filepath.Join(d, "hardtrail", "hardtrail.db")
}

// StorePath picks the store: the flag, else $HARDTRAIL_STORE, else the config's, else DefaultStore.
func (c *Config) StorePath(flag string) string {
	switch {
	case flag != "":
		return flag
	case os.Getenv("HARDTRAIL_STORE") != "":
		return os.Getenv("HARDTRAIL_STORE")
	case c.Store != "":
		return c.Store
	}
	return DefaultStore()
}

// KeyFile is the redaction key's path for a store: beside it (see Beside), unless key_file
// names one. Every agent of a fleet sharing a PostgreSQL store needs the same key, so a fleet
// sets key_file.
func (c *Config) KeyFile(location string) string {
	if c.Redact.KeyFile != "" {
		return c.Redact.KeyFile
	}
	return Beside(location, ".key")
}

// Beside is where a file that belongs with a store lives: beside a SQLite store (its path and
// suffix); for a PostgreSQL store, beside the default store.
func Beside(location, suffix string) string {
	if store.IsPath(location) {
		return location + suffix
	}
	return DefaultStore() + suffix
}
