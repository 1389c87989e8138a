package rules

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// firewallProbe checks a host firewall ruleset: family iptables or ip6tables (artifacts
// firewall/iptables and firewall/ip6tables, iptables-save format) or nftables (artifact
// firewall/nftables, `nft -s list ruleset`).
//
// For iptables and ip6tables it selects chain in table (default filter). A table that is
// not loaded has no rules and accepts everything. The rule lines the regexps see are those
// iptables-save prints, without the leading "-A CHAIN ", such as "-i lo -j ACCEPT".
//
// For nftables it selects either chain (a chain name, in the tables named by table, default
// "filter" of any family; table may be "FAMILY NAME") or hook (the base chains attached to
// that hook, in ip, ip6 and inet tables, or in table when given). The rule lines are the
// chain's statements as nft prints them, such as `iif "lo" accept`. With hook, policy drop
// holds only when both IPv4 and IPv6 traffic pass a base chain with policy drop on that
// hook (an inet chain covers both); a packet is accepted only if every base chain on the
// hook accepts it.
//
// policy is the expected default policy; rule_present must match at least one rule line,
// rule_absent none.
type firewallProbe struct {
	Family      string `toml:"family" json:"family"`
	Table       string `toml:"table" json:"table,omitempty"`
	Chain       string `toml:"chain" json:"chain,omitempty"`
	Hook        string `toml:"hook" json:"hook,omitempty"`
	Policy      string `toml:"policy" json:"policy,omitempty"`
	RulePresent string `toml:"rule_present" json:"rule_present,omitempty"`
	RuleAbsent  string `toml:"rule_absent" json:"rule_absent,omitempty"`

	present, absent *pattern
}

var nftHooks = []string{"prerouting", "input", "forward", "output", "postrouting", "ingress", "egress"}

func (p *firewallProbe) check() error {
	switch p.Family {
	case "iptables", "ip6tables":
		if p.Hook != "" {
			return fieldErr("hook", "only for family nftables; name the chain instead")
		}
		if p.Chain == "" {
			return fieldErr("chain", "missing (such as \"INPUT\")")
		}
		if p.Table == "" {
			p.Table = "filter"
		}
		if p.Policy != "" {
			p.Policy = strings.ToUpper(p.Policy)
			if p.Policy != "ACCEPT" && p.Policy != "DROP" {
				return fieldErr("policy", "unknown policy %q (ACCEPT or DROP)", p.Policy)
			}
		}
	case "nftables":
		if (p.Chain == "") == (p.Hook == "") {
			return fieldErr("chain", "give either chain (a chain name) or hook (such as \"input\"), not both or neither")
		}
		if p.Hook != "" && !oneOfFold(p.Hook, nftHooks) {
			return fieldErr("hook", "unknown hook %q (one of %s)", p.Hook, strings.Join(nftHooks, ", "))
		}
		if p.Table == "" && p.Chain != "" {
			p.Table = "filter"
		}
		if p.Policy != "" {
			p.Policy = strings.ToLower(p.Policy)
			if p.Policy != "accept" && p.Policy != "drop" {
				return fieldErr("policy", "unknown policy %q (accept or drop)", p.Policy)
			}
		}
	case "":
		return fieldErr("family", "missing (iptables, ip6tables or nftables)")
	default:
		return fieldErr("family", "unknown family %q (iptables, ip6tables or nftables)", p.Family)
	}
	if p.Policy == "" && p.RulePresent == "" && p.RuleAbsent == "" {
		return fieldErr("", "no condition (add policy, rule_present or rule_absent)")
	}
	var err error
	if p.RulePresent != "" {
		if p.present, err = newPattern(p.RulePresent); err != nil {
			return fieldErr("rule_present", "%v", err)
		}
	}
	if p.RuleAbsent != "" {
		if p.absent, err = newPattern(p.RuleAbsent); err != nil {
			return fieldErr("rule_absent", "%v", err)
		}
	}
	return nil
}

func (p *firewallProbe) expected() string {
	var parts []string
	if p.Policy != "" {
		parts = append(parts, "policy "+p.Policy)
	}
	if p.RulePresent != "" {
		parts = append(parts, "a rule matching /"+p.RulePresent+"/")
	}
	if p.RuleAbsent != "" {
		parts = append(parts, "no rule matching /"+p.RuleAbsent+"/")
	}
	return strings.Join(parts, " and ")
}

// fwChain is a chain of either format.
type fwChain struct {
	table  string // "filter", or "FAMILY NAME" for nftables
	family string // nftables family: ip, ip6, inet, ...
	name   string
	hook   string // nftables base chains only
	policy string // iptables: ACCEPT, DROP or "-"; nftables: accept or drop for base chains
	rules  []string
}

