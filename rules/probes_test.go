package rules

import (
	"fmt"
	"strings"
	"testing"
)

type probeCase struct {
	name    string
	facts   Facts
	head    string // extra rule keys
	probe   string
	outcome Outcome
	message string // substring of the message
}

func runProbeCases(t *testing.T, cases []probeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := evalOne(t, oneRule(t, tc.head, tc.probe), tc.facts)
			if r.Outcome != tc.outcome || !strings.Contains(r.Message, tc.message) {
				t.Errorf("got %s %q (expected %q, actual %q)\nwant %s containing %q", r.Outcome, r.Message, r.Expected, r.Actual, tc.outcome, tc.message)
			}
		})
	}
}

func TestSSHDProbe(t *testing.T) {
	web, legacy := loadHost(t, "web-01"), loadHost(t, "legacy-01")
	runProbeCases(t, []probeCase{
		{"equals pass", web, "", "[rule.sshd]\noption = \"permitrootlogin\"\nequals = \"no\"", Pass, "permitrootlogin is no"},
		{"equals fail", legacy, "", "[rule.sshd]\noption = \"permitrootlogin\"\nequals = \"no\"", Fail, "permitrootlogin is yes, want no"},
		{"equals ignores case", web, "", "[rule.sshd]\noption = \"loglevel\"\nequals = \"verbose\"", Pass, "loglevel is VERBOSE"},
		{"one_of", legacy, "", "[rule.sshd]\noption = \"loglevel\"\none_of = [\"VERBOSE\", \"INFO\"]", Pass, "loglevel is INFO"},
		{"not_equals fail", legacy, "", "[rule.sshd]\noption = \"banner\"\nnot_equals = \"none\"", Fail, "banner is none"},
		{"not_equals pass", web, "", "[rule.sshd]\noption = \"banner\"\nnot_equals = \"none\"", Pass, "banner is /etc/issue.net"},
		{"integer equals", web, "", "[rule.sshd]\noption = \"clientalivecountmax\"\nequals = 2", Pass, "is 2"},
		{"max pass", web, "", "[rule.sshd]\noption = \"maxauthtries\"\nmax = 4", Pass, "maxauthtries is 3"},
		{"max fail", legacy, "", "[rule.sshd]\noption = \"maxauthtries\"\nmax = 4", Fail, "maxauthtries is 6, above 4"},
		{"time value in seconds", legacy, "", "[rule.sshd]\noption = \"logingracetime\"\nmax = 60", Fail, "is 120, above 60"},
		{"range", legacy, "", "[rule.sshd]\noption = \"clientaliveinterval\"\nmin = 1\nmax = 900", Fail, "is 0, below 1"},
		{"matches", web, "", "[rule.sshd]\noption = \"maxstartups\"\nmatches = '^([1-9]|10):([3-9][0-9]|100):([1-9]|[1-5][0-9]|60)$'", Pass, "maxstartups is 10:30:60"},
		{"matches fail", legacy, "", "[rule.sshd]\noption = \"maxstartups\"\nmatches = '^([1-9]|10):([3-9][0-9]|100):([1-9]|[1-5][0-9]|60)$'", Fail, "10:30:100, which does not match"},
		{"excludes globs", legacy, "", "[rule.sshd]\noption = \"ciphers\"\nexcludes = [\"*-cbc\", \"arcfour*\", \"3des*\"]", Fail, "ciphers offers aes128-cbc, aes256-cbc, 3des-cbc"},
		{"excludes pass", web, "", "[rule.sshd]\noption = \"ciphers\"\nexcludes = [\"*-cbc\", \"arcfour*\", \"3des*\"]", Pass, "ciphers excludes"},
		{"excludes macs", legacy, "", "[rule.sshd]\noption = \"macs\"\nexcludes = [\"hmac-md5*\", \"hmac-sha1*\", \"umac-64*\"]", Fail, "macs offers hmac-md5, hmac-sha1-etm@openssh.com, hmac-sha1, hmac-sha1-96, umac-64-etm@openssh.com, umac-64@openssh.com"},
		{"contains", web, "", "[rule.sshd]\noption = \"kexalgorithms\"\ncontains = [\"curve25519-sha256\"]", Pass, ""},
		{"contains fail", web, "", "[rule.sshd]\noption = \"ciphers\"\ncontains = [\"aes256-cbc\"]", Fail, "lacks aes256-cbc"},
		{"repeated keyword", web, "", "[rule.sshd]\noption = \"hostkey\"\nmatches = '^/etc/ssh/ssh_host_'", Pass, "hostkey matches"},
		{"repeated keyword fails on one", web, "", "[rule.sshd]\noption = \"hostkey\"\nnot_equals = \"/etc/ssh/ssh_host_rsa_key\"", Fail, "hostkey is /etc/ssh/ssh_host_rsa_key"},
		{"unknown option", web, "", "[rule.sshd]\noption = \"challengeresponseauthentication\"\nequals = \"no\"", Error, "has no option challengeresponseauthentication"},
		{"not a number", web, "", "[rule.sshd]\noption = \"banner\"\nmax = 3", Error, "banner is /etc/issue.net, not a number"},
		{"not captured", NewMemFacts("h"), "", "[rule.sshd]\noption = \"permitrootlogin\"\nequals = \"no\"", Error, "artifact sshd/effective was not captured"},
		{"unavailable", NewMemFacts("h", Artifact{Name: "sshd/effective", Unavailable: "sshd: command not found"}), "",
			"[rule.sshd]\noption = \"permitrootlogin\"\nequals = \"no\"", Error, "unavailable: sshd: command not found"},
		{"sshd -T failed", NewMemFacts("h", Artifact{Name: "sshd/effective", Command: []string{"sshd", "-T"}, ExitCode: 255}), "",
			"[rule.sshd]\noption = \"permitrootlogin\"\nequals = \"no\"", Error, "sshd exited 255 with no output"},
		{"truncated", NewMemFacts("h", Artifact{Name: "sshd/effective", Command: []string{"sshd", "-T"}, Content: []byte("permitrootlogin no\n"), Truncated: true}), "",
			"[rule.sshd]\noption = \"permitrootlogin\"\nequals = \"no\"", Error, "was truncated"},
	})
}

