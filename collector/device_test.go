package collector

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/collector/transport"
)

func TestNormaliseCLI(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"crlf", "a\r\nb\r\n", "a\nb\n"},
		{"blank edges", "\r\n\r\nBuilding\r\n\r\n!\r\n\r\n", "Building\n\n!\n"},
		{"escapes", "\x1b[1;32m/ip\x1b[0m firewall\n", "/ip firewall\n"},
		{"trailing blanks", "ip address 10.0.0.1 255.255.255.0 \t\n", "ip address 10.0.0.1 255.255.255.0\n"},
		{"tabs inside kept", "\t<if>igb0</if>\n", "\t<if>igb0</if>\n"},
		{"control characters", "a\x07b\x00c\n", "abc\n"},
		{"empty", "", ""},
		{"only blanks", "\r\n \n\t\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(NormaliseCLI([]byte(c.in))); got != c.want {
				t.Errorf("NormaliseCLI(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestNormalisePfsenseRevision(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"pfsense", "<pfsense>\n\t<system/>\n\t<revision>\n\t\t<time>1705312953</time>\n\t\t<description><![CDATA[admin@10.0.0.5: saved]]></description>\n\t\t<username><![CDATA[admin@10.0.0.5 (Local Database)]]></username>\n\t</revision>\n\t<unbound/>\n</pfsense>\n",
			"<pfsense>\n\t<system/>\n\t<unbound/>\n</pfsense>\n"},
		{"opnsense", "<opnsense>\n  <revision>\n    <username>root@10.0.0.9</username>\n    <time>1705312953.4417</time>\n    <description>/system_advanced_admin.php made changes</description>\n  </revision>\n  <OPNsense/>\n</opnsense>\n",
			"<opnsense>\n  <OPNsense/>\n</opnsense>\n"},
		{"inline", "<a><revision><time>1</time></revision><b/></a>\n", "<a><b/></a>\n"},
		{"unclosed left alone", "<a>\n<revision>\n<time>1</time>\n", "<a>\n<revision>\n<time>1</time>\n"},
		{"none", "<a/>\n", "<a/>\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(NormalisePfsenseRevision([]byte(c.in))); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

const fortiShow = `#config-version=FG100F-7.2.8-FW-build1639-240313:opmode=0:vdom=0:user=admin
config system admin
    edit "admin"
        set accprofile "super_admin"
        set password ENC SH2nlSGsqSM8WjvXGs6Uyw4VUt1RFAqIUkUQU7dHflBEm0=
    next
end
config system snmp community
    edit 1
        set name "n0t-Publ1c"
    next
end
config user local
    edit "alice"
        set type password
        set passwd ENC %s
    next
    edit "bob"
        set type password
        set passwd ENC %s
    next
end
config vpn certificate local
    edit "VPN"
        set password ENC %s
        set private-key "-----BEGIN ENCRYPTED PRIVATE KEY-----
%s
-----END ENCRYPTED PRIVATE KEY-----"
        set certificate "-----BEGIN CERTIFICATE-----
MIIDpublicpart
end
-----END CERTIFICATE-----"
        set range global
    next
end
config vpn ipsec phase1-interface
    edit "to-branch"
        set psksecret ENC %s
    next
end
`

func fortiCapture(salts ...string) []byte {
	s := fortiShow
	for _, salt := range salts {
		s = strings.Replace(s, "%s", salt, 1)
	}
	return []byte(s)
}

func TestRedactFortiOS(t *testing.T) {
	r := testRedactor(t, "k")
	first := RedactFortiOS(r, fortiCapture("AAAA1111aaaa==", "BBBB2222bbbb==", "CCCC3333cccc==", "MIIKEYFIRSTSALT", "DDDD4444dddd=="))
	later := RedactFortiOS(r, fortiCapture("ZZZZ9999zzzz==", "YYYY8888yyyy==", "XXXX7777xxxx==", "MIIKEYSECONDSALT", "WWWW6666wwww=="))
	if !bytes.Equal(first, later) {
		t.Fatalf("re-encrypted secrets show as a change:\n%s\n---\n%s", first, later)
	}
	out := string(first)
	for _, secret := range []string{"AAAA1111aaaa==", "BBBB2222bbbb==", "CCCC3333cccc==", "MIIKEYFIRSTSALT", "DDDD4444dddd==", "SH2nlSGsqSM8Wjv", "n0t-Publ1c"} {
		if strings.Contains(out, secret) {
			t.Errorf("secret %q kept:\n%s", secret, out)
		}
	}
	// The same key under two entries gets two placeholders: the path differs.
	alice := r.PathPlaceholder("config user local\x00edit \"alice\"\x00set passwd")
	bob := r.PathPlaceholder("config user local\x00edit \"bob\"\x00set passwd")
	if alice == bob || !strings.Contains(out, "set passwd ENC "+alice+"\n") || !strings.Contains(out, "set passwd ENC "+bob+"\n") {
		t.Errorf("path placeholders:\n%s", out)
	}
	if !strings.Contains(alice, "rotation-not-visible") {
		t.Errorf("the placeholder does not say rotation is hidden: %s", alice)
	}
	// Password hashes and community names are stable: keyed on their value, so a change shows.
	if !strings.Contains(out, "set password ENC "+r.Placeholder([]byte("SH2nlSGsqSM8WjvXGs6Uyw4VUt1RFAqIUkUQU7dHflBEm0="))+"\n") {
		t.Errorf("SH2 hash not keyed on its value:\n%s", out)
	}
	if !strings.Contains(out, `set name "`+r.Placeholder([]byte("n0t-Publ1c"))+`"`) {
		t.Errorf("community:\n%s", out)
	}
	// The private key collapses to one line; the certificate (public, with a line reading
	// "end" inside it) is kept and does not close the config block.
	if !strings.Contains(out, `set private-key "`+r.PathPlaceholder("config vpn certificate local\x00edit \"VPN\"\x00set private-key")+`"`+"\n") {
		t.Errorf("private key:\n%s", out)
	}
	if !strings.Contains(out, "MIIDpublicpart\nend\n-----END CERTIFICATE-----\"") {
		t.Errorf("certificate changed:\n%s", out)
	}
	if !strings.Contains(out, "set psksecret ENC "+r.PathPlaceholder("config vpn ipsec phase1-interface\x00edit \"to-branch\"\x00set psksecret")) {
		t.Errorf("psksecret path:\n%s", out)
	}
	// A rotated password hash changes the line; redacting twice changes nothing.
	rotated := RedactFortiOS(r, bytes.Replace(fortiCapture("a", "b", "c", "d", "e"), []byte("SH2nlSGsq"), []byte("SH2xxxxxx"), 1))
	if bytes.Equal(rotated, first) {
		t.Error("a rotated admin password does not show")
	}
	if again := RedactFortiOS(r, first); !bytes.Equal(again, first) {
		t.Errorf("not idempotent:\n%s", again)
	}
}

func TestExtractMeta(t *testing.T) {
	s := Source{Name: "c", Command: []string{"show"}, Meta: []MetaRule{
		{Name: "changed_by", Pattern: `(?m)^! Last configuration change at .* by (\S+)$`},
		{Name: "changed_at", Pattern: `(?m)^! Last configuration change at (.+?)(?: by \S+)?$`},
		{Name: "whole", Pattern: `version \d+`},
		{Name: "absent", Pattern: `nothing here`},
		{Name: "messy", Pattern: `(?s)<d>(.*?)</d>`},
	}}
	if err := s.compile(); err != nil {
		t.Fatal(err)
	}
	in := "! Last configuration change at 14:02:11 CET Mon Jan 15 2024 by admin\nversion 15\n<d>two\nlines\x07 " + strings.Repeat("x", 400) + "</d>\n"
	m := s.extractMeta([]byte(in))
	if m["changed_by"] != "admin" || m["changed_at"] != "14:02:11 CET Mon Jan 15 2024" || m["whole"] != "version 15" {
		t.Errorf("meta %q", m)
	}
	if _, ok := m["absent"]; ok {
		t.Error("a rule that matched nothing gave a value")
	}
	if v := m["messy"]; !strings.HasPrefix(v, "two lines x") || len(v) > maxMetaValue {
		t.Errorf("messy value %q (%d bytes)", v, len(v))
	}
	if (&Source{}).extractMeta([]byte(in)) != nil {
		t.Error("a source without meta rules gave metadata")
	}
}

// TestMetaAfterRedaction: metadata is extracted from redacted output, so it never holds a
// secret, and from before normalisation, so a dropped line still gives its value.
func TestMetaAfterRedaction(t *testing.T) {
	p := mustProfile(t, `
[[profile]]
name = "t"
[[profile.source]]
name = "c"
command = ["show"]
drop = ['^# changed by ']
meta = [{name = "changed_by", pattern = '(?m)^# changed by (.*)$'}]
`)
	s := &p.Sources[0]
	content, meta := s.finish(testRedactor(t, "k"), []byte("# changed by admin password=hunter2-but-longer\nx\n"))
	if string(content) != "x\n" {
		t.Errorf("content %q", content)
	}
	if v := meta["changed_by"]; strings.Contains(v, "hunter2") || !strings.HasPrefix(v, "admin password=<redacted:") {
		t.Errorf("meta %q", v)
	}
}

func TestCompileDeviceErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"interactive without raw", `
[[profile]]
name = "x"
interactive = true
[[profile.source]]
name = "a"
command = ["show"]`, "interactive needs raw_commands = true"},
		{"bad prompt", `
[[profile]]
name = "x"
raw_commands = true
interactive = true
prompt = '[unclosed'
[[profile.source]]
name = "a"
command = ["show"]`, "prompt: error parsing regexp"},
		{"prompt matches empty", `
[[profile]]
name = "x"
raw_commands = true
interactive = true
prompt = '.*'
[[profile.source]]
name = "a"
command = ["show"]`, "matches an empty line"},
		{"pager_off without interactive", `
[[profile]]
name = "x"
raw_commands = true
pager_off = ["terminal length 0"]
[[profile.source]]
name = "a"
command = ["show"]`, "need interactive = true"},
		{"control character in pager_off", `
[[profile]]
name = "x"
raw_commands = true
interactive = true
pager_off = ["terminal length 0\nreload"]
[[profile.source]]
name = "a"
command = ["show"]`, "control character"},
		{"fallback in interactive", `
[[profile]]
name = "x"
raw_commands = true
interactive = true
[[profile.source]]
name = "a"
command = ["show"]
fallback = [["display"]]`, "fallback commands cannot run in an interactive session"},
		{"unknown redactor", `
[[profile]]
name = "x"
[[profile.source]]
name = "a"
command = ["show"]
redact_with = ["junos"]`, `redact_with: unknown redactor "junos" (known: cisco-snmp, fortios)`},
		{"bad meta name", `
[[profile]]
name = "x"
[[profile.source]]
name = "a"
command = ["show"]
meta = [{name = "Changed By", pattern = 'x'}]`, `name "Changed By"`},
		{"duplicate meta", `
[[profile]]
name = "x"
[[profile.source]]
name = "a"
command = ["show"]
meta = [{name = "a", pattern = 'x'}, {name = "a", pattern = 'y'}]`, `meta "a" is defined twice`},
		{"bad meta pattern", `
[[profile]]
name = "x"
[[profile.source]]
name = "a"
command = ["show"]
meta = [{name = "a", pattern = '(x'}]`, `meta "a": error parsing regexp`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadProfiles("p.toml", []byte(c.src))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// shellFake answers interactive sessions from a map and records what was sent.
type shellFake struct {
	transport.Fake
	lines  map[string]string
	setups [][]string
	prompt *regexp.Regexp
	enable string
	err    error
}

func (f *shellFake) RunShell(_ context.Context, sh transport.Shell, cmds []transport.Command) ([]transport.BatchResult, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.setups = append(f.setups, sh.Setup)
	f.prompt, f.enable = sh.Prompt, sh.Enable
	out := make([]transport.BatchResult, len(cmds))
	for i, c := range cmds {
		out[i].Result = &transport.Result{Stdout: []byte(f.lines[strings.Join(c.Argv, " ")])}
	}
	return out, nil
}

func TestCollectInteractive(t *testing.T) {
	p := mustProfile(t, `
[[profile]]
name = "dev"
raw_commands = true
interactive = true
pager_off = ["terminal length 0"]
enable = "enable"
[[profile.source]]
name = "config/running"
command = ["show", "running-config"]
normalise = ["cli"]
drop = ['^! Last configuration change']
meta = [{name = "changed_by", pattern = '(?m)^! Last configuration change .* by (\S+)\s*$'}]
[[profile.source]]
name = "system/version"
command = ["show", "version"]
`)
	f := &shellFake{lines: map[string]string{
		"show running-config": "! Last configuration change at 10:00 by jdoe\r\nhostname r1\r\nsnmp-server community s3cr3tCommunity RO\r\n",
		"show version":        "IOS 15.7\n",
	}}
	c, err := Collect(t.Context(), f, "r1", []*Profile{p}, testRedactor(t, "k"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Ran()) != 0 {
		t.Errorf("commands ran outside the interactive session: %q", f.Ran())
	}
	if len(f.setups) != 1 || strings.Join(f.setups[0], "|") != "terminal length 0" || f.prompt.String() != DefaultPrompt || f.enable != "enable" {
		t.Errorf("sessions %q, prompt %v, enable %q", f.setups, f.prompt, f.enable)
	}
	run := c.Artifacts[0]
	if run.Name != "config/running" || !strings.HasPrefix(string(run.Content), "hostname r1\nsnmp-server community <redacted:") || run.Meta["changed_by"] != "jdoe" {
		t.Errorf("artifact %+v", run)
	}
	if string(c.Artifacts[1].Content) != "IOS 15.7\n" {
		t.Errorf("version %q", c.Artifacts[1].Content)
	}

	f.err = errors.New("no prompt")
	if _, err := Collect(t.Context(), f, "r1", []*Profile{p}, testRedactor(t, "k"), Options{}); err == nil || !strings.Contains(err.Error(), "profile dev: no prompt") {
		t.Errorf("a failed session: %v", err)
	}
	if _, err := Collect(t.Context(), transport.NewLocal(), "local", []*Profile{p}, testRedactor(t, "k"), Options{}); err == nil || !strings.Contains(err.Error(), "needs an interactive CLI session") {
		t.Errorf("a transport without sessions: %v", err)
	}
}

func TestBuiltinDeviceProfiles(t *testing.T) {
	b, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cisco-ios", "cisco-asa", "fortigate", "junos", "mikrotik", "pfsense", "panos", "cisco-nxos", "arista-eos", "checkpoint-gaia", "huawei-vrp"} {
		p := b[name]
		if p == nil {
			t.Errorf("no built-in profile %q", name)
			continue
		}
		if p.RawCommands == (name == "pfsense") {
			t.Errorf("%s: raw_commands %v", name, p.RawCommands)
		}
		names := map[string]bool{}
		for _, s := range p.Sources {
			names[s.Name] = true
		}
		if !names["config/running"] {
			t.Errorf("%s: no config/running source", name)
		}
	}
}

// TestDeviceRedaction runs each device profile's redaction on lines that hold a secret (which
// must go) and lines that only look like one (which must stay as they are).
func TestDeviceRedaction(t *testing.T) {
	b, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	r := testRedactor(t, "k")
	cases := []struct {
		profile, source string
		secret          []string // lines whose secrets must be gone: each secret is a part in «»
		keep            []string // lines that must stay unchanged
	}{
		{"cisco-ios", "config/running", []string{
			"enable secret 9 «$9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM»",
			"username backup privilege 1 password 7 «0822455D0A16»",
			"  key-string 7 «110A1016141D5A5E57»",
			" key 7 «045802150C2E1D1C5A»",
			" key «PlainTacacsKey»",
			"tacacs-server key 7 «0822455D0A16»",
			"radius-server host 10.0.0.5 auth-port 1812 key 7 «0822455D0A16»",
			"crypto isakmp key 6 «aG\\bEf_eWD]^cEaRTPVUaJMMD`gDFAAB» address 198.51.100.20",
			"crypto isakmp key «cisco123» address 0.0.0.0",
			"  pre-shared-key local 6 «YXhSI[^KZ_bKBd`FgOGEJfYNHQ]AAB»",
			"  pre-shared-key address 203.0.113.10 key 6 «YXhSI[^KZ_bKBd`FgOGEJfYNHQ]AAB»",
			" ip ospf authentication-key 7 «0822455D0A16»",
			" ip ospf message-digest-key 1 md5 7 «0822455D0A16»",
			"ntp authentication-key 1 md5 «0822455D0A16» 7",
			"snmp-server community «s3cr3tRO» RO ACL-SNMP",
			"snmp-server host 10.10.5.20 vrf Mgmt-intf version 2c «s3cr3tRO»",
			" password «cisco»",
			"  wpa-psk ascii 7 «0822455D0A16»",
		}, []string{
			"service password-encryption",
			"password encryption aes",
			"security passwords min-length 10",
			"key chain OSPF-KEYS",
			" key 1",
			"ntp server vrf Mgmt-intf 10.10.1.123 key 1 prefer",
			"ntp trusted-key 1",
			"crypto key pubkey-chain rsa",
			"  key-string",
			"snmp-server host 10.10.5.20 version 3 priv monitor",
		}},
		{"cisco-asa", "config/running", []string{
			"enable password «$sha512$5000$abcdefghijklmnopqrstuv==$ABCDEFGHIJKLMNOPQRSTUV==» pbkdf2",
			"username admin password «8Ry2YjIyt7RRXU24» encrypted privilege 15",
			"passwd «2KFQnbNIdI.2KYOU» encrypted",
			" ikev1 pre-shared-key «PlainPsk123»",
			"failover key «FailoverKey1»",
		}, []string{
			" ikev2 remote-authentication pre-shared-key *****",
			" key *****",
			"snmp-server community *****",
			"access-list outside_access_in extended permit tcp any object WEB eq https",
		}},
		{"junos", "config/running", []string{
			`        secret "«$9$W8N/h4tFYGRWKn84dBNnuL.ZPS»"; ## SECRET-DATA`,
			`        encrypted-password "«$6$lZalmQrY$mc9lawxysqM0IfJRAjgIm242uXoBLdPSGz1B7E3HGNz»"; ## SECRET-DATA`,
			`    community «Br4nch-R0» {`,
			`                authentication-key "«$9$abcdefghij»"; ## SECRET-DATA`,
		}, []string{
			`            ssh-ed25519 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVq admin@jump01";`,
			`    community-name-is-not-a-block;`,
		}},
		{"junos", "config/set", []string{
			`set snmp community «Br4nch-R0» authorization read-only`,
			`set system tacplus-server 10.10.1.31 secret "«$9$W8N/h4tFYGRWKn84dBNnuL.ZPS»"`,
			`set snmp v3 usm local-engine user mon authentication-sha256 authentication-key "«abc123secret»"`,
		}, nil},
		{"mikrotik", "config/running", []string{
			`/ppp secret add name=hq-link password="«Hq Link Pass 2024»" profile=vpn-profile service=l2tp`,
			`/interface wireguard add listen-port=13231 mtu=1420 name=wg0 private-key="«yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=»"`,
			`/interface wireguard peers add allowed-address=10.0.0.2/32 interface=wg0 preshared-key="«QmFzZTY0UHJlc2hhcmVkS2V5»" public-key="Bm9xXkqW7A9vQaDUwXwF1v0AzF0WgE7vv3O9rA6zPHk="`,
			`/snmp community set [ find default=yes ] addresses=10.10.5.0/24 name=«Mk-R0-community»`,
			`/interface wireless security-profiles add mode=dynamic-keys name=staff wpa2-pre-shared-key=«Staff-WiFi!x»`,
		}, []string{
			`/interface wireguard peers add allowed-address=10.0.0.2/32 interface=wg0 public-key="Bm9xXkqW7A9vQaDUwXwF1v0AzF0WgE7vv3O9rA6zPHk="`,
			`/ip service set ssh address=10.10.5.0/24`,
		}},
		{"pfsense", "config/running", []string{
			"\t\t\t<bcrypt-hash>«$2y$10$abcdefghijklmnopqrstuuJ1hL8hS2KkKsdhsd87sdhGhs8sd»</bcrypt-hash>",
			"\t\t\t<pre-shared-key>«pfS-IPsec-PSK»</pre-shared-key>",
			"\t\t<prv>«LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t»</prv>",
			"\t\t\t<password><![CDATA[«Smtp Pass <with> brackets»]]></password>",
			"\t\t<rocommunity>«public-ish»</rocommunity>",
			"\t\t\t<xmldata>«LS0tLS1CRUdJTiBPUEVOU1NI»</xmldata>",
		}, []string{
			"\t\t<crt>LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t</crt>",
			"\t\t\t<private-key></private-key>",
			"\t\t\t<authorizedkeys>c3NoLWVkMjU1MTkg</authorizedkeys>",
		}},
		{"panos", "config/running", []string{
			"        <phash>«$5$abcdefgh$ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq»</phash>",
			"                  <key>«-AQ==Gz6Qlj06wIjT6uLnTznJ7WpdE6E=8E9aEhwHVc9p3gnJldaYzA==»</key>",
			"        <private-key>«-AQ==abc=def»</private-key>",
			"                  <snmp-community-string>«PA-r0»</snmp-community-string>",
			"                      <authentication-key>«-AQ==xyz=uvw»</authentication-key>",
		}, []string{
			"        <public-key>c3NoLWVkMjU1MTkg</public-key>",
			"              <key-id>1</key-id>",
		}},
		{"panos", "config/running", []string{
			"                  <community>«PA-Trap»</community>",
			"                  <auth-code>«I7654321»</auth-code>",
		}, []string{
			"                  <manager>10.10.5.20</manager>",
			"                  <value>application/json</value>",
		}},
		{"cisco-ios", "config/running", []string{
			"snmp-server host 10.10.5.22 «V1-Comm»",
			"snmp-server host 10.10.5.23 traps «Trap-Comm» udp-port 1162",
			"snmp-server community «View-Comm» view MGMT RO 10",
			"snmp-server user mon NETOPS v3 auth sha «AuthPass1» priv aes 128 «PrivPass1»",
			"snmp mib community-map «Map-Comm» context vlan-10",
		}, []string{
			"snmp-server host 10.10.5.24 informs version 3 priv snmpv3-mon",
			"snmp-server group NETOPS v3 priv read MGMT-VIEW",
		}},
		{"cisco-asa", "config/running", []string{
			"snmp-server host management 10.10.5.25 trap community 8 «QXNhLUVu» version 2c",
			"snmp-server user mon NETOPS v3 engineID 80 encrypted auth sha256 «4a:8b:12» priv aes 256 «9c:11»",
		}, []string{"snmp-server host management 10.10.5.24 version 3 snmpv3-mon"}},
		{"junos", "config/running", []string{
			"    trap-group «Jn-Trap» {",
			"    inactive: community «Jn-Old» {",
			`    community «"Jn Quoted"» {`,
		}, []string{"    trap-options {"}},
		{"junos", "config/set", []string{
			"set groups global snmp community «Jn-Grp» authorization read-only",
			"deactivate snmp community «Jn-Old»",
			"set snmp trap-group «Jn-Trap» targets 10.10.5.20",
		}, []string{"set snmp location \"Branch 1\""}},
		{"mikrotik", "config/running", []string{
			"/snmp set enabled=yes trap-community=«Mk-Trap» trap-target=10.10.5.20",
			"/routing bgp connection add as=65040 name=isp1 tcp-md5-key=«Mk-Md5»",
			"/routing ospf interface-template add area=backbone auth=md5 auth-key=«Mk-Ospf» interfaces=ether2",
		}, nil},
		{"pfsense", "config/running", []string{
			"\t\t<trapstring>«pf-trap»</trapstring>",
			"\t\t\t<oinkmastercode>«9f4c2e71»</oinkmastercode>",
			"\t\t\t<maxmind_key>«Kx72Qw»</maxmind_key>",
		}, []string{"\t\t\t<rule_update_starttime>00:05</rule_update_starttime>"}},
		{"fortigate", "config/running", []string{
			`        set activation-code "«A1B2C3»"`,
			`        set license "«FTMTRIAL5»"`,
		}, []string{`        set activation-expire 1706000000`, `        set accprofile "read_only"`}},
		{"cisco-nxos", "config/running", []string{
			"username admin password 5 «$5$KJHGHN$3v7Qe9»  role network-admin",
			`tacacs-server key 7 «"Nx-Tacacs"»`,
			`tacacs-server host 10.10.1.31 key 7 «"Nx-TacHost"»`,
			`radius-server host 10.10.1.41 key 7 «"Nx-Radius"» authentication accounting`,
			"snmp-server community «Nx-R0» group network-operator",
			"snmp-server user admin network-admin auth md5 «0x8c2f» priv aes-128 «0x4e1a» localizedkey",
			"snmp-server host 10.10.5.20 traps version 2c «Nx-Trap»",
			"    key-string 7 «Nx-Chain»",
			"    authentication md5 key-string «Nx-Hsrp»",
			"  ip ospf authentication-key 3 «Nx-Ospf»",
			"ntp authentication-key 1 md5 «Nx-Ntp» 7",
			"    password 3 «9125d59c18a9b015»",
		}, []string{
			"snmp-server host 10.10.5.20 use-vrf management",
			"snmp-server host 10.10.5.22 informs version 3 priv admin",
			"ntp server 10.10.1.123 key 1 use-vrf management",
			"ntp trusted-key 1",
			"no password strength-check",
			"  ip ospf authentication message-digest",
		}},
		{"arista-eos", "config/running", []string{
			"username admin privilege 15 role network-admin secret sha512 «$6$Ar1sta$G7h»",
			"aaa root secret sha512 «$6$Ar1sta$P0o»",
			"enable password sha512 «$6$Ar1sta$Z9x»",
			"snmp-server community «Eos-R0» ro ACL-SNMP",
			"snmp-server user mon NETOPS v3 localized f571 auth sha «b3a9» priv aes «f1e2»",
			"snmp-server host 10.10.5.20 vrf MGMT version 2c «Eos-Trap»",
			"tacacs-server host 10.10.1.31 vrf MGMT key 7 «070C285F»",
			"ntp authentication-key 1 md5 7 «1513090F»",
			"   ip ospf message-digest-key 1 md5 7 «13061E01»",
			"   isis authentication key 7 «0822455D»",
			"   neighbor LEAVES password 7 «0207165218»",
			"   exec /usr/bin/TerminAttr -cvaddr=10.10.5.40:9910 -cvauth=key,«Eos-Cv» -cvvrf=MGMT",
			"      secret 0 key-1 «Eos-Api» receive-lifetime infinite transmit-lifetime infinite",
		}, []string{
			"snmp-server host 10.10.5.22 vrf MGMT version 3 priv snmpv3-mon",
			"ntp server vrf MGMT 10.10.1.123 key 1",
			"   exec /usr/bin/TerminAttr -cvaddr=10.10.5.40:9910 -cvauth=token,/tmp/token -cvvrf=MGMT",
			"username hardtrail privilege 1 role network-operator nopassword",
			"   password minimum length 12",
		}},
		{"checkpoint-gaia", "config/running", []string{
			"set user admin password-hash «$6$rounds=10000$GaiaSaltA01$h7G»",
			"set expert-password-hash «$6$rounds=10000$GaiaSaltC03$Mn1»",
			"set snmp community «Gaia-R0» read-only",
			"add snmp traps receiver 10.10.5.20 version v2 community «Gaia-Trap»",
			"add snmp usm user mon security-level authPriv auth-pass-type SHA1 auth-pass-hash «0x6c1f» privacy-pass-type AES128 privacy-pass-hash «0x9a8b»",
			"add aaa tacacs-servers priority 1 server 10.10.1.31 key «Gaia-Tac» timeout 5",
			"add aaa radius-servers priority 1 host 10.10.1.41 port 1812 prefix-length 32 secret «Gaia-Rad» timeout 3",
			"set ospf interface eth1 authtype md5 key 1 secret «Gaia-Ospf»",
			"set bgp external remote-as 65100 peer 203.0.113.1 authtype md5 secret «Gaia-Bgp»",
			"set vrrp interface eth1 authtype simple «Gaia-Vrrp»",
			"set cloud-services connect auth-token «Gaia-Tok»",
		}, []string{
			"set user netops password-hash *",
			"add snmp traps receiver 10.10.5.22 version v3",
			"set password-controls min-password-length 12",
			"set aaa tacacs-servers state on",
		}},
		{"huawei-vrp", "config/running", []string{
			"super password level 15 cipher «%^%#Hw1@Su2%^%#»",
			" hwtacacs-server shared-key cipher «%^%#Hw6@Ta7%^%#»",
			" local-user admin password irreversible-cipher «$1c$Hw5aLtA01$3kL9$»",
			" local-user guest password cipher «%@%@Gu3st%@%@»",
			"snmp-agent community read «Hw-Plain» mib-view iso-view",
			"snmp-agent community write cipher «%^%#Ab1@Cd2%^%#» acl 2000",
			"snmp-agent target-host trap address udp-domain 10.10.5.20 params securityname «Hw-Trap» v2c",
			"snmp-agent target-host trap address udp-domain 10.10.5.20 params securityname cipher «%^%#Tr4p%^%#» v2c",
			" peer 10.253.1.2 password cipher «%$%$Bgp1%$%$»",
		}, []string{
			"ssh server cipher aes256_ctr aes128_ctr",
			"snmp-agent target-host trap address udp-domain 10.10.5.22 params securityname snmpv3-mon v3 privacy",
			"snmp-agent sys-info version v2c v3",
			"ntp-service authentication enable",
		}},
	}
	for _, c := range cases {
		p := b[c.profile]
		var s *Source
		for i := range p.Sources {
			if p.Sources[i].Name == c.source {
				s = &p.Sources[i]
			}
		}
		if s == nil {
			t.Fatalf("%s has no source %s", c.profile, c.source)
		}
		for _, l := range c.secret {
			var in, want string
			for rest := l; ; {
				i, j := strings.Index(rest, "«"), strings.Index(rest, "»")
				if i < 0 || j < i {
					in, want = in+rest, want+rest
					break
				}
				secret := rest[i+len("«") : j]
				in += rest[:i] + secret
				want += rest[:i] + r.Placeholder([]byte(secret))
				rest = rest[j+len("»"):]
			}
			if got := string(s.redactAll(r, []byte(in+"\n"))); got != want+"\n" {
				t.Errorf("%s %s:\n  in:   %s\n  got:  %s  want: %s", c.profile, c.source, in, got, want)
			}
		}
		for _, l := range c.keep {
			if got := string(s.redactAll(r, []byte(l+"\n"))); got != l+"\n" {
				t.Errorf("%s %s changed a line without a secret:\n  in:  %s\n  got: %s", c.profile, c.source, l, got)
			}
		}
	}
}

func TestIsMask(t *testing.T) {
	for in, want := range map[string]bool{"*****": true, "***": true, "**": false, "**x**": false, "": false} {
		if got := isMask([]byte(in)); got != want {
			t.Errorf("isMask(%q) = %v", in, got)
		}
	}
}

// FuzzRedactFortiOS: any output is accepted, redaction is idempotent, and a line that held an
// ENC value no longer holds it.
func FuzzRedactFortiOS(f *testing.F) {
	f.Add(fortiCapture("AAAA", "BBBB", "CCCC", "DDDD", "EEEE"))
	if b, err := os.ReadFile(filepath.Join("..", "testdata", "devices", "fortigate", "capture-1", "show_grep_..txt")); err == nil {
		f.Add(b)
	}
	f.Add([]byte("set x \"\nconfig a\nend\nnext\nend\nset psksecret ENC \"q\"\n"))
	r, err := NewRedactor([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	encRE := regexp.MustCompile(`(?m)^\s*set \S+ ENC (\S+)`)
	f.Fuzz(func(t *testing.T, in []byte) {
		out := RedactFortiOS(r, in)
		if again := RedactFortiOS(r, out); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n%q\n%q", out, again)
		}
		for _, m := range encRE.FindAllSubmatch(out, -1) {
			if !bytes.HasPrefix(bytes.Trim(m[1], `"`), []byte(placeholderPrefix)) {
				t.Fatalf("ENC value kept: %q in %q", m[0], out)
			}
		}
	})
}

// FuzzDeviceSources runs a device source's redaction, metadata and normalisation (the fuzzer
// picks the source) on any input: nothing panics, and metadata stays short and on one line.
func FuzzDeviceSources(f *testing.F) {
	b, err := Builtin()
	if err != nil {
		f.Fatal(err)
	}
	var sources []*Source
	for _, name := range []string{"cisco-ios", "cisco-asa", "fortigate", "junos", "mikrotik", "pfsense", "panos", "cisco-nxos", "arista-eos", "checkpoint-gaia", "huawei-vrp"} {
		for i := range b[name].Sources {
			sources = append(sources, &b[name].Sources[i])
		}
	}
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "devices", "*", "capture-1", "*.txt"))
	for i, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(uint8(i), data[:min(len(data), 4096)])
		}
	}
	f.Add(uint8(0), []byte("! Last configuration change at x by \x00\n<revision><username>\xff</username></revision>\n"))
	r, err := NewRedactor([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, which uint8, in []byte) {
		s := sources[int(which)%len(sources)]
		_, meta := s.finish(r, in)
		for k, v := range meta {
			if len(v) > maxMetaValue || strings.ContainsAny(v, "\n\r\x00") || v == "" {
				t.Fatalf("%s: meta %s = %q", s.Name, k, v)
			}
		}
	})
}