func (c *fwChain) label() string { return c.table + " " + c.name }

// parseIptables reads iptables-save output into table -> chains in order.
func parseIptables(content []byte) map[string][]*fwChain {
	tables := make(map[string][]*fwChain)
	var table string
	byName := map[string]*fwChain{}
	for _, l := range lines(content) {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#") || l == "COMMIT":
		case strings.HasPrefix(l, "*"):
			table = l[1:]
			if _, seen := tables[table]; !seen {
				tables[table] = nil // a loaded table, even without chains
			}
			byName = map[string]*fwChain{}
		case strings.HasPrefix(l, ":"):
			f := strings.Fields(l[1:])
			if len(f) == 0 {
				continue
			}
			c := &fwChain{table: table, name: f[0]}
			if len(f) > 1 {
				c.policy = f[1]
			}
			tables[table] = append(tables[table], c)
			byName[c.name] = c
		case strings.HasPrefix(l, "-A "):
			f := strings.SplitN(l, " ", 3)
			if len(f) < 2 {
				continue
			}
			c := byName[f[1]]
			if c == nil {
				c = &fwChain{table: table, name: f[1], policy: "-"}
				tables[table] = append(tables[table], c)
				byName[c.name] = c
			}
			rule := ""
			if len(f) == 3 {
				rule = f[2]
			}
			c.rules = append(c.rules, rule)
		}
	}
	return tables
}

var (
	nftHookRE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\bhook\s+([a-z]+)\b`) })
	nftPolicyRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\bpolicy\s+([a-z]+)\s*;`) })
	nftQuotedRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`"(?:[^"\\]|\\.)*"`) })
)

// parseNft reads `nft list ruleset` output into its chains. Sets, maps, flowtables and
// other objects are skipped.
func parseNft(content []byte) []*fwChain {
	var (
		chains        []*fwChain
		family, table string
		chain         *fwChain // the chain being read, while inside its braces
		depth         int      // brace depth before the line
		skipTo        = -1     // skipping an object block until depth returns to this
		pending       string   // a statement spanning lines
	)
	for _, raw := range lines(content) {
		l := strings.TrimSpace(raw)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		bare := nftQuotedRE().ReplaceAllString(l, `""`)
		opens, closes := strings.Count(bare, "{"), strings.Count(bare, "}")
		next := max(depth+opens-closes, 0)
		switch {
		case skipTo >= 0:
			if next <= skipTo {
				skipTo = -1
			}
		case pending != "":
			pending += " " + l
			if next <= 2 {
				chain.rules = append(chain.rules, pending)
				pending = ""
			}
		case depth == 0:
			f := strings.Fields(bare)
			if len(f) >= 3 && f[0] == "table" {
				if len(f) >= 4 && f[3] == "{" {
					family, table = f[1], f[2]
				} else {
					family, table = "ip", f[1] // nft's default family
				}
			}
		case depth == 1:
			f := strings.Fields(bare)
			switch {
			case len(f) >= 2 && f[0] == "chain" && opens > closes:
				chain = &fwChain{table: family + " " + table, family: family, name: strings.Trim(f[1], `"`)}
				chains = append(chains, chain)
			case opens > closes:
				skipTo = 1 // a set, map, flowtable or other object
			}
		case chain == nil:
			// Inside something that is not a chain: only the braces matter.
		case strings.Trim(bare, "} ") == "":
			// A closing brace.
		case strings.HasPrefix(l, "type ") && strings.Contains(l, " hook "):
			if m := nftHookRE().FindStringSubmatch(l); m != nil {
				chain.hook = m[1]
			}
			chain.policy = "accept"
			if m := nftPolicyRE().FindStringSubmatch(l); m != nil {
				chain.policy = m[1]
			}
		case strings.HasPrefix(l, "policy "):
			if m := nftPolicyRE().FindStringSubmatch(l); m != nil {
				chain.policy = m[1]
			}
		case opens > closes:
			pending = l
		default:
			chain.rules = append(chain.rules, l)
		}
		depth = next
		if depth < 2 {
			chain = nil
		}
	}
	return chains
}

