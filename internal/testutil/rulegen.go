package testutil

import (
	"fmt"
	"strings"
)

// RuleParams are what GeneratedRules draws probe parameters from.
type RuleParams struct {
	Packages, SSHDOptions, Units, ServiceStates, Sysctls []string
	// OSEvery gates every OSEvery-th rule on debian:12 (0: none).
	OSEvery int
}

// GeneratedRules writes n rules cycling through every probe kind, three in eight with a regular
// expression of their own, as large custom rule sets are written: for benchmarks of loading and
// evaluating many rules.
func GeneratedRules(n int, p RuleParams) string {
	var b strings.Builder
	pick := func(l []string, i int) string { return l[i%len(l)] }
	for i := range n {
		fmt.Fprintf(&b, "[[rule]]\nid = \"gen-%05d\"\ntitle = \"generated %d\"\nseverity = \"medium\"\ncontrols = [\"ISO27001:2022 A.8.9\"]\n", i, i)
		if p.OSEvery > 0 && i%p.OSEvery == 0 {
			b.WriteString("os = [\"debian:12\"]\n")
		}
		switch i % 8 {
		case 0:
			fmt.Fprintf(&b, "[rule.port]\nport = %d\nstate = \"closed\"\n", 1+i%1024)
		case 1:
			fmt.Fprintf(&b, "[rule.package]\nname = %q\nmin_version = \"1:%d.0\"\n", pick(p.Packages, i), i%3)
		case 2:
			fmt.Fprintf(&b, "[rule.sshd]\noption = %q\nnot_equals = \"x%d\"\n", pick(p.SSHDOptions, i), i)
		case 3:
			fmt.Fprintf(&b, "[rule.file]\npath = \"sshd/config/etc/ssh/*\"\nabsent = '(?i)^\\s*PermitRootLogin\\s+yes%d'\nmax_mode = \"0644\"\n", i)
		case 4:
			fmt.Fprintf(&b, "[rule.service]\nunit = %q\nstate = %q\n", pick(p.Units, i), pick(p.ServiceStates, i))
		case 5:
			fmt.Fprintf(&b, "[rule.sysctl]\nkey = %q\nmax = %d\n", pick(p.Sysctls, i), i)
		case 6:
			fmt.Fprintf(&b, "[rule.firewall]\nfamily = %q\nchain = \"INPUT\"\nrule_absent = '-j ACCEPT$|dport %d'\n", []string{"iptables", "ip6tables"}[i%2], i)
		case 7:
			fmt.Fprintf(&b, "[rule.command]\nartifact = \"sshd/effective\"\nexit_code = 0\nstdout_not_matches = '^permitrootlogin (yes|%d)$'\n", i)
		}
		b.WriteString("\n")
	}
	return b.String()
}
