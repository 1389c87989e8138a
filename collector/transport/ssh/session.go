package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hardtrail/hardtrail/collector/transport"
	gossh "golang.org/x/crypto/ssh"
)

// run is one session's outcome: what each step wrote, and why steps left unfinished did not end.
type run struct {
	t      *Transport
	steps  []step
	stdout *frameReader
	stderr *frameReader
	outs   []*transport.CapWriter
	errs   []*transport.CapWriter
	reads  []*recordReader // a glob read step's stdout; nil for other steps
	cause  error           // why unfinished steps did not finish; nil when the script ran to its end

	ctl      *control
	mu       sync.Mutex
	pgids    map[int]int  // step -> its command's process group ID on the target, from the P line
	exited   map[int]bool // steps whose command exited (X line) while its output may still be open
	stops    map[int]bool // steps asked to stop: output past the cap, or the timeout passed
	timedOut map[int]bool
	timers   []*time.Timer
	ended    bool // the session is over; no more stop requests
}

// killGrace is how long a command has between SIGTERM and SIGKILL.
const killGrace = 2 * time.Second

// waitDelay is how long a command that exited may leave a process of its own holding its output
// open before that process is killed, as Local's WaitDelay.
const waitDelay = 2 * time.Second

// note handles a P or X line of step i's stderr frame.
func (r *run) note(kind byte, i, v int) {
	switch kind {
	case 'P':
		r.started(i, v)
	case 'X':
		r.exit(i)
	}
}

// started records step i's command's process group and starts its timeout. The P line comes on
// stderr, so it may be read after stdout has ended the step: then the group is not signalled.
func (r *run) started(i, pgid int) {
	done := !r.incomplete(i)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || done || r.pgids[i] != 0 {
		return
	}
	r.pgids[i] = pgid
	if r.stops[i] {
		r.signalLocked(i, pgid)
	}
	if d := r.steps[i].timeout; d > 0 {
		r.timers = append(r.timers, time.AfterFunc(d, func() {
			if r.incomplete(i) {
				r.mu.Lock()
				timedOut := !r.exited[i]
				r.timedOut[i] = timedOut
				r.mu.Unlock()
				if timedOut {
					r.stop(i)
				}
			}
		}))
	}
}

// exit records that step i's command exited; what it left holding its output is killed
// waitDelay later if the step has not ended by then.
func (r *run) exit(i int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || r.exited[i] {
		return
	}
	r.exited[i] = true
	pgid := r.pgids[i]
	if pgid == 0 {
		return
	}
	r.timers = append(r.timers, time.AfterFunc(waitDelay, func() {
		if r.incomplete(i) {
			r.ctl.send(fmt.Sprintf("K %d %d\n", pgid, i))
		}
	}))
}

// stop asks the target to stop step i's command: SIGTERM to its group now (or as soon as it is
// known), SIGKILL to its group, session and tagged processes after killGrace if the step has not
// ended by then.
func (r *run) stop(i int) {
	done := !r.incomplete(i)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || done || r.stops[i] {
		return
	}
	r.stops[i] = true
	if pgid := r.pgids[i]; pgid != 0 {
		r.signalLocked(i, pgid)
	}
}

func (r *run) signalLocked(i, pgid int) {
	r.ctl.send(fmt.Sprintf("T %d %d\n", pgid, i))
	r.timers = append(r.timers, time.AfterFunc(killGrace, func() {
		if r.incomplete(i) {
			r.ctl.send(fmt.Sprintf("K %d %d\n", pgid, i))
		}
	}))
}

// finish ends stop requests and their timers.
func (r *run) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = true
	for _, t := range r.timers {
		t.Stop()
	}
}

// control owns a session's stdin: the script first, then stop requests for the watchdog, then
// EOF. x/crypto's CloseWrite must not race a Write, so all three hold mu.
type control struct {
	mu     sync.Mutex
	w      io.WriteCloser
	closed bool
	wrote  chan struct{} // closed once the script is written
}

