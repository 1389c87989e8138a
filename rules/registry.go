package rules

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// probe is the implementation behind one probe table of a rule, such as [rule.sshd]. The
// loader decodes the table strictly into the probe's struct, then calls check; evaluation
// calls eval, which reads facts only through env.
type probe interface {
	// check validates the decoded table and prepares it (compiles regexps, normalises
	// values). Problems are reported with fieldErr so they name the key.
	check() error
	// eval decides the probe over the facts in e. It must not panic on any content.
	eval(e *env) verdict
}

// probeKind is one entry of the registry: the probe's TOML schema is the struct that
// newProbe returns a pointer to.
type probeKind struct {
	newProbe func() probe
	doc      string
}

// registry is the one list of probe kinds: the loader builds the rule schema from it and
// evaluation runs what it holds.
var registry = map[string]probeKind{
	"port":     {func() probe { return new(portProbe) }, "a port is listening or closed (net/listening)"},
	"package":  {func() probe { return new(packageProbe) }, "a package is installed, absent, or within versions (packages/installed)"},
	"sshd":     {func() probe { return new(sshdProbe) }, "an effective sshd option has a value (sshd/effective)"},
	"file":     {func() probe { return new(fileProbe) }, "a captured file's content, mode and owner (any file artifact)"},
	"service":  {func() probe { return new(serviceProbe) }, "a systemd unit is enabled, disabled, masked, active, inactive or absent (services/units, services/active)"},
	"sysctl":   {func() probe { return new(sysctlProbe) }, "a kernel parameter has a value (sysctl/all)"},
	"firewall": {func() probe { return new(firewallProbe) }, "a chain's default policy and rules (firewall/iptables, firewall/ip6tables, firewall/nftables)"},
	"command":  {func() probe { return new(commandProbe) }, "a command's exit code and output (any artifact)"},
}

// ProbeDoc returns the one-line description of a probe kind.
func ProbeDoc(kind string) string { return registry[kind].doc }

// fieldError is a problem with one key of a probe table or rule.
type fieldError struct {
	key string // key inside the probe table, such as "matches"
	msg string
}

func (e *fieldError) Error() string { return e.key + ": " + e.msg }

func fieldErr(key, format string, args ...any) error {
	return &fieldError{key: key, msg: fmt.Sprintf(format, args...)}
}

// ruleHead holds the keys every rule has, whatever its probe.
type ruleHead struct {
	ID          string   `toml:"id"`
	Title       string   `toml:"title"`
	Severity    string   `toml:"severity"`
	Controls    []string `toml:"controls"`
	Description string   `toml:"description"`
	Remediation string   `toml:"remediation"`
	Incidents   []string `toml:"incidents"`
	Targets     []string `toml:"targets"`
	OS          []string `toml:"os"`
}

// waiverDoc is a [[waiver]] table.
type waiverDoc struct {
	Rule     string   `toml:"rule"`
	Targets  []string `toml:"targets"`
	Reason   string   `toml:"reason"`
	Approver string   `toml:"approver"`
	Expires  *date    `toml:"expires"`
}

// schema is the decoding type of a rule file, built once from the registry: a struct with
// `rule` (a slice of structs holding ruleHead embedded and one pointer field per probe
// kind) and `waiver`.
type schema struct {
	file  reflect.Type
	kinds []string // probe kind of rule struct field i+1
}

// fileSchema is built on first use, not at the start of every command.
var fileSchema = sync.OnceValue(buildSchema)

func buildSchema() schema {
	s := schema{kinds: make([]string, 0, len(registry))}
	for k := range registry {
		s.kinds = append(s.kinds, k)
	}
	sort.Strings(s.kinds)
	fields := []reflect.StructField{{Name: "Head", Type: reflect.TypeFor[ruleHead](), Anonymous: true}}
	for _, k := range s.kinds {
		fields = append(fields, reflect.StructField{
			Name: strings.ToUpper(k[:1]) + k[1:],
			Type: reflect.TypeOf(registry[k].newProbe()),
			Tag:  reflect.StructTag(fmt.Sprintf(`toml:%q`, k)),
		})
	}
	rule := reflect.StructOf(fields)
	s.file = reflect.StructOf([]reflect.StructField{
		{Name: "Rule", Type: reflect.SliceOf(rule), Tag: `toml:"rule"`},
		{Name: "Waiver", Type: reflect.TypeFor[[]waiverDoc](), Tag: `toml:"waiver"`},
	})
	return s
}

// decodedRule is one [[rule]] as decoded: the head and the probe tables present.
type decodedRule struct {
	head   ruleHead
	probes []string // kinds present, sorted
	probe  probe    // the first of them
}

// rulesOf reads the decoded rules out of a value of the schema's file type.
func (s schema) rulesOf(v reflect.Value) []decodedRule {
	list := v.Field(0)
	out := make([]decodedRule, list.Len())
	for i := range out {
		r := list.Index(i)
		out[i].head = r.Field(0).Interface().(ruleHead)
		for j, k := range s.kinds {
			f := r.Field(j + 1)
			if f.IsNil() {
				continue
			}
			out[i].probes = append(out[i].probes, k)
			if out[i].probe == nil {
				out[i].probe = f.Interface().(probe)
			}
		}
	}
	return out
}

func (s schema) waiversOf(v reflect.Value) []waiverDoc { return v.Field(1).Interface().([]waiverDoc) }

// probeTables lists the probe tables as a reader writes them: [rule.command], [rule.file], ...
func probeTables() string {
	var b strings.Builder
	for i, k := range fileSchema().kinds {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "[rule.%s]", k)
	}
	return b.String()
}

// headKeys lists the keys every rule may have: id, title, ...
func headKeys() string {
	t := reflect.TypeFor[ruleHead]()
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i] = t.Field(i).Tag.Get("toml")
	}
	return strings.Join(keys, ", ")
}
