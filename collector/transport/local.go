package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sbinDirs are searched after PATH: sshd, iptables-save and nft live there and are often missing
// from the PATH of a non-root user or a systemd unit.
var sbinDirs = []string{"/usr/local/sbin", "/usr/sbin", "/sbin"}

// Local runs commands on this machine. Each command runs in a process group of its own with a
// tag in its environment; when it ends, for any reason, what is left of its group and every
// process carrying its tag are killed. A helper shell (the reaper) holds a pipe from this
// process: if this process dies, even by SIGKILL, the pipe ends and the reaper kills the groups
// and tagged processes of the commands that were running.
type Local struct {
	// WaitDelay bounds how long Run waits for output after the command was stopped (default 2s).
	WaitDelay time.Duration
	// CommandTimeout bounds a command whose Timeout is zero (default DefaultCommandTimeout).
	CommandTimeout time.Duration
	// Workers bounds how many steps Gather runs at once (default 4).
	Workers  int
	isRoot   bool
	hostname string
}

var _ Transport = (*Local)(nil)

// NewLocal returns a transport for this machine.
func NewLocal() *Local {
	h, _ := os.Hostname()
	return &Local{isRoot: os.Geteuid() == 0, hostname: h, WaitDelay: 2 * time.Second, CommandTimeout: DefaultCommandTimeout}
}

// Gather implements Transport: each step through Run, ReadFile and Glob, Workers at a time.
func (l *Local) Gather(ctx context.Context, g Gathering) (*Gathered, error) {
	return GatherEach(ctx, l, g, l.Workers)
}

// Info implements Transport.
func (l *Local) Info() Info { return Info{Kind: "local", Hostname: l.hostname} }

// Close implements Transport.
func (l *Local) Close() error { return nil }

// LookPath finds a program in PATH, then in the sbin directories.
func LookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil || strings.Contains(name, "/") {
		return p, err
	}
	for _, d := range sbinDirs {
		c := filepath.Join(d, name)
		if st, serr := os.Stat(c); serr == nil && st.Mode().IsRegular() {
			if st.Mode()&0o111 == 0 {
				return "", fmt.Errorf("%s: %w", c, ErrPermission)
			}
			return c, nil
		}
	}
	return "", err
}

// Run implements Transport.
func (l *Local) Run(ctx context.Context, c Command) (*Result, error) {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return nil, errors.New("empty command")
	}
	argv := c.Argv
	if c.Sudo && !l.isRoot {
		argv = append([]string{"sudo", "-n", "--"}, argv...)
	}
	path, err := LookPath(argv[0])
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", argv[0], ErrNotFound)
		}
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, ErrPermission) {
			return nil, fmt.Errorf("%s: %w", argv[0], ErrPermission)
		}
		return nil, err
	}
	max := c.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = l.CommandTimeout
	}
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	tctx, tcancel := context.WithTimeout(ctx, timeout)
	defer tcancel()
	runCtx, cancel := context.WithCancel(tctx)
	defer cancel()
	tag := nextTag()
	cmd := exec.CommandContext(runCtx, path, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Env = append(os.Environ(), "LC_ALL=C", "SYSTEMD_PAGER=", "PAGER=cat", "SYSTEMD_COLORS=0", tagVar+"="+tag)
	cmd.Stdin = nil
	// A process group of its own, so a timeout stops everything the command started; and the
	// kernel kills the command itself if this process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(cmd.SysProcAttr)
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		killTagged(tag) // what left the group holds the output open
		return err
	}
	wd := l.WaitDelay
	if wd <= 0 {
		wd = 2 * time.Second
	}
	cmd.WaitDelay = wd
	stdout := &CapWriter{Max: max, OnFull: cancel}
	stderr := &CapWriter{Max: MaxStderrBytes}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	start := time.Now()
	err = cmd.Start()
	if err == nil {
		pgid := cmd.Process.Pid
		reap.add(pgid)
		err = cmd.Wait()
		// Nothing the command started outlives it: its group, and whatever left the group
		// but kept the tag.
		syscall.Kill(-pgid, syscall.SIGKILL)
		killTagged(tag)
		reap.remove(pgid)
	}
	res := &Result{
		Stdout:    stdout.Take(),
		Stderr:    stderr.Take(),
		Duration:  time.Since(start),
		Truncated: stdout.Full(),
		ExitCode:  -1,
	}
	if cmd.ProcessState != nil && !res.Truncated {
		res.ExitCode = cmd.ProcessState.ExitCode() // past the cap, the status is ours, not its
	}
	if err != nil {
		var ee *exec.ExitError
		switch {
		case ctx.Err() != nil:
			return res, fmt.Errorf("%s: stopped after %s: %w", argv[0], res.Duration.Round(time.Millisecond), ctx.Err())
		case tctx.Err() != nil:
			res.ExitCode = -1
			return res, fmt.Errorf("%s: stopped after %s (command timeout %s): %w", argv[0],
				res.Duration.Round(time.Millisecond), timeout, context.DeadlineExceeded)
		case res.Truncated:
			// Stopped by us at the cap: the output so far is the artifact.
			return res, nil
		case errors.As(err, &ee):
			return res, nil
		case errors.Is(err, exec.ErrWaitDelay):
			// The command exited but a child kept its output open; what it wrote is kept.
			return res, nil
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("%s: %w", argv[0], ErrPermission)
		default:
			return nil, fmt.Errorf("%s: %w", argv[0], err)
		}
	}
	return res, nil
}