func startControl(w io.WriteCloser, body []byte) *control {
	c := &control{w: w, wrote: make(chan struct{})}
	c.mu.Lock()
	go func() {
		defer c.mu.Unlock()
		c.w.Write(body)
		close(c.wrote)
	}()
	return c
}

// send writes one line after the script, unless stdin is closed; it never blocks the caller.
func (c *control) send(line string) {
	go func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.closed {
			c.w.Write([]byte(line))
		}
	}()
}

// close sends EOF once the script and pending lines are written; it reports whether it could
// within the time given.
func (c *control) close(within time.Duration) bool {
	done := make(chan struct{})
	go func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.closed {
			c.closed = true
			c.w.Close()
		}
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(within):
		return false
	}
}

// session runs steps as one framed script in one session. It fails as a whole only when no
// session could be started; a session that breaks part way leaves the finished steps' results.
// ctx ending, or limit passing, stops the remote processes (stdin closed for the watchdog, a
// signal, then the channel closed).
func (t *Transport) session(ctx context.Context, steps []step, limit time.Duration) (*run, error) {
	select {
	case t.sessions <- struct{}{}:
	case <-ctx.Done():
		return nil, t.fail(ctxStage(ctx), fmt.Errorf("waiting for a session: %w", ctx.Err()))
	}
	defer func() { <-t.sessions }()

	r := &run{t: t, steps: steps, pgids: map[int]int{}, exited: map[int]bool{}, stops: map[int]bool{}, timedOut: map[int]bool{}}
	defer r.finish()
	marker := newMarker()
	for i, s := range steps {
		max := s.max
		if s.kind == stepFile {
			max += maxFrameLine // the stat line comes first
		}
		var rr *recordReader
		if s.kind == stepGlobRead {
			max = 0
			rr = newRecordReader(recordMarker(marker), s.max+1+maxFrameLine, maxGlobFiles)
		}
		out := &transport.CapWriter{Max: max}
		if s.kind == stepCommand {
			out.OnFull = func() { r.stop(i) }
		}
		r.outs = append(r.outs, out)
		r.errs = append(r.errs, &transport.CapWriter{Max: transport.MaxStderrBytes})
		r.reads = append(r.reads, rr)
	}
	r.stdout = newFrameReader(marker, func(i int) io.Writer {
		switch {
		case i >= len(steps):
			return nil
		case r.reads[i] != nil:
			return r.reads[i]
		}
		return r.outs[i]
	})
	r.stderr = newFrameReader(marker, func(i int) io.Writer {
		if i < len(steps) {
			return r.errs[i]
		}
		return nil
	})
	r.stderr.note = r.note

	sess, err := t.newSession(ctx)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	stdin, err := sess.StdinPipe()
	if err != nil {
		return nil, t.fail(StageCommand, err)
	}
	sess.Stdout, sess.Stderr = r.stdout, r.stderr
	body := script(marker, steps)
	if err := sess.Start(commandLine(len(body))); err != nil {
		return nil, t.fail(StageCommand, fmt.Errorf("starting the remote shell: %w", err))
	}
	r.ctl = startControl(stdin, body)
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()

	lctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var waitErr error
	select {
	case waitErr = <-done:
		if !r.ctl.close(stopGrace) {
			sess.Close() // the target never read the script; closing the channel ends the write
			<-r.ctl.wrote
		}
	case <-lctx.Done():
		// EOF on stdin wakes the watchdog, which stops every process of the session; the
		// signal reaches the shell at once; closing the channel is the last resort.
		r.stdout.halt()
		r.ctl.close(stopGrace / 2)
		sess.Signal(gossh.SIGTERM)
		select {
		case waitErr = <-done:
		case <-time.After(stopGrace):
			sess.Close()
			select {
			case waitErr = <-done:
			case <-time.After(stopGrace):
				// sshd holds a channel open while a process of its session lives (a target
				// without pkill, a process that escaped): leave the session to end with it,
				// or with the connection, and answer now.
				t.track(func() {
					<-done
					<-r.ctl.wrote
				})
			}
		}
		switch {
		case ctx.Err() != nil:
			r.cause = t.fail(ctxStage(ctx), ctx.Err())
		default:
			r.cause = t.fail(StageTimeout, fmt.Errorf("no result within %s: %w", limit, context.DeadlineExceeded))
		}
	}
	t.mu.Lock()
	if h := r.stdout.host(); h != "" && t.hostname == "" {
		t.hostname = h
	}
	t.mu.Unlock()
	if r.cause == nil && !r.stdout.isFinished() {
		r.cause = r.broken(waitErr)
	}
	return r, nil
}

