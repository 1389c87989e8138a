package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hardtrail/hardtrail/collector/transport"
	gossh "golang.org/x/crypto/ssh"
)

// Some devices (Cisco IOS and ASA, FortiOS, PAN-OS) offer only their interactive CLI, or drop
// the whole connection after one exec request. RunShell drives that CLI the way an operator
// does: one terminal session, the prompt found on the last line of output, each line sent and
// its output read until the prompt is back, with the echoed line, pager prompts and the prompt
// removed.

const (
	// shellCols is the terminal width asked for: wide, so no device wraps a long line.
	shellCols = 511
	// shellSettle is how long the output must stay quiet after a prompt before it counts, so a
	// configuration line that looks like a prompt and arrives at a packet's end is not taken
	// for one.
	shellSettle = 30 * time.Millisecond
	// shellNudge is how long a session may stay quiet without a prompt before a bare line end
	// is sent, as some CLIs wait for one before their first prompt.
	shellNudge = time.Second
	// shellTail is how much output is kept past a command's cap to find the prompt in.
	shellTail = 4096
	// shellSetupMax caps what the banner and each setup line may print.
	shellSetupMax = 1 << 20
)

// pagerPrompt matches a pager's prompt at the end of the output: Cisco IOS and FortiOS
// "--More--", ASA "<--- More --->", Junos "---(more 45%)---", RouterOS "-- [Q quit|D dump|down]",
// Huawei VRP "  ---- More ----".
var pagerPrompt = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?:-- ?More ?--|<--- More --->|---\(more(?: \d+%)?\)---|-- \[Q quit\|D dump\|down\]|---- More ----)[ \t]*$`)
})

// pagerRemnant is a pager prompt left at the start of a line by a device that does not erase it.
var pagerRemnant = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[ \t]*(?:-- ?More ?--|<--- More --->|---\(more(?: \d+%)?\)---|-- \[Q quit\|D dump\|down\]|---- More ----)[ \t]*`)
})

// cliError matches what CLIs print when they refuse a command, on one of its first lines.
var cliError = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\s*(?:% ?(?:Invalid|Incomplete|Ambiguous|Unknown|Unrecognized|Bad|Error|Authorization failed|Access denied)|(?:syntax )?error:|Error: |syntax error|Unknown command|Invalid syntax|Command fail|ERROR:|bad command name|expected end of command|unknown command)`)
})

// passwordPrompt matches a CLI asking for the enable secret.
var passwordPrompt = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)^\s*(?:enable )?password: ?$`) })

var _ = (interface {
	RunShell(context.Context, transport.Shell, []transport.Command) ([]transport.BatchResult, error)
})((*Transport)(nil))

// RunShell runs cmds in an interactive CLI session: see collector.ShellRunner for the contract.
// The session asks for a terminal 511 columns wide; each wait for the prompt (the first, after
// each setup line, after each command) is bounded by the command timeout. A pager prompt that
// still appears is answered with a space. When the prompt pattern has a group named "host", its
// match names the target. With sh.Enable set and a first prompt ending in '>', the enable line
// is sent and the target's enable secret typed at the password prompt; a device that asks
// again or stays unprivileged fails the session with ErrEnableRefused.
func (t *Transport) RunShell(ctx context.Context, sh transport.Shell, cmds []transport.Command) ([]transport.BatchResult, error) {
	if sh.Prompt == nil {
		return nil, errors.New("interactive session: no prompt pattern")
	}
	for _, l := range append(slices.Clone(sh.Setup), sh.Enable) {
		if l == "" {
			continue
		}
		if err := validRawWord(l); err != nil {
			return nil, err
		}
	}
	out := make([]transport.BatchResult, len(cmds))
	var sess *shell
	defer func() {
		if sess != nil {
			sess.close()
		}
	}()
	opened := false
	for i, c := range cmds {
		line, err := shellLine(c)
		if err != nil {
			out[i].Err = err
			continue
		}
		if sess == nil {
			if sess, err = t.openShell(ctx, sh); err != nil {
				if !opened {
					return nil, err
				}
				for j := i; j < len(cmds); j++ {
					if out[j].Err == nil {
						out[j].Err = err
					}
				}
				return out, nil
			}
			opened = true
		}
		out[i].Result, out[i].Err = sess.run(ctx, line, c.MaxBytes)
		if out[i].Err != nil {
			// The session is in an unknown state: the next command gets a new one.
			sess.close()
			sess = nil
		}
	}
	return out, nil
}

