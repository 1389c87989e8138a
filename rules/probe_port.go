package rules

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// portProbe checks whether a port is listening, from net/listening (`ss -H -tulnp`). A TCP
// socket counts when in state LISTEN, a UDP socket whenever bound. With an address, only
// sockets reachable at it count: bound to it, or to the wildcard of its family (0.0.0.0
// for IPv4, [::] for IPv6, * for both). An address that is itself a wildcard (0.0.0.0, ::
// or *) selects sockets bound to any wildcard.
type portProbe struct {
	Port     int    `toml:"port" json:"port"`
	Protocol string `toml:"protocol" json:"protocol"` // tcp (default) or udp
	Address  string `toml:"address" json:"address,omitempty"`
	State    string `toml:"state" json:"state"` // listening or closed
}

func (p *portProbe) check() error {
	if p.Port < 1 || p.Port > 65535 {
		return fieldErr("port", "missing or out of range (1 to 65535)")
	}
	switch p.Protocol {
	case "":
		p.Protocol = "tcp"
	case "tcp", "udp":
	default:
		return fieldErr("protocol", "unknown protocol %q (tcp or udp)", p.Protocol)
	}
	switch p.State {
	case "listening", "closed":
	case "":
		return fieldErr("state", "missing (listening or closed)")
	default:
		return fieldErr("state", "unknown state %q (listening or closed)", p.State)
	}
	if p.Address != "" && !isWildcard(p.Address) {
		if _, err := netip.ParseAddr(strings.Trim(p.Address, "[]")); err != nil {
			return fieldErr("address", "invalid address %q (an IP address, or 0.0.0.0, :: or * for any)", p.Address)
		}
	}
	return nil
}

// socket is one line of net/listening.
type socket struct {
	proto   string // tcp or udp
	state   string
	host    string // without brackets and %interface
	port    int
	local   string // as printed
	process string // process names, comma-separated
}

var usersRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\("([^"]*)"`) })

func parseSockets(content []byte) []socket {
	var out []socket
	for _, l := range lines(content) {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		s := socket{proto: f[0], state: f[1], local: f[2]}
		switch {
		case strings.HasPrefix(s.proto, "tcp"):
			s.proto = "tcp"
		case strings.HasPrefix(s.proto, "udp"):
			s.proto = "udp"
		}
		i := strings.LastIndexByte(s.local, ':')
		if i < 0 {
			continue
		}
		port, err := strconv.Atoi(s.local[i+1:])
		if err != nil {
			continue
		}
		s.port = port
		host := strings.TrimSuffix(strings.TrimPrefix(s.local[:i], "["), "]")
		if j := strings.IndexByte(host, '%'); j >= 0 {
			host = host[:j]
		}
		s.host = host
		if len(f) > 4 {
			var names []string
			for _, m := range usersRE().FindAllStringSubmatch(strings.Join(f[4:], " "), -1) {
				names = append(names, m[1])
			}
			s.process = strings.Join(dedupe(names), ",")
		}
		out = append(out, s)
	}
	return out
}

func isWildcard(h string) bool {
	switch strings.Trim(h, "[]") {
	case "*", "0.0.0.0", "::":
		return true
	}
	return false
}

// reachable reports whether a socket bound to host is reachable at address want.
func reachable(want, host string) bool {
	if want == "" {
		return true
	}
	if isWildcard(want) {
		return isWildcard(host)
	}
	if host == "*" {
		return true
	}
	w, err1 := netip.ParseAddr(strings.Trim(want, "[]"))
	h, err2 := netip.ParseAddr(host)
	if err1 != nil || err2 != nil {
		return want == host
	}
	w = w.Unmap()
	if h.IsUnspecified() {
		return h.Is4() == w.Is4()
	}
	return h.Unmap() == w
}

func (p *portProbe) eval(e *env) verdict {
	what := fmt.Sprintf("%s port %d", p.Protocol, p.Port)
	if p.Address != "" {
		what += " on " + p.Address
	}
	a, why := e.output("net/listening")
	if why != "" {
		return erred(p.State, "%s", why)
	}
	var found []string
	for _, s := range parsed(e, "sockets", a, parseSockets) {
		if s.proto != p.Protocol || s.port != p.Port || !reachable(p.Address, s.host) {
			continue
		}
		if s.proto == "tcp" && s.state != "LISTEN" {
			continue
		}
		f := s.local
		if s.process != "" {
			f += " (" + s.process + ")"
		}
		found = append(found, f)
	}
	actual := "closed"
	if len(found) > 0 {
		actual = "listening on " + strings.Join(found, ", ")
	}
	switch {
	case p.State == "listening" && len(found) > 0:
		return passed(p.State, actual, "%s is %s", what, actual)
	case p.State == "listening":
		return failed(p.State, actual, "%s is not listening", what)
	case len(found) > 0:
		return failed(p.State, actual, "%s is %s", what, actual)
	}
	return passed(p.State, actual, "%s is closed", what)
}