// broken explains a script that did not reach its end although nobody stopped it.
func (r *run) broken(waitErr error) error {
	if lost := r.t.lostErr(); lost != nil {
		return r.t.fail(StageTimeout, lost)
	}
	if _, ok := r.stdout.result(0); !ok {
		var ee *gossh.ExitError
		if errors.As(waitErr, &ee) {
			// The script never framed a step: no POSIX shell, or no head(1).
			return r.t.fail(StageCommand, fmt.Errorf("the target did not run the command script (exit %d): "+
				"it needs a POSIX sh and head(1) in PATH: %s", ee.ExitStatus(), r.stderr.unframed()))
		}
	}
	if waitErr == nil {
		waitErr = errors.New("the remote shell ended early")
	}
	return r.t.fail(StageCommand, fmt.Errorf("the session ended before the command finished: %w", waitErr))
}

func ctxStage(ctx context.Context) Stage {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return StageTimeout
	}
	return StageCommand
}

// newSession opens a session channel, giving up when ctx ends.
func (t *Transport) newSession(ctx context.Context) (*gossh.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, t.fail(ctxStage(ctx), err)
	}
	select {
	case <-t.closed:
		return nil, t.fail(StageCommand, errors.New("transport is closed"))
	default:
	}
	type opened struct {
		s   *gossh.Session
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		s, err := t.client.NewSession()
		ch <- opened{s, err}
	}()
	select {
	case o := <-ch:
		if o.err != nil {
			if lost := t.lostErr(); lost != nil {
				return nil, t.fail(StageTimeout, lost)
			}
			return nil, t.fail(StageCommand, fmt.Errorf("opening a session: %w", o.err))
		}
		return o.s, nil
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.s != nil {
				o.s.Close()
			}
		}()
		return nil, t.fail(ctxStage(ctx), fmt.Errorf("opening a session: %w", ctx.Err()))
	}
}

// incomplete reports whether step i has no end frame.
func (r *run) incomplete(i int) bool {
	s, ok := r.stdout.result(i)
	return !ok || !s.done
}

// end returns step i's end frame fields (status, code) and its duration, or an error saying why it
// did not end.
func (r *run) end(i int, name string) (status, code int, d time.Duration, err error) {
	s, ok := r.stdout.result(i)
	if ok && !s.done {
		d = time.Since(s.begun)
	}
	if !ok || !s.done {
		cause := r.cause
		if cause == nil {
			cause = r.t.fail(StageCommand, errors.New("the remote shell skipped this step"))
		}
		if ok {
			return 0, 0, d, fmt.Errorf("%s: stopped after %s: %w", name, d.Round(time.Millisecond), cause)
		}
		return 0, 0, 0, fmt.Errorf("%s: %w", name, cause)
	}
	d = s.ended.Sub(s.begun)
	if len(s.fields) != 2 {
		return 0, 0, d, r.t.fail(StageCommand, fmt.Errorf("%s: malformed end frame %q", name, s.fields))
	}
	status, err1 := strconv.Atoi(s.fields[0])
	code, err2 := strconv.Atoi(s.fields[1])
	if err1 != nil || err2 != nil {
		return 0, 0, d, r.t.fail(StageCommand, fmt.Errorf("%s: malformed end frame %q", name, s.fields))
	}
	return status, code, d, nil
}