// shellLine is the CLI line of a command.
func shellLine(c transport.Command) (string, error) {
	if err := validCommand(c); err != nil {
		return "", err
	}
	for _, w := range c.Argv {
		if err := validRawWord(w); err != nil {
			return "", err
		}
	}
	if c.Sudo {
		return "", fmt.Errorf("%s: sudo is not available in a device CLI", c.Argv[0])
	}
	return strings.Join(c.Argv, " "), nil
}

// shell is one interactive session: its output accumulates in buf until a prompt ends it.
type shell struct {
	t      *Transport
	sess   *gossh.Session
	stdin  io.WriteCloser
	prompt *regexp.Regexp
	done   chan struct{} // closed when the session has ended
	notify chan struct{} // signalled on new output

	// known is the prompt as the session's first prompt showed it (after enable, the
	// privileged one).
	known string
	// ask, while set, is a prompt for input (a password) that ends a wait as asked.
	ask *regexp.Regexp

	mu      sync.Mutex
	buf     []byte
	max     int  // bytes of the current output kept before the tail window
	dropped bool // output past max was discarded
	closed  bool
}

// Write collects output; past max it keeps only a tail window to find the prompt in.
func (s *shell) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.buf = append(s.buf, p...)
	if s.max > 0 && len(s.buf) > s.max+2*shellTail {
		n := copy(s.buf[s.max:], s.buf[len(s.buf)-shellTail:])
		s.buf = s.buf[:s.max+n]
		s.dropped = true
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return len(p), nil
}

// reset starts collecting the output of a new line, keeping at most max bytes of it.
func (s *shell) reset(max int) {
	s.mu.Lock()
	s.buf, s.max, s.dropped = s.buf[:0], max, false
	s.mu.Unlock()
}

func (s *shell) snapshot() ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.buf), s.dropped
}

// openShell opens a session with a terminal, waits for the first prompt, enters privileged mode
// when asked to and needed, and sends the setup lines.
func (t *Transport) openShell(ctx context.Context, spec transport.Shell) (*shell, error) {
	prompt, setup := spec.Prompt, spec.Setup
	select {
	case t.sessions <- struct{}{}:
	case <-ctx.Done():
		return nil, t.fail(ctxStage(ctx), fmt.Errorf("waiting for a session: %w", ctx.Err()))
	}
	sess, err := t.newSession(ctx)
	if err != nil {
		<-t.sessions
		return nil, err
	}
	s := &shell{t: t, sess: sess, prompt: prompt, done: make(chan struct{}), notify: make(chan struct{}, 1), max: shellSetupMax}
	fail := func(err error) (*shell, error) {
		s.close()
		return nil, err
	}
	if err := sess.RequestPty("vt100", 0, shellCols, gossh.TerminalModes{gossh.ECHO: 1}); err != nil {
		sess.Close()
		<-t.sessions
		return nil, t.fail(StageCommand, fmt.Errorf("the device refused a terminal: %w", err))
	}
	if s.stdin, err = sess.StdinPipe(); err != nil {
		sess.Close()
		<-t.sessions
		return nil, t.fail(StageCommand, err)
	}
	sess.Stdout, sess.Stderr = s, s
	if err := sess.Shell(); err != nil {
		sess.Close()
		<-t.sessions
		return nil, t.fail(StageCommand, fmt.Errorf("the device refused an interactive session: %w", err))
	}
	go func() {
		sess.Wait()
		close(s.done)
	}()
	first, err := s.wait(ctx, "", true)
	if err != nil {
		b, _ := s.snapshot()
		return fail(fmt.Errorf("%w (last output: %q)", err, lastLine(cleanTerminal(b))))
	}
	// The prompt as wait found it, not as the output reads a moment later: a line end that
	// arrived since (the answer to a nudge) must not become part of the known prompt.
	s.known = first.prompt
	if i := prompt.SubexpIndex("host"); i > 0 {
		if m := prompt.FindStringSubmatch(first.prompt); m != nil && m[i] != "" {
			t.mu.Lock()
			if t.hostname == "" {
				t.hostname = m[i]
			}
			t.mu.Unlock()
		}
	}
	if spec.Enable != "" && !privileged(first.prompt) {
		if err := s.enable(ctx, spec.Enable); err != nil {
			return fail(err)
		}
	}
	for _, l := range setup {
		s.reset(shellSetupMax)
		if err := s.send(l + "\n"); err != nil {
			return fail(err)
		}
		if _, err := s.wait(ctx, l, false); err != nil {
			return fail(fmt.Errorf("%s: %w", l, err))
		}
	}
	return s, nil
}