// ReadFile implements Transport.
func (l *Local) ReadFile(ctx context.Context, path string, maxBytes int64) (*File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	// Non-blocking, so that a FIFO or device fails the regular-file check instead of hanging.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fileErr(path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fileErr(path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, st.Mode().Type())
	}
	buf, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return nil, fileErr(path, err)
	}
	out := &File{Path: path, Size: st.Size(), Mode: st.Mode().Perm() | st.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)}
	if int64(len(buf)) > maxBytes {
		buf, out.Truncated = buf[:maxBytes], true
	}
	out.Content = buf
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		out.Owner, out.Group = lookupUser(sys.Uid), lookupGroup(sys.Gid)
	}
	return out, nil
}

func fileErr(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w", path, ErrNotFound)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: %w", path, ErrPermission)
	}
	return err
}

// Glob implements Transport.
func (l *Local) Glob(ctx context.Context, pattern string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(pattern) {
		return nil, fmt.Errorf("glob %q: pattern must be an absolute path", pattern)
	}
	m, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("glob %q: %w", pattern, err)
	}
	sort.Strings(m)
	return m, nil
}

var (
	idMu   sync.Mutex
	users  = map[uint32]string{}
	groups = map[uint32]string{}
)

func lookupUser(uid uint32) string {
	idMu.Lock()
	defer idMu.Unlock()
	if n, ok := users[uid]; ok {
		return n
	}
	n := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(n); err == nil {
		n = u.Username
	}
	users[uid] = n
	return n
}

func lookupGroup(gid uint32) string {
	idMu.Lock()
	defer idMu.Unlock()
	if n, ok := groups[gid]; ok {
		return n
	}
	n := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(n); err == nil {
		n = g.Name
	}
	groups[gid] = n
	return n
}

// CapWriter keeps at most Max bytes. Past the cap it discards and still reports success: an error
// from a writer would make the command's Wait hang or fail instead of stopping it cleanly.
// OnFull, if set, is called once when the cap is first passed.
type CapWriter struct {
	Max    int64
	OnFull func()
	mu     sync.Mutex
	buf    bytes.Buffer
	full   bool
	taken  bool // Take handed the buffer on
}

// Write implements io.Writer.
func (w *CapWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.full || w.taken {
		return len(p), nil
	}
	room := w.Max - int64(w.buf.Len())
	if int64(len(p)) <= room {
		w.buf.Write(p)
		return len(p), nil
	}
	w.buf.Write(p[:room])
	w.full = true
	if w.OnFull != nil {
		go w.OnFull()
	}
	return len(p), nil
}

// Bytes returns what was kept.
func (w *CapWriter) Bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

// Take returns what was kept without copying it and leaves the writer empty; what is written
// after is discarded. It is how a finished command hands its output on: one buffer per
// output, not two.
func (w *CapWriter) Take() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.buf.Bytes()
	w.buf, w.taken = bytes.Buffer{}, true
	return b
}

// Full reports whether the cap was passed.
func (w *CapWriter) Full() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.full
}
