package ssh

import (
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/collector/transport"
)

// BenchmarkScriptStep runs the session script with the local sh, as sshd would, for 50 steps of
// `true`, and reports the CPU the script and everything it started used per step: what the
// isolation of a step (its session, relays and end-of-step kill) costs a target. Beside it,
// "plain" is the same 50 commands as one `sh -c 'true; true; ...'`, as an ssh loop runs them:
// the difference is what isolation adds to each command.
func BenchmarkScriptStep(b *testing.B) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		b.Skip("no sh")
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		b.Skip("no true")
	}
	const n = 50
	b.Run("isolated", func(b *testing.B) {
		var steps []step
		for range n {
			steps = append(steps, step{kind: stepCommand, argv: []string{"true"}, max: 100})
		}
		var cpu time.Duration
		for b.Loop() {
			marker := newMarker()
			body := script(marker, steps)
			cmd := exec.Command(sh, "-c", `eval "$(head -c `+fmt.Sprint(len(body))+`)"`)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // as under sshd, for the watchdog
			stdin, err := cmd.StdinPipe()
			if err != nil {
				b.Fatal(err)
			}
			fr := newFrameReader(marker, func(int) io.Writer { return &transport.CapWriter{Max: 100} })
			cmd.Stdout, cmd.Stderr = fr, io.Discard
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			stdin.Write(body)
			if err := cmd.Wait(); err != nil || !fr.isFinished() {
				b.Fatalf("script: %v, finished %v", err, fr.isFinished())
			}
			cpu += childCPU(cmd)
		}
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N*n), "target-cpu-ms/step")
	})
	b.Run("plain", func(b *testing.B) {
		line := strings.Repeat(truePath+"; ", n)
		var cpu time.Duration
		for b.Loop() {
			cmd := exec.Command(sh, "-c", line)
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
			cpu += childCPU(cmd)
		}
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N*n), "target-cpu-ms/step")
	})
}

func childCPU(cmd *exec.Cmd) time.Duration {
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