func (s *shell) send(text string) error {
	if _, err := io.WriteString(s.stdin, text); err != nil {
		return s.t.fail(StageCommand, fmt.Errorf("writing to the CLI: %w", err))
	}
	return nil
}

// privileged reports whether a prompt shows a privileged level: it ends in '#' ('>' is a user
// level).
func privileged(prompt string) bool {
	return strings.HasSuffix(strings.TrimRight(prompt, " \t"), "#")
}

// enable sends line (such as "enable"), types the target's enable secret at the password
// prompt, and checks that the prompt that follows is privileged; that prompt becomes the known
// one. The secret is never echoed by a device; any output quoted in an error has it masked.
func (s *shell) enable(ctx context.Context, line string) error {
	secret, err := enableSecret(&s.t.target.cfg)
	if err != nil {
		return s.t.fail(StageAuth, fmt.Errorf("the prompt %q is unprivileged and the profile enters privileged mode with %q: %w", s.known, line, err))
	}
	s.ask = passwordPrompt()
	defer func() { s.ask = nil }()
	said := func() string {
		b, _ := s.snapshot()
		b = bytes.ReplaceAll(cleanTerminal(b), secret, []byte("***"))
		return strings.Join(strings.Fields(string(b)), " ")
	}
	s.reset(shellSetupMax)
	if err := s.send(line + "\n"); err != nil {
		return err
	}
	at, err := s.wait(ctx, line, false)
	if err != nil {
		return fmt.Errorf("%s: %w", line, err)
	}
	if !at.asked {
		if privileged(at.prompt) {
			s.known = at.prompt
			return nil
		}
		return s.t.fail(StageAuth, fmt.Errorf("%s: %w: it answered %q without asking for a secret", line, ErrEnableRefused, said()))
	}
	s.reset(shellSetupMax)
	if err := s.send(string(secret) + "\n"); err != nil {
		return err
	}
	at, err = s.wait(ctx, "", false)
	switch {
	case err != nil:
		return fmt.Errorf("%s: after the secret: %w", line, err)
	case at.asked:
		return s.t.fail(StageAuth, fmt.Errorf("%s: %w: it asked for the secret again, so the secret is wrong (check enable_secret_file or enable_secret_env)", line, ErrEnableRefused))
	case !privileged(at.prompt):
		return s.t.fail(StageAuth, fmt.Errorf("%s: %w: it answered %q and stayed at %q (check enable_secret_file or enable_secret_env)", line, ErrEnableRefused, said(), at.prompt))
	}
	s.known = at.prompt
	return nil
}

// close ends the session and frees its slot.
func (s *shell) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.sess.Close()
	select {
	case <-s.done:
	case <-time.After(stopGrace):
		s.t.track(func() { <-s.done })
	}
	<-s.t.sessions
}