func TestSSHDNumber(t *testing.T) {
	for in, want := range map[string]int64{"120": 120, "2m": 120, "1h30m": 5400, "90s": 90, "1w": 604800, "1d2h": 93600, "10M": 600} {
		if got, err := sshdNumber(in); err != nil || got != want {
			t.Errorf("sshdNumber(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "none", "2x", "m5", "10:30:100"} {
		if _, err := sshdNumber(in); err == nil {
			t.Errorf("sshdNumber(%q) succeeded", in)
		}
	}
}

func TestPortProbe(t *testing.T) {
	web, legacy := loadHost(t, "web-01"), loadHost(t, "legacy-01")
	runProbeCases(t, []probeCase{
		{"telnet closed", web, "", "[rule.port]\nport = 23\nstate = \"closed\"", Pass, "tcp port 23 is closed"},
		{"telnet open", legacy, "", "[rule.port]\nport = 23\nstate = \"closed\"", Fail, "tcp port 23 is listening on 0.0.0.0:23 (inetutils-inetd)"},
		{"tftp udp", legacy, "", "[rule.port]\nport = 69\nprotocol = \"udp\"\nstate = \"closed\"", Fail, "udp port 69 is listening on 0.0.0.0:69 (in.tftpd)"},
		{"udp is not tcp", legacy, "", "[rule.port]\nport = 69\nstate = \"closed\"", Pass, "closed"},
		{"ssh listening both families", web, "", "[rule.port]\nport = 22\nstate = \"listening\"", Pass, "0.0.0.0:22 (sshd), [::]:22 (sshd)"},
		{"loopback only smtp", web, "", "[rule.port]\nport = 25\naddress = \"0.0.0.0\"\nstate = \"closed\"", Pass, "closed"},
		{"specific address reached by wildcard", web, "", "[rule.port]\nport = 22\naddress = \"10.20.1.5\"\nstate = \"listening\"", Pass, "0.0.0.0:22"},
		{"ipv6 address reached by [::]", web, "", "[rule.port]\nport = 22\naddress = \"2001:db8::5\"\nstate = \"listening\"", Pass, "[::]:22"},
		{"dual-stack *", web, "", "[rule.port]\nport = 9100\naddress = \"192.0.2.1\"\nstate = \"listening\"", Pass, "*:9100"},
		{"interface suffix", web, "", "[rule.port]\nport = 53\naddress = \"127.0.0.53\"\nstate = \"listening\"", Pass, "127.0.0.53%lo:53"},
		{"not on other address", web, "", "[rule.port]\nport = 25\naddress = \"10.0.0.1\"\nstate = \"closed\"", Pass, "closed"},
		{"unavailable", NewMemFacts("h", Artifact{Name: "net/listening", Unavailable: "ss: not permitted"}), "", "[rule.port]\nport = 23\nstate = \"closed\"", Error, "unavailable"},
	})
}

func TestPackageProbe(t *testing.T) {
	web, legacy := loadHost(t, "web-01"), loadHost(t, "legacy-01")
	rpm := NewMemFacts("rh", Artifact{Name: "packages/installed", Command: []string{"rpm", "-qa"},
		Content: []byte("openssh-server\t0:8.7p1-38.el9_4.1\tx86_64\tii\nxz\t0:5.2.5-8.el9_0\tx86_64\tii\n")})
	unknown := NewMemFacts("x", Artifact{Name: "packages/installed", Command: []string{"apk", "info"}, Content: []byte("openssh-server\t9.6\tx86_64\tii\n")})
	multi := NewMemFacts("m", Artifact{Name: "packages/installed", Command: []string{"dpkg-query"},
		Content: []byte("libc6\t2.36-9+deb12u14\tamd64\tii \nlibc6\t2.36-9+deb12u1\ti386\tii \n")})
	runProbeCases(t, []probeCase{
		{"patched", web, "", "[rule.package]\nname = \"openssh-server\"\nmin_version = \"1:9.2p1-2+deb12u3\"", Pass, "openssh-server 1:9.2p1-2+deb12u10 is >= 1:9.2p1-2+deb12u3 when installed"},
		{"unpatched", legacy, "", "[rule.package]\nname = \"openssh-server\"\nmin_version = \"1:9.2p1-2+deb12u3\"", Fail, "1:9.2p1-2+deb12u2 is older than 1:9.2p1-2+deb12u3"},
		{"not installed is not vulnerable", web, "", "[rule.package]\nname = \"telnetd\"\nmin_version = \"1\"", Pass, "telnetd is not installed"},
		{"rc is not installed", legacy, "", "[rule.package]\nname = \"telnetd\"\nstate = \"absent\"", Pass, `not installed (status "rc")`},
		{"absent fails", legacy, "", "[rule.package]\nname = \"vsftpd\"\nstate = \"absent\"", Fail, "vsftpd is installed (3.0.3-13+b2)"},
		{"installed fails", web, "", "[rule.package]\nname = \"auditd\"\nstate = \"installed\"", Fail, "auditd is not installed"},
		{"max_version", web, "", "[rule.package]\nname = \"liblzma5\"\nmax_version = \"5.4.99\"", Pass, ""},
		{"not_between pass", web, "", "[rule.package]\nname = \"xz-utils\"\nnot_between = [\"5.6.0\", \"5.6.1-1\"]", Pass, "xz-utils 5.4.1-1 is not in [5.6.0, 5.6.1-1]"},
		{"not_between backdoored", NewMemFacts("s", Artifact{Name: "packages/installed", Command: []string{"dpkg-query"}, Content: []byte("xz-utils\t5.6.1-1\tamd64\tii \n")}),
			"", "[rule.package]\nname = \"xz-utils\"\nnot_between = [\"5.6.0\", \"5.6.1-1\"]", Fail, "5.6.1-1 is within [5.6.0, 5.6.1-1]"},
		{"not_between fixed really", NewMemFacts("s", Artifact{Name: "packages/installed", Command: []string{"dpkg-query"}, Content: []byte("xz-utils\t5.6.1+really5.4.5-1\tamd64\tii \n")}),
			"", "[rule.package]\nname = \"xz-utils\"\nnot_between = [\"5.6.0\", \"5.6.1-1\"]", Pass, ""},
		{"rpm compare", rpm, "", "[rule.package]\nname = \"openssh-server\"\nmin_version = \"8.7p1-38.el9_4.1\"", Pass, ""},
		{"rpm older", rpm, "", "[rule.package]\nname = \"openssh-server\"\nmin_version = \"8.7p1-38.el9_4.2\"", Fail, "older than"},
		{"rpm version not dpkg-valid is fine", rpm, "", "[rule.package]\nname = \"xz\"\nmin_version = \"5.2.5-8.el9_0\"", Pass, ""},
		{"unknown package manager", unknown, "", "[rule.package]\nname = \"openssh-server\"\nmin_version = \"9.0\"", Error, "cannot tell how versions compare"},
		{"every architecture", multi, "", "[rule.package]\nname = \"libc6\"\nmin_version = \"2.36-9+deb12u3\"", Fail, "2.36-9+deb12u1 is older"},
		{"one architecture", multi, "", "[rule.package]\nname = \"libc6:amd64\"\nmin_version = \"2.36-9+deb12u3\"", Pass, ""},
		{"rpm-only version on dpkg host", web, "", "[rule.package]\nname = \"openssh-server\"\nmin_version = \"a9.0\"", Error, "not a valid dpkg version"},
	})
}

func TestFileProbe(t *testing.T) {
	web, legacy := loadHost(t, "web-01"), loadHost(t, "legacy-01")
	runProbeCases(t, []probeCase{
		{"mode and owner pass", web, "", "[rule.file]\npath = \"sshd/config/etc/ssh/sshd_config\"\nmax_mode = \"0600\"\nowner = \"root\"\ngroup = \"root\"", Pass, ""},
		{"mode too wide", legacy, "", "[rule.file]\npath = \"sshd/config/etc/ssh/sshd_config\"\nmax_mode = \"0644\"", Fail, "mode 0664, wider than 0644"},
		{"owner", legacy, "", "[rule.file]\npath = \"sshd/config/etc/ssh/sshd_config\"\nowner = \"root\"", Fail, "owned by deploy, want root"},
		{"glob mode", legacy, "", "[rule.file]\npath = \"sshd/config/etc/ssh/sshd_config.d/*\"\nmax_mode = \"0644\"", Fail, "10-migration.conf has mode 0666"},
		{"present in drop-in", web, "", "[rule.file]\npath = \"sshd/config/etc/ssh/sshd_config.d/*\"\npresent = '^PasswordAuthentication\\s+no'", Pass, "50-hardening.conf:3: PasswordAuthentication no"},
		{"absent over glob", legacy, "", "[rule.file]\npath = \"sshd/config/etc/ssh/*\"\nabsent = '(?i)^\\s*PasswordAuthentication\\s+yes'", Fail, "sshd_config:3: PasswordAuthentication yes"},
		{"glob matching nothing", web, "", "[rule.file]\npath = \"cron/*\"\nabsent = 'x'", Pass, "no artifact matches cron/*"},
		{"glob matching nothing, present", web, "", "[rule.file]\npath = \"cron/*\"\npresent = 'x'", Fail, "no line matches /x/"},
		{"command output has no mode", web, "", "[rule.file]\npath = \"sshd/effective\"\nmax_mode = \"0644\"", Error, "is command output"},
		{"missing file", web, "", "[rule.file]\npath = \"sshd/config/etc/ssh/sshd_config.d/99-x.conf\"\nabsent = 'x'", Error, "was not captured"},
		{"setuid counts", NewMemFacts("h", Artifact{Name: "f", Mode: 0o755 | 1<<23, Owner: "root"}), "", "[rule.file]\npath = \"f\"\nmax_mode = \"0755\"", Fail, "mode 4755"},
	})
}

func TestServiceProbe(t *testing.T) {
	web, legacy, noble := loadHost(t, "web-01"), loadHost(t, "legacy-01"), loadHost(t, "ubuntu-noble")
	runProbeCases(t, []probeCase{
		{"masked counts as disabled", web, "", "[rule.service]\nunit = \"inetutils-inetd\"\nstate = \"disabled\"", Pass, "inetutils-inetd.service is masked"},
		{"absent counts as disabled", web, "", "[rule.service]\nunit = \"vsftpd.service\"\nstate = \"disabled\"", Pass, "vsftpd.service is not installed"},
		{"enabled is not disabled", legacy, "", "[rule.service]\nunit = \"vsftpd.service\"\nstate = \"disabled\"", Fail, "vsftpd.service is enabled"},
		{"generated can still start", legacy, "", "[rule.service]\nunit = \"tftpd-hpa\"\nstate = \"disabled\"", Fail, "generated (it can still be started"},
		{"masked", web, "", "[rule.service]\nunit = \"telnet.socket\"\nstate = \"masked\"", Pass, ""},
		{"absent", web, "", "[rule.service]\nunit = \"xinetd\"\nstate = \"absent\"", Pass, ""},
		{"absent fails", legacy, "", "[rule.service]\nunit = \"xinetd\"\nstate = \"absent\"", Fail, "xinetd.service is disabled"},
		{"enabled", web, "", "[rule.service]\nunit = \"ssh\"\nstate = \"enabled\"", Pass, ""},
		{"active", web, "", "[rule.service]\nunit = \"ssh\"\nstate = \"active\"", Pass, "ssh.service is active (running)"},
		{"inactive: not loaded", web, "", "[rule.service]\nunit = \"vsftpd\"\nstate = \"inactive\"", Pass, "not loaded"},
		{"inactive: failed", legacy, "", "[rule.service]\nunit = \"xinetd\"\nstate = \"inactive\"", Pass, "failed (failed)"},
		{"inactive fails", legacy, "", "[rule.service]\nunit = \"vsftpd\"\nstate = \"inactive\"", Fail, "active (running)"},
		{"no systemd", noble, "", "[rule.service]\nunit = \"ssh\"\nstate = \"active\"", Error, "services/active is unavailable: systemctl: System has not been booted"},
	})
}

func TestSysctlProbe(t *testing.T) {
	web, legacy := loadHost(t, "web-01"), loadHost(t, "legacy-01")
	runProbeCases(t, []probeCase{
		{"equals int", web, "", "[rule.sysctl]\nkey = \"net.ipv4.ip_forward\"\nequals = 0", Pass, "net.ipv4.ip_forward is 0"},
		{"equals fail", legacy, "", "[rule.sysctl]\nkey = \"net.ipv4.ip_forward\"\nequals = \"0\"", Fail, "is 1, want 0"},
		{"slashes", web, "", "[rule.sysctl]\nkey = \"kernel/randomize_va_space\"\nequals = 2", Pass, ""},
		{"min", legacy, "", "[rule.sysctl]\nkey = \"kernel.randomize_va_space\"\nmin = 2", Fail, "below 2"},
		{"whitespace", web, "", "[rule.sysctl]\nkey = \"net.ipv4.ip_local_port_range\"\nequals = \"32768 60999\"", Pass, ""},
		{"one_of", web, "", "[rule.sysctl]\nkey = \"net.ipv4.tcp_syncookies\"\none_of = [1, 2]", Pass, ""},
		{"missing key", web, "", "[rule.sysctl]\nkey = \"net.ipv4.no_such\"\nequals = 1", Error, "has no key net.ipv4.no_such"},
		{"not an integer", web, "", "[rule.sysctl]\nkey = \"net.ipv4.ip_local_port_range\"\nmax = 3", Error, "not an integer"},
	})
}

func TestFirewallProbe(t *testing.T) {
	web, legacy := loadHost(t, "web-01"), loadHost(t, "legacy-01")
	native := NewMemFacts("n", Artifact{Name: "firewall/nftables", Command: []string{"nft"}, Content: []byte(nativeNft)})
	v4only := NewMemFacts("n", Artifact{Name: "firewall/nftables", Command: []string{"nft"}, Content: []byte(
		"table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n")})
	empty := NewMemFacts("e", Artifact{Name: "firewall/nftables", Command: []string{"nft"}, Content: nil},
		Artifact{Name: "firewall/iptables", Command: []string{"iptables-save"}})
	const acceptAll = `^(-m comment --comment ("[^"]*"|\S+) )?-j ACCEPT$`
	runProbeCases(t, []probeCase{
		{"iptables policy", web, "", "[rule.firewall]\nfamily = \"iptables\"\nchain = \"INPUT\"\npolicy = \"DROP\"", Pass, "iptables filter chain INPUT: policy DROP"},
		{"iptables policy fail", legacy, "", "[rule.firewall]\nfamily = \"iptables\"\nchain = \"INPUT\"\npolicy = \"drop\"", Fail, "filter INPUT policy is ACCEPT, want DROP"},
		{"ip6tables not loaded", legacy, "", "[rule.firewall]\nfamily = \"ip6tables\"\nchain = \"INPUT\"\npolicy = \"DROP\"", Fail, "ip6tables table filter is not loaded, so the default policy is ACCEPT"},
		{"ip6tables not loaded, absent rule", legacy, "", "[rule.firewall]\nfamily = \"ip6tables\"\nchain = \"INPUT\"\nrule_absent = 'x'", Pass, ""},
		{"empty iptables-save", empty, "", "[rule.firewall]\nfamily = \"iptables\"\nchain = \"INPUT\"\npolicy = \"DROP\"", Fail, "not loaded"},
		{"accept-all absent", web, "", "[rule.firewall]\nfamily = \"iptables\"\nchain = \"INPUT\"\nrule_absent = '" + acceptAll + "'", Pass, ""},
		{"accept-all present", legacy, "", "[rule.firewall]\nfamily = \"iptables\"\nchain = \"INPUT\"\nrule_absent = '" + acceptAll + "'", Fail, `filter INPUT has rule "-j ACCEPT"`},
		{"loopback", web, "", "[rule.firewall]\nfamily = \"iptables\"\nchain = \"INPUT\"\nrule_present = '^-i lo( .*)? -j ACCEPT$'", Pass, ""},
		{"loopback missing", legacy, "", "[rule.firewall]\nfamily = \"iptables\"\nchain = \"INPUT\"\nrule_present = '^-i lo( .*)? -j ACCEPT$'", Fail, "no rule in iptables filter chain INPUT matches"},
		{"unknown chain", web, "", "[rule.firewall]\nfamily = \"iptables\"\nchain = \"LOGDROP\"\npolicy = \"DROP\"", Fail, "not found"},
		{"nft hook via iptables-nft", web, "", "[rule.firewall]\nfamily = \"nftables\"\nhook = \"input\"\npolicy = \"drop\"", Pass, ""},
		{"nft hook accept", legacy, "", "[rule.firewall]\nfamily = \"nftables\"\nhook = \"input\"\npolicy = \"drop\"", Fail, "IPv4 traffic meets no base chain with policy drop on hook input; IPv6 traffic"},
		{"nft inet covers both", native, "", "[rule.firewall]\nfamily = \"nftables\"\nhook = \"input\"\npolicy = \"drop\"", Pass, ""},
		{"nft ip only", v4only, "", "[rule.firewall]\nfamily = \"nftables\"\nhook = \"input\"\npolicy = \"drop\"", Fail, "IPv6 traffic meets no base chain"},
		{"nft no ruleset", empty, "", "[rule.firewall]\nfamily = \"nftables\"\nhook = \"input\"\npolicy = \"drop\"", Fail, "no base chain on hook input, so the default policy is accept"},
		{"nft chain by name", native, "", "[rule.firewall]\nfamily = \"nftables\"\ntable = \"inet filter\"\nchain = \"forward\"\npolicy = \"drop\"", Pass, ""},
		{"nft default table filter", native, "", "[rule.firewall]\nfamily = \"nftables\"\nchain = \"output\"\npolicy = \"drop\"", Fail, "inet filter output policy is accept, want drop"},
		{"nft rules skip sets", native, "", "[rule.firewall]\nfamily = \"nftables\"\nhook = \"input\"\nrule_absent = 'elements|type ipv4_addr'", Pass, ""},
		{"nft rule with braces", native, "", "[rule.firewall]\nfamily = \"nftables\"\nhook = \"input\"\nrule_present = '^ip saddr @admin_v4 tcp dport \\{ 22, 9100 \\}'", Pass, ""},
		{"nft loopback", native, "", "[rule.firewall]\nfamily = \"nftables\"\nhook = \"input\"\nrule_present = '^(iif|iifname) \"lo\" .*accept'", Pass, ""},
		{"nft accept-all", legacy, "", "[rule.firewall]\nfamily = \"nftables\"\nhook = \"input\"\nrule_absent = '^(counter )?accept$'", Fail, `ip filter INPUT has rule "counter accept"`},
		{"nft nat hook", native, "", "[rule.firewall]\nfamily = \"nftables\"\nhook = \"postrouting\"\nrule_present = 'masquerade'", Pass, ""},
	})
}

// nativeNft is real `nft -s list ruleset` output of a native nftables ruleset.
const nativeNft = `table inet filter {
	counter ssh_new {
	}

	set admin_v4 {
		type ipv4_addr
		flags interval
		elements = { 10.20.0.0/16, 192.168.77.0/24 }
	}

	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept comment "loopback {always}"
		ct state established,related accept
		ct state invalid drop
		ip saddr @admin_v4 tcp dport { 22, 9100 } counter name "ssh_new" accept
		meta l4proto { icmp, ipv6-icmp } accept
	}

	chain forward {
		type filter hook forward priority filter; policy drop;
	}

	chain output {
		type filter hook output priority filter; policy accept;
	}
}
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth0" masquerade
	}
}
`

func TestParseNft(t *testing.T) {
	chains := parseNft([]byte(nativeNft))
	var got []string
	for _, c := range chains {
		got = append(got, fmt.Sprintf("%s/%s hook=%s policy=%s rules=%d", c.table, c.name, c.hook, c.policy, len(c.rules)))
	}
	want := []string{
		"inet filter/input hook=input policy=drop rules=5",
		"inet filter/forward hook=forward policy=drop rules=0",
		"inet filter/output hook=output policy=accept rules=0",
		"ip nat/postrouting hook=postrouting policy=accept rules=1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("parseNft:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A rule spanning lines joins into one.
	multi := "table inet t {\n\tchain c {\n\t\ttype filter hook input priority 0; policy drop;\n\t\tip saddr {\n\t\t\t1.2.3.4,\n\t\t\t5.6.7.8 } accept\n\t}\n}\n"
	cs := parseNft([]byte(multi))
	if len(cs) != 1 || len(cs[0].rules) != 1 || cs[0].rules[0] != "ip saddr { 1.2.3.4, 5.6.7.8 } accept" {
		t.Errorf("multi-line rule: %+v", cs[0])
	}
}

func TestCommandProbe(t *testing.T) {
	web := loadHost(t, "web-01")
	failed := NewMemFacts("h", Artifact{Name: "check/aide", Command: []string{"aide", "--check"}, ExitCode: 7, Content: []byte("changed: /etc/passwd\n")})
	runProbeCases(t, []probeCase{
		{"exit code", web, "", "[rule.command]\nartifact = \"sshd/effective\"\nexit_code = 0", Pass, "exit code 0"},
		{"stdout matches", web, "", "[rule.command]\nartifact = \"sshd/effective\"\nstdout_matches = '^usepam yes$'", Pass, ""},
		{"stdout not matches", web, "", "[rule.command]\nartifact = \"sshd/effective\"\nstdout_not_matches = '^permitrootlogin yes$'", Pass, ""},
		{"exit code fail", failed, "", "[rule.command]\nartifact = \"check/aide\"\nexit_code = 0", Fail, "aide exited 7, want 0"},
		{"stdout fail", failed, "", "[rule.command]\nartifact = \"check/aide\"\nstdout_not_matches = '^changed: /etc/(passwd|shadow)$'", Fail, "check/aide:1: changed: /etc/passwd"},
		{"file has no exit code", web, "", "[rule.command]\nartifact = \"system/os-release\"\nexit_code = 0", Error, "is a file"},
		{"file content", web, "", "[rule.command]\nartifact = \"system/os-release\"\nstdout_matches = '^ID=debian$'", Pass, ""},
	})
}

func TestApplicability(t *testing.T) {
	web, noble := loadHost(t, "web-01"), loadHost(t, "ubuntu-noble")
	noOS := NewMemFacts("h", Artifact{Name: "sshd/effective", Content: []byte("permitrootlogin no\n")})
	probe := "[rule.sshd]\noption = \"permitrootlogin\"\nequals = \"no\""
	runProbeCases(t, []probeCase{
		{"target glob", web, `targets = ["db-*"]`, probe, Skip, "target web-01 is not in [db-*]"},
		{"target glob matches", web, `targets = ["db-*", "web-*"]`, probe, Pass, ""},
		{"os id", web, `os = ["debian"]`, probe, Pass, ""},
		{"os version", web, `os = ["debian:12"]`, probe, Pass, ""},
		{"os other version", web, `os = ["debian:11"]`, probe, Skip, "operating system debian:12 is not in [debian:11]"},
		{"os id_like", noble, `os = ["debian"]`, "[rule.package]\nname = \"sudo\"\nstate = \"installed\"", Pass, ""},
		{"os like with version does not cross", noble, `os = ["debian:12"]`, probe, Skip, "ubuntu:24.04 (like debian)"},
		{"os unknown", noOS, `os = ["debian"]`, probe, Error, "operating system is unknown: artifact system/os-release was not captured"},
	})
}
