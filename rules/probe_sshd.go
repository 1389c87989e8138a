package rules

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// scalar is a value written as a TOML string, integer, float or boolean, kept as text.
type scalar string

// UnmarshalTOML implements toml.Unmarshaler.
func (v *scalar) UnmarshalTOML(x any) error {
	switch x := x.(type) {
	case string:
		*v = scalar(x)
	case int64:
		*v = scalar(strconv.FormatInt(x, 10))
	case float64:
		*v = scalar(strconv.FormatFloat(x, 'f', -1, 64))
	case bool:
		*v = scalar(strconv.FormatBool(x))
	default:
		return fmt.Errorf("expected a string, a number or a boolean, got %s", describeValue(x))
	}
	return nil
}

func scalars(vs []scalar) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// sshdProbe checks one option of sshd's effective configuration (`sshd -T`, artifact
// sshd/effective). Every condition given must hold. A keyword sshd prints several times
// (port, listenaddress, hostkey) must meet equals, not_equals, one_of, matches, min and max
// on every line; contains and excludes look at the comma-separated items of all its lines.
// equals, not_equals and one_of ignore case, as sshd does for its keywords' values.
type sshdProbe struct {
	Option    string   `toml:"option" json:"option"`
	Equals    *scalar  `toml:"equals" json:"equals,omitempty"`
	NotEquals *scalar  `toml:"not_equals" json:"not_equals,omitempty"`
	OneOf     []scalar `toml:"one_of" json:"one_of,omitempty"`
	Matches   string   `toml:"matches" json:"matches,omitempty"`
	// Min and Max compare numbers; sshd time values (90, 2m, 1h30m) count in seconds.
	Min *int64 `toml:"min" json:"min,omitempty"`
	Max *int64 `toml:"max" json:"max,omitempty"`
	// Contains lists items (globs) that must each match an item of the list; Excludes lists
	// items (globs) that no item may match.
	Contains []string `toml:"contains" json:"contains,omitempty"`
	Excludes []string `toml:"excludes" json:"excludes,omitempty"`

	re *pattern
}

var sshdOptionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9]*$`) })

func (p *sshdProbe) check() error {
	switch {
	case p.Option == "":
		return fieldErr("option", "missing (a keyword as `sshd -T` prints it, such as \"permitrootlogin\")")
	case !sshdOptionRE().MatchString(p.Option):
		return fieldErr("option", "invalid option %q (lowercase, as `sshd -T` prints it, such as \"permitrootlogin\")", p.Option)
	}
	if p.Equals == nil && p.NotEquals == nil && p.OneOf == nil && p.Matches == "" && p.Min == nil && p.Max == nil && p.Contains == nil && p.Excludes == nil {
		return fieldErr("", "no condition (add equals, not_equals, one_of, matches, min, max, contains or excludes)")
	}
	if p.Matches != "" {
		re, err := newPattern(p.Matches)
		if err != nil {
			return fieldErr("matches", "%v", err)
		}
		p.re = re
	}
	if p.Min != nil && p.Max != nil && *p.Min > *p.Max {
		return fieldErr("max", "max %d is below min %d", *p.Max, *p.Min)
	}
	if err := checkItemGlobs("contains", p.Contains); err != nil {
		return err
	}
	return checkItemGlobs("excludes", p.Excludes)
}

func (p *sshdProbe) expected() string {
	var parts []string
	if p.Equals != nil {
		parts = append(parts, "= "+string(*p.Equals))
	}
	if p.NotEquals != nil {
		parts = append(parts, "!= "+string(*p.NotEquals))
	}
	if p.OneOf != nil {
		parts = append(parts, "one of "+quoteList(scalars(p.OneOf)))
	}
	if p.re != nil {
		parts = append(parts, "matches "+p.Matches)
	}
	if p.Min != nil {
		parts = append(parts, fmt.Sprintf(">= %d", *p.Min))
	}
	if p.Max != nil {
		parts = append(parts, fmt.Sprintf("<= %d", *p.Max))
	}
	if p.Contains != nil {
		parts = append(parts, "contains "+quoteList(p.Contains))
	}
	if p.Excludes != nil {
		parts = append(parts, "excludes "+quoteList(p.Excludes))
	}
	return strings.Join(parts, " and ")
}

// parseSSHD reads `sshd -T` output into keyword -> values, in order.
func parseSSHD(content []byte) map[string][]string {
	m := make(map[string][]string)
	for _, l := range lines(content) {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		k, v, _ := strings.Cut(l, " ")
		k = strings.ToLower(k)
		m[k] = append(m[k], strings.TrimSpace(v))
	}
	return m
}

func (p *sshdProbe) eval(e *env) verdict {
	want := p.expected()
	a, why := e.output("sshd/effective")
	if why != "" {
		return erred(want, "%s", why)
	}
	if a.Command != nil && a.ExitCode != 0 {
		return erred(want, "sshd -T exited %d: its configuration may be invalid", a.ExitCode)
	}
	values, ok := parsed(e, "sshd", a, parseSSHD)[p.Option]
	if !ok {
		return erred(want, "sshd/effective has no option %s (this sshd may not know it)", p.Option)
	}
	actual := strings.Join(values, "\n")
	var problems []string
	var m matcher
	if p.re != nil {
		m = p.re.matcher()
	}
	for _, v := range values {
		if p.Equals != nil && !strings.EqualFold(v, string(*p.Equals)) {
			problems = append(problems, fmt.Sprintf("is %s, want %s", v, *p.Equals))
		}
		if p.NotEquals != nil && strings.EqualFold(v, string(*p.NotEquals)) {
			problems = append(problems, fmt.Sprintf("is %s", v))
		}
		if p.OneOf != nil && !oneOfFold(v, scalars(p.OneOf)) {
			problems = append(problems, fmt.Sprintf("is %s, want one of %s", v, quoteList(scalars(p.OneOf))))
		}
		if p.re != nil && !m.MatchString(v) {
			problems = append(problems, fmt.Sprintf("is %s, which does not match %s", v, p.Matches))
		}
		if p.Min != nil || p.Max != nil {
			n, err := sshdNumber(v)
			if err != nil {
				return erred(want, "%s is %s, not a number", p.Option, v)
			}
			if p.Min != nil && n < *p.Min {
				problems = append(problems, fmt.Sprintf("is %s, below %d", v, *p.Min))
			}
			if p.Max != nil && n > *p.Max {
				problems = append(problems, fmt.Sprintf("is %s, above %d", v, *p.Max))
			}
		}
	}
	if p.Contains != nil || p.Excludes != nil {
		var items []string
		for _, v := range values {
			for _, it := range strings.Split(v, ",") {
				if it = strings.TrimSpace(it); it != "" {
					items = append(items, it)
				}
			}
		}
		for _, g := range p.Contains {
			if len(matching(g, items)) == 0 {
				problems = append(problems, "lacks "+g)
			}
		}
		var bad []string
		for _, g := range p.Excludes {
			bad = append(bad, matching(g, items)...)
		}
		if len(bad) > 0 {
			problems = append(problems, "offers "+strings.Join(dedupe(bad), ", "))
		}
	}
	if len(problems) > 0 {
		return failed(want, actual, "%s %s", p.Option, strings.Join(dedupe(problems), "; "))
	}
	if len(values) == 1 && len(actual) <= 60 {
		return passed(want, actual, "%s is %s", p.Option, actual)
	}
	return passed(want, actual, "%s %s", p.Option, want)
}

func oneOfFold(v string, set []string) bool {
	for _, s := range set {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func matching(glob string, items []string) []string {
	var out []string
	for _, it := range items {
		if ok, _ := path.Match(glob, it); ok {
			out = append(out, it)
		}
	}
	return out
}

func dedupe(ss []string) []string {
	seen := make(map[string]bool, len(ss))
	out := ss[:0:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// sshdNumber reads a number or an sshd time value (sshd_config(5) TIME FORMATS: a sequence
// of numbers each with an optional unit s, m, h, d or w) as seconds.
func sshdNumber(v string) (int64, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n, nil
	}
	if v == "" {
		return 0, fmt.Errorf("empty")
	}
	var total int64
	s := strings.ToLower(v)
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("not a time value: %q", v)
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			return 0, err
		}
		s = s[i:]
		mult := int64(1)
		if s != "" {
			switch s[0] {
			case 's':
			case 'm':
				mult = 60
			case 'h':
				mult = 3600
			case 'd':
				mult = 86400
			case 'w':
				mult = 604800
			default:
				return 0, fmt.Errorf("not a time value: %q", v)
			}
			s = s[1:]
		}
		total += n * mult
	}
	return total, nil
}

func checkItemGlobs(key string, globs []string) error {
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil || g == "" {
			return fieldErr(key, "invalid item pattern %q", g)
		}
	}
	return nil
}
