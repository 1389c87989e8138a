package rules

import (
	"fmt"
	"slices"
	"strings"
)

// serviceProbe checks a systemd unit. A unit name without a type suffix means NAME.service.
//
//   - enabled: services/units lists the unit as enabled or enabled-runtime.
//   - disabled: the unit will not start at boot by itself: services/units lists it as
//     disabled, masked or masked-runtime, or does not list it at all (not installed).
//     static, indirect, generated, alias and linked units are not disabled.
//   - masked: services/units lists it as masked or masked-runtime.
//   - absent: services/units does not list the unit.
//   - active: services/active lists it with ACTIVE active, reloading or refreshing.
//   - inactive: services/active does not list it, or lists it with any other ACTIVE state
//     (inactive, failed, activating, deactivating).
type serviceProbe struct {
	Unit  string `toml:"unit" json:"unit"`
	State string `toml:"state" json:"state"`
}

var serviceStates = []string{"enabled", "disabled", "masked", "active", "inactive", "absent"}

func (p *serviceProbe) check() error {
	if p.Unit == "" || strings.ContainsAny(p.Unit, " \t/") {
		return fieldErr("unit", "missing or invalid unit %q (such as \"telnet.socket\" or \"ssh\")", p.Unit)
	}
	if !strings.Contains(p.Unit, ".") {
		p.Unit += ".service"
	}
	if p.State == "" {
		return fieldErr("state", "missing (one of %s)", strings.Join(serviceStates, ", "))
	}
	if !slices.Contains(serviceStates, p.State) {
		return fieldErr("state", "unknown state %q (one of %s)", p.State, strings.Join(serviceStates, ", "))
	}
	return nil
}

// unitFile is one line of services/units: UNIT STATE [PRESET].
func parseUnitFiles(content []byte) map[string]string {
	m := make(map[string]string)
	for _, l := range lines(content) {
		f := strings.Fields(l)
		if len(f) >= 2 {
			m[f[0]] = f[1]
		}
	}
	return m
}

// parseUnits reads services/active (UNIT LOAD ACTIVE SUB) into unit -> "ACTIVE SUB".
func parseUnits(content []byte) map[string][2]string {
	m := make(map[string][2]string)
	for _, l := range lines(content) {
		f := strings.Fields(l)
		if len(f) >= 4 {
			m[f[0]] = [2]string{f[2], f[3]}
		}
	}
	return m
}

func (p *serviceProbe) eval(e *env) verdict {
	switch p.State {
	case "active", "inactive":
		a, why := e.output("services/active")
		if why != "" {
			return erred(p.State, "%s", why)
		}
		st, listed := parsed(e, "units", a, parseUnits)[p.Unit]
		actual := "not loaded"
		if listed {
			actual = st[0] + " (" + st[1] + ")"
		}
		active := listed && (st[0] == "active" || st[0] == "reloading" || st[0] == "refreshing")
		if active == (p.State == "active") {
			return passed(p.State, actual, "%s is %s", p.Unit, actual)
		}
		return failed(p.State, actual, "%s is %s", p.Unit, actual)
	}
	a, why := e.output("services/units")
	if why != "" {
		return erred(p.State, "%s", why)
	}
	st, listed := parsed(e, "unit-files", a, parseUnitFiles)[p.Unit]
	actual := "not installed"
	if listed {
		actual = st
	}
	var ok bool
	switch p.State {
	case "enabled":
		ok = st == "enabled" || st == "enabled-runtime"
	case "disabled":
		ok = !listed || st == "disabled" || st == "masked" || st == "masked-runtime"
	case "masked":
		ok = st == "masked" || st == "masked-runtime"
	case "absent":
		ok = !listed
	}
	if ok {
		return passed(p.State, actual, "%s is %s", p.Unit, actual)
	}
	return failed(p.State, actual, "%s is %s", p.Unit, describeUnitState(actual))
}

func describeUnitState(st string) string {
	switch st {
	case "static", "indirect", "generated", "alias", "linked", "linked-runtime":
		return fmt.Sprintf("%s (it can still be started; mask it or remove its package)", st)
	}
	return st
}