// run sends one command line and returns its output.
func (s *shell) run(ctx context.Context, line string, maxBytes int64) (*transport.Result, error) {
	if maxBytes <= 0 {
		maxBytes = transport.DefaultMaxBytes
	}
	s.reset(int(maxBytes))
	start := time.Now()
	if err := s.send(line + "\n"); err != nil {
		return nil, err
	}
	end, err := s.wait(ctx, line, false)
	tail := end.start
	b, dropped := s.snapshot()
	res := &transport.Result{Duration: time.Since(start)}
	if err != nil {
		res.ExitCode = -1
		res.Stdout = commandOutput(b[:min(len(b), int(maxBytes))], line)
		return res, fmt.Errorf("%s: %w", line, err)
	}
	raw := b[:tail]
	if dropped {
		raw = b[:maxBytes]
	}
	res.Stdout = commandOutput(raw, line)
	if dropped {
		res.Truncated, res.ExitCode = true, -1
		if int64(len(res.Stdout)) > maxBytes {
			res.Stdout = res.Stdout[:maxBytes]
		}
		return res, nil
	}
	if refused(res.Stdout) {
		res.Stderr, res.Stdout, res.ExitCode = res.Stdout, nil, 1
		if len(res.Stderr) > transport.MaxStderrBytes {
			res.Stderr = res.Stderr[:transport.MaxStderrBytes]
		}
	}
	return res, nil
}

// promptAt is where wait found the prompt: the offset of its line in the output, and the
// line as a terminal shows it.
type promptAt struct {
	start  int
	prompt string
	asked  bool // the line is the shell's ask prompt (a password prompt), not its prompt
}

// wait reads output until the prompt stands on its last line, answering pager prompts on the
// way, and returns where the prompt's line starts. The prompt counts once the output has been
// quiet for shellSettle, or at once when it is exactly the session's first prompt and the echo
// of sent has been seen. For the first prompt (sent empty), one bare line end is sent when the
// session stays quiet without a prompt for shellNudge; never once a prompt is on the last line,
// since the device would answer it with a second prompt that ends the next line's wait early.
// While ask is set, a last line it matches ends the wait at once, as asked.
func (s *shell) wait(ctx context.Context, sent string, first bool) (promptAt, error) {
	limit := time.NewTimer(s.t.target.cfg.CommandTimeout)
	defer limit.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	nudge := time.NewTimer(shellNudge)
	defer nudge.Stop()
	if !first {
		nudge.Stop()
	}
	seen, answered := -1, -1
	for {
		b, _ := s.snapshot()
		start := bytes.LastIndexByte(b, '\n') + 1
		last := cleanLine(b[start:])
		atPrompt := false
		switch {
		case s.ask != nil && s.ask.MatchString(last):
			return promptAt{start, last, true}, nil
		case pagerPrompt().MatchString(last) && start != answered:
			answered = start
			if err := s.send(" "); err != nil {
				return promptAt{}, err
			}
		case s.prompt.MatchString(last):
			atPrompt = true
			if s.known != "" && last == s.known && bytes.Contains(b, []byte(sent)) {
				return promptAt{start: start, prompt: last}, nil
			}
			if seen != len(b) {
				seen = len(b)
				settle.Reset(shellSettle)
			}
		default:
			seen = -1
			settle.Stop()
		}
		if first && atPrompt {
			nudge.Stop()
		}
		select {
		case <-s.notify:
			if first && !atPrompt {
				nudge.Reset(shellNudge)
			}
		case <-settle.C:
			if b, _ := s.snapshot(); len(b) == seen {
				return promptAt{start: start, prompt: last}, nil
			}
		case <-nudge.C:
			first = false
			if err := s.send("\n"); err != nil {
				return promptAt{}, err
			}
		case <-limit.C:
			return promptAt{}, s.t.fail(StageTimeout, fmt.Errorf("no prompt within %s (command timeout): %w",
				s.t.target.cfg.CommandTimeout, context.DeadlineExceeded))
		case <-ctx.Done():
			return promptAt{}, s.t.fail(ctxStage(ctx), ctx.Err())
		case <-s.done:
			// Output may still be on its way; look once more before giving up.
			if b2, _ := s.snapshot(); len(b2) != len(b) {
				continue
			}
			if lost := s.t.lostErr(); lost != nil {
				return promptAt{}, s.t.fail(StageTimeout, lost)
			}
			return promptAt{}, s.t.fail(StageCommand, errors.New("the device ended the session before its prompt came back"))
		}
	}
}

