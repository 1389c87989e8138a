package ssh_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/collector/transport/ssh/sshtest"
)

// BenchmarkSession compares nine commands run one session each with the same nine run as one
// framed session, against a loopback sshd. Beside the collector's wall time per op it reports the
// target's CPU per op (everything sshd's children used, read from /proc once the connection has
// ended, the connection's handshake included once) and the collector's own CPU per op.
func BenchmarkSession(b *testing.B) {
	f := newFixture(b, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	var cmds []transport.Command
	for _, argv := range [][]string{
		{"uname", "-a"}, {"id", "-u"}, {"cat", "/etc/os-release"}, {"sysctl", "-n", "kernel.hostname"},
		{"ls", "-l", "/etc/ssh"}, {"cat", "/proc/loadavg"}, {"hostname"}, {"date", "-u", "+%Y"}, {"true"},
	} {
		cmds = append(cmds, transport.Command{Argv: argv})
	}
	modes := []struct {
		name string
		run  func(b *testing.B, tr transport.Transport)
	}{
		{"per-command", func(b *testing.B, tr transport.Transport) {
			for _, c := range cmds {
				if _, err := tr.Run(b.Context(), c); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"batched", func(b *testing.B, tr transport.Transport) {
			rs, err := tr.(transport.Batcher).RunBatch(b.Context(), cmds)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range rs {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		}},
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			idle(b, f.srv)
			target0, self0 := f.srv.ChildCPU(b), selfCPU()
			tr := dial(b, f.config())
			for b.Loop() {
				m.run(b, tr)
			}
			tr.Close()
			idle(b, f.srv)
			n := float64(b.N)
			b.ReportMetric(float64((f.srv.ChildCPU(b)-target0).Microseconds())/1000/n, "target-cpu-ms/op")
			b.ReportMetric(float64((selfCPU()-self0).Microseconds())/1000/n, "collector-cpu-ms/op")
		})
	}
}

// idle waits until the server has reaped every connection, so that their CPU is counted.
func idle(b *testing.B, srv *sshtest.Server) {
	deadline := time.Now().Add(5 * time.Second)
	for srv.Connections() > 0 {
		if time.Now().After(deadline) {
			b.Fatal("sshd connections did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
