package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/hardtrail/hardtrail/internal/testutil" // the -update flag every test binary takes
)

// Every invalid-*.toml gives exactly this error.
func TestInvalidConfigs(t *testing.T) {
	want := map[string]string{
		"invalid-unknown-key.toml":      "invalid-unknown-key.toml:3:1: agent.intervall: unknown key (check its spelling and the table it is in)",
		"invalid-transport.toml":        `invalid-transport.toml:7:1: target[2].transport: target "fw1": unknown transport "telnet" (want local or ssh)`,
		"invalid-duplicate-target.toml": `invalid-duplicate-target.toml:5:1: target[2].name: target "web1" is defined twice`,
		"invalid-bare-duration.toml":    `invalid-bare-duration.toml:2:12: agent.interval: invalid duration "300" (write it with a unit, such as "30s" or "5m")`,
		"invalid-unknown-profile.toml":  `invalid-unknown-profile.toml:3:1: target[1].profiles: target "web1": unknown profile "cisco-iosxr" (built in: arista-eos, checkpoint-gaia, cisco-asa, cisco-ios, cisco-nxos, fortigate, huawei-vrp, junos, linux, mikrotik, panos, pfsense)`,
		"invalid-ssh-no-address.toml":   `invalid-ssh-no-address.toml:1:3: target[1].address: target "web1": ssh needs address = "user@host:port"`,
		"invalid-syntax.toml":           `invalid-syntax.toml:3:9: expected end of table array name delimiter ']', but got '\n' instead`,
		"invalid-target-name.toml":      `invalid-target-name.toml:2:1: target[1].name: target name "web 1": want letters, digits and . _ @ -, starting with a letter or digit`,
		"invalid-type.toml":             "invalid-type.toml:2:1: agent.concurrency: incompatible types: TOML value has type string; destination has type integer",
		"invalid-profile-regex.toml":    "invalid-profile-regex.toml:15:1: profile[1].source[2].drop: profile \"mine\": source 2 (\"y\"): drop: error parsing regexp: missing closing ]: `[unclosed`",
		"invalid-port.toml":             `invalid-port.toml:3:1: target[1].address: target "web1": bad port "99999"`,
		"invalid-tsa-url.toml":          `invalid-tsa-url.toml:2:1: agent.tsa_url: "ftp://tsa.example/" is not an http or https URL of a timestamp authority`,
		"invalid-agent-id.toml":         `invalid-agent-id.toml:2:1: agent.id: "collector 1": want up to 128 letters, digits and ._:@/[]- , starting with a letter or digit`,
		"invalid-jump-cycle.toml":       `invalid-jump-cycle.toml:11:1: target[2].jump: target "a": jump hosts form a cycle: a -> b -> c -> a (one of them must connect directly)`,
		"invalid-enable-both.toml":      `invalid-enable-both.toml:6:1: target[1].enable_secret_env: target "edge-rtr1": set enable_secret_file or enable_secret_env, not both`,
		"invalid-enable-profile.toml":   `invalid-enable-profile.toml:5:1: target[1].enable_secret_env: target "srx-branch1": none of its profiles (junos) enters privileged mode, so the enable secret would never be used (built-in profiles that do: cisco-asa, cisco-ios)`,
		"invalid-enable-env.toml":       `invalid-enable-env.toml:5:1: target[1].enable_secret_env: target "asa-fw1": not an environment variable name (name the variable that holds the secret, never the secret)`,
	}
	files, _ := filepath.Glob("../testdata/config/invalid-*.toml")
	if len(files) != len(want) {
		t.Errorf("%d invalid-*.toml files, %d expectations", len(files), len(want))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(filepath.Base(f), src)
			if err == nil {
				t.Fatal("no error")
			}
			if w := want[filepath.Base(f)]; err.Error() != w {
				t.Errorf("error\n got: %s\nwant: %s", err, w)
			}
		})
	}
}

func TestValidConfig(t *testing.T) {
	c, err := Load("../testdata/config/valid-fleet.toml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("../testdata/config")
	if !strings.HasSuffix(c.Store, "testdata/config/evidence/hardtrail.db") {
		t.Errorf("store %q is not relative to the config file", c.Store)
	}
	if c.Agent.Interval.Duration != 2*time.Minute || c.Agent.Concurrency != 32 || c.Agent.Listen != "127.0.0.1:9527" {
		t.Errorf("agent %+v", c.Agent)
	}
	web, _ := c.Target("web1")
	if web.Transport != "ssh" || web.Timeout.Duration != 90*time.Second || !strings.HasPrefix(web.KnownHosts, abs) {
		t.Errorf("web1 %+v", web)
	}
	fw, _ := c.Target("edge-fw")
	ps, err := c.ProfilesFor(fw)
	if err != nil || len(ps) != 1 || ps[0].Name != "mine" || !fw.LegacyAlgorithms {
		t.Errorf("edge-fw profiles %v %v", ps, err)
	}
	local, _ := c.Target("local")
	if local.Transport != "local" || local.Profiles[0] != "linux" || local.Timeout.Duration != DefaultTimeout {
		t.Errorf("local %+v", local)
	}
}

func TestDefaultsAndPrecedence(t *testing.T) {
	d := Default()
	if len(d.Targets) != 1 || d.Targets[0].Name != "local" || d.Agent.Listen != DefaultListen {
		t.Fatalf("default %+v", d)
	}
	t.Setenv("HARDTRAIL_STORE", "/env/store.db")
	if got := d.StorePath(""); got != "/env/store.db" {
		t.Errorf("env store: %s", got)
	}
	if got := d.StorePath("/flag.db"); got != "/flag.db" {
		t.Errorf("flag store: %s", got)
	}
	if got := d.KeyFile("/x/s.db"); got != "/x/s.db.key" {
		t.Errorf("key file: %s", got)
	}
	t.Setenv("HARDTRAIL_CONFIG", "../testdata/config/valid-fleet.toml")
	c, err := Resolve("")
	if err != nil || len(c.Targets) != 3 {
		t.Errorf("env config: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"valid-fleet.toml", "invalid-transport.toml", "invalid-profile-regex.toml"} {
		b, _ := os.ReadFile(filepath.Join("../testdata/config", p))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse("f.toml", src)
		if err == nil && len(c.Targets) == 0 {
			t.Fatal("valid config without targets")
		}
	})
}

// validAgentID accepts exactly what the documented pattern does.
func TestValidAgentID(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@/\[\]-]{0,127}$`)
	cases := []string{"", "a", "A1", "collector-1", "host.example.com:9100", "[::1]:22", "ops@site/1", "_a", "-a", ".a", "a b", "a\n", "é", "a" + strings.Repeat("b", 127), "a" + strings.Repeat("b", 128), "a\x00", "a]", "9"}
	for c := range 256 {
		cases = append(cases, "x"+string(rune(c)), string(rune(c)))
	}
	for _, id := range cases {
		if got, want := validAgentID(id), re.MatchString(id); got != want {
			t.Errorf("validAgentID(%q) = %v, the pattern says %v", id, got, want)
		}
	}
}