// commandOutput cleans a command's raw terminal output and removes the echo of its line.
func commandOutput(raw []byte, line string) []byte {
	b := cleanTerminal(raw)
	first, rest, found := bytes.Cut(b, []byte("\n"))
	if bytes.HasSuffix(bytes.TrimRight(first, " \t"), []byte(line)) {
		if !found {
			return []byte{}
		}
		return rest
	}
	return b
}

// refused reports whether one of the first three non-blank lines of out is a CLI's refusal.
func refused(out []byte) bool {
	n := 0
	for l := range bytes.Lines(out) {
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		if cliError().Match(l) {
			return true
		}
		if n++; n == 3 {
			break
		}
	}
	return false
}

// cleanTerminal turns what a terminal session printed into text: escape sequences removed,
// carriage returns and backspaces applied as a terminal would (a pager prompt that the device
// erases disappears), line ends made "\n", and pager prompts left at a line's start removed.
func cleanTerminal(b []byte) []byte {
	b = transport.StripEscapes(cursorBack(b))
	var out bytes.Buffer
	out.Grow(len(b))
	for len(b) > 0 {
		line, rest, found := bytes.Cut(b, []byte("\n"))
		b = rest
		l := overstrike(line)
		if loc := pagerRemnant().FindIndex(l); loc != nil {
			l = l[loc[1]:]
		}
		out.Write(l)
		if found {
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

// cleanLine is one line as a terminal shows it.
func cleanLine(b []byte) string {
	return string(overstrike(transport.StripEscapes(cursorBack(b))))
}

// cursorLeft is the escape that moves the cursor N columns left (ESC [ N D), with which Huawei
// VRP erases its pager prompt.
var cursorLeft = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\x1b\[(\d{0,3})D`) })

// cursorBack turns cursor-left escapes into as many backspaces, so overstrike erases what they
// erase instead of the text shifting right when escapes are removed.
func cursorBack(b []byte) []byte {
	if !bytes.Contains(b, []byte("\x1b[")) {
		return b
	}
	return cursorLeft().ReplaceAllFunc(b, func(m []byte) []byte {
		n := 1
		if d := m[2 : len(m)-1]; len(d) > 0 {
			n, _ = strconv.Atoi(string(d))
		}
		return bytes.Repeat([]byte{'\b'}, n)
	})
}

// overstrike applies carriage returns and backspaces within one line: each moves the cursor,
// and what follows overwrites. Other control characters but tab are dropped. When something was
// overwritten, trailing blanks (an erased prompt's) are trimmed.
func overstrike(line []byte) []byte {
	cells := make([]byte, 0, len(line))
	col, rewrote := 0, false
	for _, c := range line {
		switch {
		case c == '\r':
			col = 0
		case c == '\b':
			if col > 0 {
				col--
			}
		case c < 0x20 && c != '\t', c == 0x7f:
		default:
			if col < len(cells) {
				cells[col] = c
				rewrote = true
			} else {
				cells = append(cells, c)
			}
			col++
		}
	}
	if rewrote {
		cells = bytes.TrimRight(cells, " \t")
	}
	return cells
}

func lastLine(b []byte) string {
	b = bytes.TrimRight(b, "\n")
	return string(b[bytes.LastIndexByte(b, '\n')+1:])
}
