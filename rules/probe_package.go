package rules

import (
	"fmt"
	"strings"

	"github.com/hardtrail/hardtrail/rules/version"
)

// packageProbe checks an installed package from packages/installed. Versions compare as
// the package manager that produced the artifact does: dpkg when it came from dpkg-query,
// rpm when from rpm. Only a package whose status says installed (dpkg's "ii", "hi", ...;
// rpm's "ii") counts as installed; "rc" (removed, configuration left) does not.
//
// state "installed" requires the package, "absent" forbids it. Without a state, the version
// conditions apply only when the package is installed: a package that is not there cannot
// be vulnerable. Every installed instance (one per architecture) must meet the conditions.
type packageProbe struct {
	Name       string   `toml:"name" json:"name"` // NAME or NAME:ARCH
	State      string   `toml:"state" json:"state,omitempty"`
	MinVersion string   `toml:"min_version" json:"min_version,omitempty"` // installed >= this
	MaxVersion string   `toml:"max_version" json:"max_version,omitempty"` // installed <= this
	NotBetween []string `toml:"not_between" json:"not_between,omitempty"` // not LOW <= installed <= HIGH
}

func (p *packageProbe) check() error {
	if p.Name == "" {
		return fieldErr("name", "missing (the package name)")
	}
	switch p.State {
	case "", "installed", "absent":
	default:
		return fieldErr("state", "unknown state %q (installed or absent)", p.State)
	}
	hasVersion := p.MinVersion != "" || p.MaxVersion != "" || p.NotBetween != nil
	if p.State == "absent" && hasVersion {
		return fieldErr("state", "an absent package has no version to check (drop min_version, max_version and not_between)")
	}
	if p.State == "" && !hasVersion {
		return fieldErr("state", "missing (installed or absent, or a version condition: min_version, max_version, not_between)")
	}
	if p.NotBetween != nil && len(p.NotBetween) != 2 {
		return fieldErr("not_between", "want two versions [LOW, HIGH], got %d", len(p.NotBetween))
	}
	for _, kv := range p.versions() {
		if err := checkVersion(kv[1]); err != nil {
			return fieldErr(kv[0], "invalid version %q: %v", kv[1], err)
		}
	}
	return nil
}

// versions lists the probe's version strings by key.
func (p *packageProbe) versions() [][2]string {
	var out [][2]string
	if p.MinVersion != "" {
		out = append(out, [2]string{"min_version", p.MinVersion})
	}
	if p.MaxVersion != "" {
		out = append(out, [2]string{"max_version", p.MaxVersion})
	}
	for _, v := range p.NotBetween {
		out = append(out, [2]string{"not_between", v})
	}
	return out
}

// checkVersion accepts a version that dpkg or rpm would accept; which one applies is known
// only when the facts say which package manager the target uses.
func checkVersion(v string) error {
	derr := version.ValidateDebian(v)
	if derr == nil || version.ValidateRPM(v) == nil {
		return nil
	}
	return derr
}

func (p *packageProbe) expected() string {
	var parts []string
	if p.State != "" {
		parts = append(parts, p.State)
	}
	if p.MinVersion != "" {
		parts = append(parts, ">= "+p.MinVersion)
	}
	if p.MaxVersion != "" {
		parts = append(parts, "<= "+p.MaxVersion)
	}
	if p.NotBetween != nil {
		parts = append(parts, fmt.Sprintf("not in [%s, %s]", p.NotBetween[0], p.NotBetween[1]))
	}
	if p.State == "" {
		return strings.Join(parts, " and ") + " when installed"
	}
	return strings.Join(parts, " and ")
}

// pkg is one line of packages/installed.
type pkg struct {
	name, version, arch, status string
}

