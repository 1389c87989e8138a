package ssh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hardtrail/hardtrail/collector/transport"
	gossh "golang.org/x/crypto/ssh"
)

// Network devices (Cisco IOS, FortiOS, Junos, RouterOS, PAN-OS) have no POSIX shell to run a
// framed script: with Config.RawCommands each command is sent as its words joined by spaces, in a
// session of its own, and what comes back is the command's output.

// validRawWord refuses what would let one word start another command line on a device's CLI.
func validRawWord(w string) error {
	for _, r := range w {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q: control character in a device command", w)
		}
	}
	return nil
}

// runRaw runs c in a session of its own with no script around it.
func (t *Transport) runRaw(ctx context.Context, c transport.Command) (*transport.Result, error) {
	if err := validCommand(c); err != nil {
		return nil, err
	}
	for _, w := range c.Argv {
		if err := validRawWord(w); err != nil {
			return nil, err
		}
	}
	if c.Sudo {
		return nil, fmt.Errorf("%s: sudo is not available with raw commands (network devices)", c.Argv[0])
	}
	select {
	case t.sessions <- struct{}{}:
	case <-ctx.Done():
		return nil, t.fail(ctxStage(ctx), fmt.Errorf("waiting for a session: %w", ctx.Err()))
	}
	defer func() { <-t.sessions }()
	sess, err := t.newSession(ctx)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	max := c.MaxBytes
	if max <= 0 {
		max = transport.DefaultMaxBytes
	}
	// Past the cap the session is closed: a device stops sending when its channel goes.
	stdout := &transport.CapWriter{Max: max, OnFull: func() { sess.Close() }}
	stderr := &transport.CapWriter{Max: transport.MaxStderrBytes}
	sess.Stdout, sess.Stderr = stdout, stderr
	line := strings.Join(c.Argv, " ")
	start := time.Now()
	if err := sess.Start(line); err != nil {
		return nil, t.fail(StageCommand, fmt.Errorf("%s: %w", line, err))
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	cctx, cancel := context.WithTimeout(ctx, t.commandTimeout(c))
	defer cancel()
	var waitErr error
	stopped := false
	select {
	case waitErr = <-done:
	case <-cctx.Done():
		stopped = true
		sess.Signal(gossh.SIGKILL)
		sess.Close()
		select {
		case waitErr = <-done:
		case <-time.After(stopGrace):
			t.track(func() { <-done })
		}
	}
	res := &transport.Result{
		Stdout:    stdout.Take(),
		Stderr:    stderr.Take(),
		Duration:  time.Since(start),
		Truncated: stdout.Full(),
	}
	var exit *gossh.ExitError
	var missing *gossh.ExitMissingError
	switch {
	case res.Truncated:
		res.ExitCode = -1
		return res, nil
	case stopped:
		res.ExitCode = -1
		if ctx.Err() != nil {
			return res, t.fail(ctxStage(ctx), fmt.Errorf("%s: stopped after %s: %w", line, res.Duration.Round(time.Millisecond), ctx.Err()))
		}
		return res, t.fail(StageTimeout, fmt.Errorf("%s: stopped after %s (command timeout): %w",
			line, res.Duration.Round(time.Millisecond), context.DeadlineExceeded))
	case waitErr == nil:
	case errors.As(waitErr, &exit):
		res.ExitCode = exit.ExitStatus()
		if exit.Signal() != "" {
			res.ExitCode = -1
		}
	case errors.As(waitErr, &missing):
		// Many devices close the channel without an exit status: the output is the answer.
	default:
		if lost := t.lostErr(); lost != nil {
			return res, t.fail(StageTimeout, fmt.Errorf("%s: %w", line, lost))
		}
		return res, t.fail(StageCommand, fmt.Errorf("%s: %w", line, waitErr))
	}
	return res, nil
}

// runRawBatch runs each command in a session of its own, one after the other.
func (t *Transport) runRawBatch(ctx context.Context, cmds []transport.Command) []transport.BatchResult {
	out := make([]transport.BatchResult, len(cmds))
	for i, c := range cmds {
		out[i].Result, out[i].Err = t.runRaw(ctx, c)
	}
	return out
}

func (t *Transport) errRaw(op string) error {
	return t.fail(StageCommand, fmt.Errorf("%s needs a POSIX shell on the target, and raw commands "+
		"(network devices) have none: %w", op, errors.ErrUnsupported))
}
