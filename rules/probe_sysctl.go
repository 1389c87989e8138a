package rules

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// sysctlProbe checks a kernel parameter from sysctl/all. Values compare with runs of
// whitespace reduced to one space, so "32768 60999" equals "32768\t60999"; min and max
// need an integer value.
type sysctlProbe struct {
	Key    string   `toml:"key" json:"key"`
	Equals *scalar  `toml:"equals" json:"equals,omitempty"`
	OneOf  []scalar `toml:"one_of" json:"one_of,omitempty"`
	Min    *int64   `toml:"min" json:"min,omitempty"`
	Max    *int64   `toml:"max" json:"max,omitempty"`
}

var sysctlKeyRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_*-]+([./][A-Za-z0-9_@:*-]+)*$`) })

func (p *sysctlProbe) check() error {
	if p.Key == "" || !sysctlKeyRE().MatchString(p.Key) {
		return fieldErr("key", "missing or invalid key %q (such as \"net.ipv4.ip_forward\")", p.Key)
	}
	if p.Equals == nil && p.OneOf == nil && p.Min == nil && p.Max == nil {
		return fieldErr("", "no condition (add equals, one_of, min or max)")
	}
	if p.Min != nil && p.Max != nil && *p.Min > *p.Max {
		return fieldErr("max", "max %d is below min %d", *p.Max, *p.Min)
	}
	return nil
}

func (p *sysctlProbe) expected() string {
	var parts []string
	if p.Equals != nil {
		parts = append(parts, "= "+string(*p.Equals))
	}
	if p.OneOf != nil {
		parts = append(parts, "one of "+quoteList(scalars(p.OneOf)))
	}
	if p.Min != nil {
		parts = append(parts, fmt.Sprintf(">= %d", *p.Min))
	}
	if p.Max != nil {
		parts = append(parts, fmt.Sprintf("<= %d", *p.Max))
	}
	return strings.Join(parts, " and ")
}

func parseSysctl(content []byte) map[string]string {
	m := make(map[string]string)
	for _, l := range lines(content) {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		m[strings.TrimSpace(k)] = strings.Join(strings.Fields(v), " ")
	}
	return m
}

func (p *sysctlProbe) eval(e *env) verdict {
	want := p.expected()
	a, why := e.output("sysctl/all")
	if why != "" {
		return erred(want, "%s", why)
	}
	// sysctl prints keys with dots; a key may be written with slashes as under /proc/sys.
	key := strings.ReplaceAll(p.Key, "/", ".")
	v, ok := parsed(e, "sysctl", a, parseSysctl)[key]
	if !ok {
		return erred(want, "sysctl/all has no key %s (the kernel or a module may not provide it)", key)
	}
	norm := func(s scalar) string { return strings.Join(strings.Fields(string(s)), " ") }
	var problems []string
	if p.Equals != nil && v != norm(*p.Equals) {
		problems = append(problems, "want "+norm(*p.Equals))
	}
	if p.OneOf != nil {
		found := false
		for _, o := range p.OneOf {
			found = found || v == norm(o)
		}
		if !found {
			problems = append(problems, "want one of "+quoteList(scalars(p.OneOf)))
		}
	}
	if p.Min != nil || p.Max != nil {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return erred(want, "%s is %q, not an integer", key, v)
		}
		if p.Min != nil && n < *p.Min {
			problems = append(problems, fmt.Sprintf("below %d", *p.Min))
		}
		if p.Max != nil && n > *p.Max {
			problems = append(problems, fmt.Sprintf("above %d", *p.Max))
		}
	}
	if len(problems) > 0 {
		return failed(want, v, "%s is %s, %s", key, v, strings.Join(problems, ", "))
	}
	return passed(want, v, "%s is %s", key, v)
}