func (p *firewallProbe) eval(e *env) verdict {
	want := p.expected()
	name := "firewall/" + p.Family
	a, why := e.output(name)
	if why != "" {
		return erred(want, "%s", why)
	}
	var chains []*fwChain
	var scope string
	covers := map[string]bool{} // nftables hook: which IP versions meet a drop policy
	if p.Family == "nftables" {
		chains, scope = p.selectNft(parsed(e, "nft", a, parseNft))
	} else {
		scope = fmt.Sprintf("%s %s chain %s", p.Family, p.Table, p.Chain)
		tables := parsed(e, "iptables", a, parseIptables)
		t, loaded := tables[p.Table]
		if !loaded {
			return p.unloaded(want, fmt.Sprintf("%s table %s is not loaded", p.Family, p.Table))
		}
		for _, c := range t {
			if c.name == p.Chain {
				chains = append(chains, c)
			}
		}
	}
	if len(chains) == 0 {
		if p.Hook != "" {
			return p.unloaded(want, fmt.Sprintf("no base chain on hook %s", p.Hook))
		}
		return failed(want, "chain not found", "%s not found in %s", scope, name)
	}
	var problems, facts []string
	if p.Policy != "" {
		var pols []string
		for _, c := range chains {
			pols = append(pols, c.label()+" policy "+c.policy)
			if p.Hook != "" && c.policy == "drop" {
				switch c.family {
				case "inet":
					covers["IPv4"], covers["IPv6"] = true, true
				case "ip":
					covers["IPv4"] = true
				case "ip6":
					covers["IPv6"] = true
				}
			}
		}
		facts = append(facts, pols...)
		switch {
		case p.Hook != "" && p.Policy == "drop":
			for _, v := range []string{"IPv4", "IPv6"} {
				if !covers[v] {
					problems = append(problems, fmt.Sprintf("%s traffic meets no base chain with policy drop on hook %s", v, p.Hook))
				}
			}
		case p.Hook != "":
			if len(covers) > 0 {
				problems = append(problems, fmt.Sprintf("a base chain on hook %s has policy drop", p.Hook))
			}
		default:
			for _, c := range chains {
				if c.policy != p.Policy {
					problems = append(problems, fmt.Sprintf("%s policy is %s, want %s", c.label(), c.policy, p.Policy))
				}
			}
		}
	}
	if p.present != nil {
		found := ""
		m := p.present.matcher()
		for _, c := range chains {
			for _, r := range c.rules {
				if e.ctx.Err() != nil {
					break
				}
				if found == "" && m.MatchString(r) {
					found = c.label() + ": " + r
				}
			}
		}
		if found == "" {
			problems = append(problems, fmt.Sprintf("no rule in %s matches /%s/", scope, p.RulePresent))
		} else {
			facts = append(facts, found)
		}
	}
	if p.absent != nil {
		m := p.absent.matcher()
		for _, c := range chains {
			for _, r := range c.rules {
				if e.ctx.Err() != nil {
					break
				}
				if m.MatchString(r) {
					problems = append(problems, fmt.Sprintf("%s has rule %q", c.label(), r))
				}
			}
		}
	}
	if len(problems) > 0 {
		return failed(want, strings.Join(append(problems, facts...), "\n"), "%s", strings.Join(problems, "; "))
	}
	return passed(want, strings.Join(facts, "\n"), "%s: %s", scope, want)
}

// unloaded decides a probe whose chain does not exist because nothing is loaded there:
// everything is accepted and there are no rules.
func (p *firewallProbe) unloaded(want, why string) verdict {
	policy := "ACCEPT"
	if p.Family == "nftables" {
		policy = "accept"
	}
	actual := why + ": every packet is accepted"
	switch {
	case p.Policy != "" && p.Policy != policy:
		return failed(want, actual, "%s, so the default policy is %s", why, policy)
	case p.present != nil:
		return failed(want, actual, "%s, so no rule matches /%s/", why, p.RulePresent)
	}
	return passed(want, actual, "%s: %s", why, want)
}

// selectNft picks the chains the probe names.
func (p *firewallProbe) selectNft(all []*fwChain) ([]*fwChain, string) {
	tableOK := func(c *fwChain) bool {
		if p.Table == "" {
			return c.family == "ip" || c.family == "ip6" || c.family == "inet"
		}
		if strings.Contains(p.Table, " ") {
			return c.table == p.Table
		}
		return strings.HasSuffix(c.table, " "+p.Table)
	}
	var out []*fwChain
	for _, c := range all {
		if !tableOK(c) {
			continue
		}
		if (p.Hook != "" && c.hook == p.Hook) || (p.Chain != "" && c.name == p.Chain) {
			out = append(out, c)
		}
	}
	scope := "nftables chain " + p.Chain
	if p.Hook != "" {
		scope = "nftables base chains on hook " + p.Hook
	}
	if p.Table != "" {
		scope += " in table " + p.Table
	}
	return out, scope
}
