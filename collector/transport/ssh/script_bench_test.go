package ssh

import (
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/collector/transport"
)

// BenchmarkScriptStep runs the session script with the local sh, as sshd would, for 50 steps of
// `true`, and reports the CPU the script and everything it started used per step: what the
// isolation of a step (its session, relays and end-of-step kill) costs a target.
func BenchmarkScriptStep(b *testing.B) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		b.Skip("no sh")
	}
	const n = 50
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
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N*n), "target-cpu-ms/step")
}