// BenchmarkDeviceConfig measures redaction, metadata and normalisation of each device's
// running configuration (capture 1), in bytes of raw output per second.
func BenchmarkDeviceConfig(b *testing.B) {
	profiles, err := Builtin()
	if err != nil {
		b.Fatal(err)
	}
	r := testRedactor(b, "k")
	for _, c := range []struct{ profile, file string }{
		{"cisco-ios", "show_running-config.txt"}, {"cisco-asa", "show_running-config.txt"},
		{"fortigate", "show_grep_..txt"}, {"junos", "show_configuration_no-more.txt"},
		{"mikrotik", "export_terse.txt"}, {"pfsense", "root/conf/config.xml"}, {"panos", "show_config_running.txt"},
	} {
		in, err := os.ReadFile(filepath.Join("..", "testdata", "devices", c.profile, "capture-1", c.file))
		if err != nil {
			b.Fatal(err)
		}
		s := &profiles[c.profile].Sources[0]
		b.Run(c.profile, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				s.finish(r, in)
			}
		})
	}
}

func TestRedactCiscoSNMPHosts(t *testing.T) {
	r := testRedactor(t, "k")
	p := func(s string) string { return r.Placeholder([]byte(s)) }
	cases := []struct{ in, want string }{
		{"snmp-server host 10.1.1.1 C1\n", "snmp-server host 10.1.1.1 " + p("C1") + "\n"},
		{"snmp-server host 10.1.1.1 traps C2 udp-port 1162 config\n", "snmp-server host 10.1.1.1 traps " + p("C2") + " udp-port 1162 config\n"},
		{"snmp-server host 10.1.1.1 vrf Mgmt-intf version 2c C3\n", "snmp-server host 10.1.1.1 vrf Mgmt-intf version 2c " + p("C3") + "\n"},
		{"snmp-server host 10.1.1.1 informs version 1 C4\r\n", "snmp-server host 10.1.1.1 informs version 1 " + p("C4") + "\r\n"},
		{"snmp-server host 10.1.1.1 traps version 2c C5 udp-port 162 use-vrf management\n", "snmp-server host 10.1.1.1 traps version 2c " + p("C5") + " udp-port 162 use-vrf management\n"},
		// v3 names a user, kept readable; a mask or an empty community is left alone.
		{"snmp-server host 10.1.1.1 informs version 3 priv snmpv3-mon\n", "snmp-server host 10.1.1.1 informs version 3 priv snmpv3-mon\n"},
		{"snmp-server host 10.1.1.1 version 2c *****\n", "snmp-server host 10.1.1.1 version 2c *****\n"},
		{"snmp-server host 10.1.1.1\nsnmp-server host 10.1.1.1 traps\n", "snmp-server host 10.1.1.1\nsnmp-server host 10.1.1.1 traps\n"},
		// The community may repeat a word seen earlier on the line.
		{"snmp-server host 10.1.1.1 traps traps\n", "snmp-server host 10.1.1.1 traps " + p("traps") + "\n"},
		{"snmp-server location 10.1.1.1 C6\n", "snmp-server location 10.1.1.1 C6\n"},
		{"snmp-server host 10.1.1.1 use-vrf management\n", "snmp-server host 10.1.1.1 use-vrf management\n"},
	}
	for _, c := range cases {
		if got := string(RedactCiscoSNMPHosts(r, []byte(c.in))); got != c.want {
			t.Errorf("RedactCiscoSNMPHosts(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestNormalisePfsenseVolatile(t *testing.T) {
	in := "<pfsense>\n\t<revision>\n\t\t<time>1</time>\n\t</revision>\n\t<filter>\n\t\t<rule>\n\t\t\t<created><time>5</time></created>\n" +
		"\t\t\t<updated>\n\t\t\t\t<time>6</time>\n\t\t\t</updated>\n\t\t</rule>\n\t</filter>\n\t<installedpackages>\n\t\t<snortglobal>\n" +
		"\t\t\t<last_rule_upd_status>success</last_rule_upd_status><last_rule_upd_time>7</last_rule_upd_time>\n\t\t</snortglobal>\n" +
		"\t\t<pkg><revision><time>8</time></revision><name>x</name></pkg>\n\t</installedpackages>\n</pfsense>\n"
	want := "<pfsense>\n\t<filter>\n\t\t<rule>\n\t\t\t<created><time>5</time></created>\n\t\t</rule>\n\t</filter>\n\t<installedpackages>\n" +
		"\t\t<snortglobal>\n\t\t</snortglobal>\n\t\t<pkg><name>x</name></pkg>\n\t</installedpackages>\n</pfsense>\n"
	if got := string(NormalisePfsenseRevision([]byte(in))); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