// command builds step i's Result the way Local would.
func (r *run) command(i int, name string) (*transport.Result, error) {
	status, code, d, err := r.end(i, name)
	res := &transport.Result{
		Stdout:    r.outs[i].Take(),
		Stderr:    r.errs[i].Take(),
		ExitCode:  code,
		Duration:  d,
		Truncated: r.outs[i].Full(),
	}
	if err != nil {
		if d == 0 {
			return nil, err
		}
		res.ExitCode = -1
		return res, err
	}
	if status != 0 && r.steps[i].sudo {
		name += " (or sudo, unless the login user is root)"
	}
	switch status {
	case 0:
	case 1:
		return nil, fmt.Errorf("%s: %w", name, transport.ErrNotFound)
	case 2:
		return nil, fmt.Errorf("%s: %w", name, transport.ErrPermission)
	default:
		return nil, r.t.fail(StageCommand, fmt.Errorf("%s: unknown step status %d", name, status))
	}
	// The shell reports death by signal N as 128+N; Local reports it as -1, and so a command
	// stopped at the cap, whether or not it ended first.
	if code > 128 && code <= 128+64 || res.Truncated {
		res.ExitCode = -1
	}
	r.mu.Lock()
	timedOut := r.timedOut[i]
	r.mu.Unlock()
	if timedOut {
		res.ExitCode = -1
		return res, r.t.fail(StageTimeout, fmt.Errorf("%s: stopped after %s (command timeout): %w",
			name, d.Round(time.Millisecond), context.DeadlineExceeded))
	}
	return res, nil
}

// file builds step i's File from the stat line and the content after it.
func (r *run) file(i int, p string, max int64) (*transport.File, error) {
	status, code, _, err := r.end(i, p)
	if err != nil {
		return nil, err
	}
	return r.fileFrom(p, status, code, string(r.errs[i].Take()), r.outs[i].Take(), max)
}

// fileFrom builds a File from a read's status and code (as a file step's end frame has them),
// its stderr, and what it wrote: the stat line, then the content.
func (r *run) fileFrom(p string, status, code int, stderr string, out []byte, max int64) (*transport.File, error) {
	switch status {
	case 1:
		return nil, fmt.Errorf("%s: %w", p, transport.ErrNotFound)
	case 2:
		return nil, fmt.Errorf("%s: %w", p, transport.ErrPermission)
	}
	if code != 0 {
		// A file that vanished or became unreadable during the read has status 1 or 2: the
		// script tests again after a failure.
		return nil, r.t.fail(StageCommand, fmt.Errorf("read %s: exit %d: %s", p, code, strings.TrimSpace(stderr)))
	}
	nl := bytes.IndexByte(out, '\n')
	if nl < 0 {
		return nil, r.t.fail(StageCommand, fmt.Errorf("read %s: no stat line", p))
	}
	f, typ, err := parseStat(string(out[:nl]))
	if err != nil {
		return nil, r.t.fail(StageCommand, fmt.Errorf("read %s: %w", p, err))
	}
	if typ != 0 {
		return nil, fmt.Errorf("%s: %w (%s)", p, transport.ErrNotRegular, (f.Mode | typ).Type())
	}
	f.Path, f.Content = p, out[nl+1:]
	if int64(len(f.Content)) > max {
		f.Content, f.Truncated = f.Content[:max], true
	}
	return f, nil
}