func parsePackages(content []byte) map[string][]pkg {
	m := make(map[string][]pkg)
	for _, l := range lines(content) {
		f := strings.Split(l, "\t")
		if len(f) < 2 || f[0] == "" {
			continue
		}
		p := pkg{name: f[0], version: f[1]}
		if len(f) > 2 {
			p.arch = f[2]
		}
		if len(f) > 3 {
			p.status = strings.TrimSpace(f[3])
		}
		// dpkg-query's ${binary:Package} appends :ARCH for multi-arch packages.
		base, _, _ := strings.Cut(p.name, ":")
		m[base] = append(m[base], p)
	}
	return m
}

// installed reports whether a dpkg or rpm status means installed.
func (p pkg) installed() bool { return len(p.status) >= 2 && p.status[1] == 'i' }

func (p pkg) matches(name string) bool {
	base, arch, hasArch := strings.Cut(name, ":")
	if !hasArch {
		return true
	}
	pbase, parch, _ := strings.Cut(p.name, ":")
	if parch == "" {
		parch = p.arch
	}
	return pbase == base && parch == arch
}

func (p *packageProbe) eval(e *env) verdict {
	want := p.expected()
	a, why := e.output("packages/installed")
	if why != "" {
		return erred(want, "%s", why)
	}
	base, _, _ := strings.Cut(p.Name, ":")
	var inst, other []pkg
	for _, q := range parsed(e, "packages", a, parsePackages)[base] {
		switch {
		case !q.matches(p.Name):
		case q.installed():
			inst = append(inst, q)
		default:
			other = append(other, q)
		}
	}
	if len(inst) == 0 {
		actual := "not installed"
		if len(other) > 0 {
			actual = fmt.Sprintf("not installed (status %q)", other[0].status)
		}
		if p.State == "installed" {
			return failed(want, actual, "%s is %s", p.Name, actual)
		}
		return passed(want, actual, "%s is %s", p.Name, actual)
	}
	var versions []string
	for _, q := range inst {
		versions = append(versions, q.version)
	}
	actual := strings.Join(dedupe(versions), ", ")
	if p.State == "absent" {
		return failed(want, actual, "%s is installed (%s)", p.Name, actual)
	}
	if len(p.versions()) == 0 {
		return passed(want, actual, "%s is installed (%s)", p.Name, actual)
	}
	cmp, family, why := versionFamily(a)
	if why != "" {
		return erred(want, "%s", why)
	}
	for _, kv := range p.versions() {
		if err := family.validate(kv[1]); err != nil {
			return erred(want, "%s %q is not a valid %s version: %v", kv[0], kv[1], family.name, err)
		}
	}
	var problems []string
	for _, q := range inst {
		switch {
		case p.MinVersion != "" && cmp(q.version, p.MinVersion) < 0:
			problems = append(problems, fmt.Sprintf("%s is older than %s", q.version, p.MinVersion))
		case p.MaxVersion != "" && cmp(q.version, p.MaxVersion) > 0:
			problems = append(problems, fmt.Sprintf("%s is newer than %s", q.version, p.MaxVersion))
		case p.NotBetween != nil && cmp(q.version, p.NotBetween[0]) >= 0 && cmp(q.version, p.NotBetween[1]) <= 0:
			problems = append(problems, fmt.Sprintf("%s is within [%s, %s]", q.version, p.NotBetween[0], p.NotBetween[1]))
		}
	}
	if len(problems) > 0 {
		return failed(want, actual, "%s %s", p.Name, strings.Join(dedupe(problems), "; "))
	}
	return passed(want, actual, "%s %s is %s", p.Name, actual, want)
}

type family struct {
	name     string
	validate func(string) error
}

// versionFamily says how the artifact's versions compare, from the command that made it.
func versionFamily(a Artifact) (func(a, b string) int, family, string) {
	switch commandName(a.Command) {
	case "dpkg-query", "dpkg":
		return version.CompareDebian, family{"dpkg", version.ValidateDebian}, ""
	case "rpm":
		return version.CompareRPM, family{"rpm", version.ValidateRPM}, ""
	}
	return nil, family{}, fmt.Sprintf("cannot tell how versions compare: packages/installed was produced by %q, not dpkg-query or rpm", strings.Join(a.Command, " "))
}
