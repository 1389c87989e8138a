package collector

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

// Real `ss` output with listeners the test starts: those on loopback at ephemeral ports are
// dropped, one on loopback below the range stays, and keep_ephemeral keeps them all.
func TestEphemeralListenersDropped(t *testing.T) {
	testutil.Tool(t, "ss")
	tr := transport.NewLocal()
	f, err := tr.ReadFile(t.Context(), "/proc/sys/net/ipv4/ip_local_port_range", 0)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := ParsePortRange(f.Content)
	if !ok {
		t.Fatalf("port range %q", f.Content)
	}
	// Ports the kernel picks are inside the range: a TCP and a UDP socket on IPv4 and IPv6.
	var eph []string
	for _, nw := range []string{"tcp4", "tcp6"} {
		host := map[string]string{"tcp4": "127.0.0.1", "tcp6": "[::1]"}[nw]
		l, err := net.Listen(nw, host+":0")
		if err != nil {
			if nw == "tcp6" {
				continue // no IPv6 loopback here
			}
			t.Fatal(err)
		}
		defer l.Close()
		eph = append(eph, "tcp LISTEN "+l.Addr().String()+" ")
	}
	u, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	eph = append(eph, "udp UNCONN "+u.LocalAddr().String()+" ")
	// A loopback listener below the range is a service, not noise.
	var fixed net.Listener
	for p := r.Lo - 1; p > r.Lo-200 && fixed == nil; p-- {
		fixed, _ = net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p))
	}
	if fixed == nil {
		t.Fatal("no free port below the ephemeral range")
	}
	defer fixed.Close()
	keep := "tcp LISTEN " + fixed.Addr().String() + " "

	for _, keepEph := range []bool{false, true} {
		p := mustProfile(t, fmt.Sprintf(`
[[profile]]
name = "t"
[[profile.source]]
name = "net/ephemeral-ports"
files = ["/proc/sys/net/ipv4/ip_local_port_range"]
[[profile.source]]
name = "net/listening"
command = ["ss", "-H", "-tuln"]
normalise = ["ss"]
port_range = "net/ephemeral-ports"
keep_ephemeral = %v
`, keepEph))
		c, err := Collect(t.Context(), tr, "local", []*Profile{p}, testRedactor(t, "k"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		var a Artifact
		for _, x := range c.Artifacts {
			if x.Name == "net/listening" {
				a = x
			}
		}
		got := string(a.Content)
		if !strings.Contains(got, keep) {
			t.Errorf("keep_ephemeral=%v: loopback listener below the range dropped:\n%s", keepEph, got)
		}
		for _, e := range eph {
			if strings.Contains(got, e) != keepEph {
				t.Errorf("keep_ephemeral=%v: %q present=%v:\n%s", keepEph, e, !keepEph, got)
			}
		}
		want := fmt.Sprintf("%d-%d", r.Lo, r.Hi)
		if keepEph {
			want = ""
		}
		if a.Meta["ephemeral_ports"] != want {
			t.Errorf("keep_ephemeral=%v: meta %v, want ephemeral_ports %q", keepEph, a.Meta, want)
		}
	}
}

func TestDropEphemeralListeners(t *testing.T) {
	in := "tcp LISTEN 0.0.0.0:22 0.0.0.0:*\n" +
		"tcp LISTEN 127.0.0.1:41234 0.0.0.0:* users:((\"node\"))\n" +
		"tcp LISTEN [::1]:60999 [::]:*\n" +
		"tcp LISTEN [::ffff:127.0.0.1]:33000 [::]:*\n" +
		"udp UNCONN 127.0.0.53%lo:53 0.0.0.0:*\n" +
		"tcp LISTEN 10.0.0.5:40000 0.0.0.0:*\n" +
		"tcp LISTEN 127.0.0.1:32767 0.0.0.0:*\n" +
		"garbage\n"
	want := "tcp LISTEN 0.0.0.0:22 0.0.0.0:*\n" +
		"udp UNCONN 127.0.0.53%lo:53 0.0.0.0:*\n" +
		"tcp LISTEN 10.0.0.5:40000 0.0.0.0:*\n" +
		"tcp LISTEN 127.0.0.1:32767 0.0.0.0:*\n" +
		"garbage\n"
	if got := string(DropEphemeralListeners([]byte(in), PortRange{32768, 60999})); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for _, bad := range []string{"", "1", "a b", "60999 32768", "0 10", "1 70000", "1 2 3"} {
		if _, ok := ParsePortRange([]byte(bad)); ok {
			t.Errorf("ParsePortRange(%q) accepted", bad)
		}
	}
}