// parseStat reads `stat -c '%s %f %u %g %U %G'`: size, raw mode in hex, numeric and named owner
// and group. It returns the file type bits apart (zero for a regular file).
func parseStat(line string) (*transport.File, fs.FileMode, error) {
	f := strings.Fields(line)
	if len(f) != 6 {
		return nil, 0, fmt.Errorf("stat line %q: want 6 fields", line)
	}
	size, err1 := strconv.ParseInt(f[0], 10, 64)
	raw, err2 := strconv.ParseUint(f[1], 16, 32)
	if err1 != nil || err2 != nil || size < 0 {
		return nil, 0, fmt.Errorf("stat line %q: bad size or mode", line)
	}
	mode := fs.FileMode(raw & 0o777)
	if raw&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if raw&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if raw&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	var typ fs.FileMode
	switch raw & 0o170000 {
	case 0o100000:
	case 0o040000:
		typ = fs.ModeDir
	case 0o120000:
		typ = fs.ModeSymlink
	case 0o010000:
		typ = fs.ModeNamedPipe
	case 0o140000:
		typ = fs.ModeSocket
	case 0o020000:
		typ = fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		typ = fs.ModeDevice
	default:
		typ = fs.ModeIrregular
	}
	owner, group := f[4], f[5]
	if owner == "UNKNOWN" {
		owner = f[2]
	}
	if group == "UNKNOWN" {
		group = f[3]
	}
	return &transport.File{Size: size, Mode: mode, Owner: owner, Group: group}, typ, nil
}

// glob turns step i's NUL-separated names into the sorted matches of pattern.
func (r *run) glob(i int, pattern string) ([]string, error) {
	if _, _, _, err := r.end(i, "glob "+pattern); err != nil {
		return nil, err
	}
	if r.outs[i].Full() {
		return nil, r.t.fail(StageCommand, fmt.Errorf("glob %q: more than %d bytes of names", pattern, r.steps[i].max))
	}
	seen := map[string]bool{}
	var out []string
	for _, name := range strings.Split(string(r.outs[i].Bytes()), "\x00") {
		if name == "" || seen[name] || path.Clean(name) != name {
			continue
		}
		if ok, _ := path.Match(pattern, name); ok {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// globRead turns step i's records into the sorted matches of pattern, each read as ReadFile
// would have read it.
func (r *run) globRead(i int, pattern string, max int64) ([]string, []transport.FileResult, error) {
	if _, _, _, err := r.end(i, "glob "+pattern); err != nil {
		return nil, nil, err
	}
	recs, overflow := r.reads[i].result()
	if overflow {
		return nil, nil, r.t.fail(StageCommand, fmt.Errorf("glob %q: more than %d files match", pattern, maxGlobFiles))
	}
	stderr := string(r.errs[i].Take())
	type match struct {
		path string
		res  transport.FileResult
	}
	var ms []match
	seen := map[string]bool{}
	for _, rec := range recs {
		name := rec.path
		if name == "" || seen[name] || path.Clean(name) != name {
			continue
		}
		if ok, _ := path.Match(pattern, name); !ok {
			continue
		}
		seen[name] = true
		m := match{path: name}
		status, err1 := 0, error(nil)
		code := 0
		if len(rec.fields) == 2 {
			status, err1 = strconv.Atoi(rec.fields[0])
			if err1 == nil {
				code, err1 = strconv.Atoi(rec.fields[1])
			}
		}
		switch {
		case !rec.done:
			m.res.Err = r.t.fail(StageCommand, fmt.Errorf("%s: the read did not finish", name))
		case len(rec.fields) != 2 || err1 != nil:
			m.res.Err = r.t.fail(StageCommand, fmt.Errorf("%s: malformed end record %q", name, rec.fields))
		default:
			m.res.File, m.res.Err = r.fileFrom(name, status, code, stderr, rec.body.Take(), max)
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		return nil, nil, nil
	}
	sort.Slice(ms, func(a, b int) bool { return ms[a].path < ms[b].path })
	paths := make([]string, len(ms))
	files := make([]transport.FileResult, len(ms))
	for k, m := range ms {
		paths[k], files[k] = m.path, m.res
	}
	return paths, files, nil
}
