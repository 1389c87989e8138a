// Package devicesim runs in-process SSH servers on loopback that answer like network devices
// (a CLI over exec requests or on a terminal, with its prompt, echo and pager) or like a Unix
// firewall's shell, replaying captured outputs, so device profiles are tested through the real
// SSH transport.
package devicesim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/subtle"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	glider "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Device says how a simulated device answers.
type Device struct {
	// Outputs maps a command line, exactly as the device receives it, to what it prints, with
	// lines ending in "\n" (a terminal, or CRLF, makes them "\r\n").
	Outputs map[string]string
	// Exec answers exec requests by exact command; without it they are refused, as CLI-only
	// devices do.
	Exec bool
	// NoExitStatus closes an exec channel without an exit status, as many devices do.
	NoExitStatus bool
	// CRLF ends the lines of exec output with "\r\n" (RouterOS).
	CRLF bool
	// Unknown is what a command not in Outputs prints; UnknownExit is its exit status (exec).
	Unknown     string
	UnknownExit int

	// Shell offers the CLI on a terminal: Banner, then Prompt before each command, every typed
	// character echoed. A shell request without a terminal is refused.
	Shell  bool
	Banner string
	Prompt string
	// PageLines turns the pager on: after that many lines More waits for a key (space: a page,
	// return: a line, q: stop), then MoreErase is written. A PagerOff line turns it off for the
	// session; a command ending in one of NoPager bypasses it.
	PageLines int
	More      string
	MoreErase string
	PagerOff  []string
	NoPager   []string
	// Hang lists commands that never answer.
	Hang []string
	// UserPrompt, when set, is the unprivileged prompt a session starts at, where every
	// command but PagerOff lines, Enable and exit is refused with Unknown. Enable asks for
	// EnableSecret at "Password: " without echo, up to three times; then BadSecret is printed
	// and the session stays unprivileged. Right, the session goes on at Prompt.
	UserPrompt   string
	Enable       string
	EnableSecret string
	BadSecret    string
	// WrongSecret is printed after each wrong answer (ASA: "Invalid password").
	WrongSecret string
	// Chop, when not zero, seeds a random cutting of the CLI's output: each answer (the echo
	// of a line, its output and the next prompt) is gathered and written as one burst cut at
	// random points, often inside the prompt, so a client sees a prompt split across reads as
	// well as output and prompt in one read. Each session draws its own cuts.
	Chop int64

	// Users and Keys authenticate, by password or public key; with neither, any key is accepted.
	Users map[string]string
	Keys  []gossh.PublicKey
}

// Request is one request the device saw.
type Request struct {
	Kind string // "exec", "exec refused", "shell", "shell refused", "line" (typed in the CLI), "secret" (typed at a password prompt, not kept)
	Text string
}

// Server is a running simulated device.
type Server struct {
	Addr    string          // 127.0.0.1:PORT
	HostKey gossh.PublicKey // its ed25519 host key

	dev Device
	srv *glider.Server
	bin string // programs standing in for commands on a Unix host

	mu       sync.Mutex
	outputs  map[string]string
	root     string
	log      []Request
	sessions int64
}

// Start starts a device on a random loopback port; it stops when the test ends.
func Start(t testing.TB, d Device) *Server {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{HostKey: signer.PublicKey(), dev: d, outputs: d.Outputs, bin: t.TempDir()}
	s.srv = &glider.Server{
		Handler: s.handle,
		SessionRequestCallback: func(sess glider.Session, kind string) bool {
			ok := false
			switch kind {
			case "exec":
				ok = d.Exec || s.unixRoot() != ""
			case "shell":
				_, _, pty := sess.Pty()
				ok = d.Shell && pty
			}
			if ok {
				s.record(kind, sess.RawCommand())
			} else {
				s.record(kind+" refused", sess.RawCommand())
			}
			return ok
		},
		PublicKeyHandler: func(_ glider.Context, key glider.PublicKey) bool {
			if len(d.Keys) == 0 && len(d.Users) == 0 {
				return true
			}
			return slices.ContainsFunc(d.Keys, func(k gossh.PublicKey) bool { return glider.KeysEqual(k, key) })
		},
	}
	if len(d.Users) > 0 {
		s.srv.PasswordHandler = func(ctx glider.Context, pw string) bool {
			want, ok := d.Users[ctx.User()]
			return ok && subtle.ConstantTimeCompare([]byte(want), []byte(pw)) == 1
		}
	}
	s.srv.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.srv.Serve(l)
	}()
	t.Cleanup(func() {
		s.srv.Close()
		<-done
	})
	return s
}

// SetOutputs replaces what the device answers, for a capture taken later.
func (s *Server) SetOutputs(m map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outputs = m
}

// SetRoot makes the device a Unix host (a FreeBSD firewall such as pfSense): exec requests run
// /bin/sh, every file under root stands in at its absolute path wherever the command names it
// in single quotes (as the SSH transport's scripts do), and each command of Outputs is a
// program that prints its output, found first in PATH. Processes run in a session of their
// own and are killed when the SSH session ends.
func (s *Server) SetRoot(root string) {
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.root = root
}

// Log returns the requests seen so far.
func (s *Server) Log() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// KnownHostsLine is the server's known_hosts line.
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{s.Addr}, s.HostKey)
}

func (s *Server) record(kind, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, Request{Kind: kind, Text: text})
}

func (s *Server) output(cmd string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.outputs[cmd]
	return o, ok
}

func (s *Server) unixRoot() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.root
}

func (s *Server) handle(sess glider.Session) {
	if sess.RawCommand() == "" {
		s.cli(sess)
		return
	}
	if s.unixRoot() != "" {
		s.unix(sess)
		return
	}
	cmd := sess.RawCommand()
	if slices.Contains(s.dev.Hang, cmd) {
		<-sess.Context().Done()
		return
	}
	out, ok := s.output(cmd)
	code := 0
	if !ok {
		out, code = s.dev.Unknown, s.dev.UnknownExit
	}
	if s.dev.CRLF {
		out = crlf(out)
	}
	io.WriteString(sess, out)
	if s.dev.NoExitStatus {
		sess.Close()
		return
	}
	sess.Exit(code)
}

func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// cli runs the device's CLI on a terminal until the client leaves.
func (s *Server) cli(sess glider.Session) {
	r := bufio.NewReader(sess)
	w := &lineWriter{w: sess}
	if s.dev.Chop != 0 {
		s.mu.Lock()
		s.sessions++
		n := s.sessions
		s.mu.Unlock()
		w.chop = rand.New(rand.NewPCG(uint64(s.dev.Chop), uint64(n)))
		w.tail = len(s.dev.Prompt)
	}
	if s.dev.Banner != "" {
		io.WriteString(w, crlf(s.dev.Banner))
	}
	paging := s.dev.PageLines > 0
	prompt, user := s.dev.Prompt, s.dev.UserPrompt != ""
	if user {
		prompt = s.dev.UserPrompt
	}
	for {
		io.WriteString(w, prompt)
		if w.flush() != nil {
			return
		}
		line, err := readLine(r, w, true)
		if err != nil {
			return
		}
		line = strings.TrimSpace(line)
		s.record("line", line)
		switch {
		case line == "":
		case line == "exit" || line == "quit" || line == "logout":
			return
		case slices.Contains(s.dev.PagerOff, line):
			paging = false
		case user && s.dev.Enable != "" && line == s.dev.Enable:
			ok, err := s.enable(r, w)
			if err != nil {
				return
			}
			if ok {
				prompt, user = s.dev.Prompt, false
			}
		case user:
			io.WriteString(w, crlf(s.dev.Unknown))
		case slices.Contains(s.dev.Hang, line):
			w.flush()
			<-sess.Context().Done()
			return
		default:
			out, ok := s.output(line)
			if !ok {
				out = s.dev.Unknown
			}
			bypass := slices.ContainsFunc(s.dev.NoPager, func(suffix string) bool { return strings.HasSuffix(line, suffix) })
			if !s.page(r, w, out, paging && !bypass) {
				return
			}
		}
	}
}

// lineWriter writes to the client, remembering a write error. With chop set it gathers what
// is written until flush, which writes it in randomly cut pieces.
type lineWriter struct {
	w    io.Writer
	err  error
	chop *rand.Rand
	tail int // the prompt's length: cuts are drawn often within the last tail bytes
	buf  []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if l.chop != nil {
		l.buf = append(l.buf, p...)
		return len(p), nil
	}
	n, err := l.w.Write(p)
	l.err = err
	return n, err
}

// flush writes what was gathered, cut at random points: some cuts anywhere (pieces of a few
// bytes or some kilobytes), and in half the bursts one cut inside the last tail bytes.
func (l *lineWriter) flush() error {
	if l.chop == nil || l.err != nil || len(l.buf) == 0 {
		l.buf = l.buf[:0]
		return l.err
	}
	b := l.buf
	var cuts []int
	for at := 0; ; {
		if l.chop.IntN(2) == 0 {
			at += 1 + l.chop.IntN(16)
		} else {
			at += 1 + l.chop.IntN(8192)
		}
		if at >= len(b) {
			break
		}
		cuts = append(cuts, at)
	}
	if l.tail > 0 && len(b) > 1 && l.chop.IntN(2) == 0 {
		cuts = append(cuts, len(b)-1-l.chop.IntN(min(l.tail+1, len(b)-1)))
	}
	slices.Sort(cuts)
	cuts = append(slices.Compact(cuts), len(b))
	last := 0
	for _, c := range cuts {
		if c <= last {
			continue
		}
		if _, err := l.w.Write(b[last:c]); err != nil {
			l.err = err
			break
		}
		last = c
	}
	l.buf = b[:0]
	return l.err
}

// enable asks for the enable secret up to three times, reading each answer without echo.
func (s *Server) enable(r *bufio.Reader, w *lineWriter) (bool, error) {
	for range 3 {
		io.WriteString(w, "Password: ")
		if err := w.flush(); err != nil {
			return false, err
		}
		pw, err := readLine(r, w, false)
		if err != nil {
			return false, err
		}
		s.record("secret", "")
		if subtle.ConstantTimeCompare([]byte(pw), []byte(s.dev.EnableSecret)) == 1 {
			return true, nil
		}
		io.WriteString(w, crlf(s.dev.WrongSecret))
	}
	io.WriteString(w, crlf(s.dev.BadSecret))
	return false, nil
}

// readLine reads one typed line, echoing it as a terminal does when echo is set: CR, LF or
// CRLF ends it, DEL and backspace erase.
func readLine(r *bufio.Reader, w io.Writer, echo bool) (string, error) {
	var line []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		switch c {
		case '\r', '\n':
			if c == '\r' {
				if n, err := r.Peek(1); err == nil && n[0] == '\n' {
					r.ReadByte()
				}
			}
			io.WriteString(w, "\r\n")
			return string(line), nil
		case 0x7f, '\b':
			if len(line) > 0 {
				line = line[:len(line)-1]
				if echo {
					io.WriteString(w, "\b \b")
				}
			}
		default:
			line = append(line, c)
			if echo {
				w.Write([]byte{c})
			}
		}
	}
}

// page writes out line by line, stopping at the pager prompt every PageLines lines when paging.
// It reports false when the client has gone.
func (s *Server) page(r *bufio.Reader, w *lineWriter, out string, paging bool) bool {
	lines := strings.SplitAfter(out, "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	shown := 0
	for i, l := range lines {
		io.WriteString(w, crlf(l))
		shown++
		if !paging || shown < s.dev.PageLines || i == len(lines)-1 {
			continue
		}
		io.WriteString(w, s.dev.More)
		if w.flush() != nil {
			return false
		}
		key, err := r.ReadByte()
		if err != nil {
			return false
		}
		io.WriteString(w, s.dev.MoreErase)
		switch key {
		case 'q', 'Q':
			return w.err == nil
		case '\r', '\n':
			shown = s.dev.PageLines - 1
		default:
			shown = 0
		}
	}
	return w.err == nil
}

// headRE finds the length of the script the SSH transport sends on stdin.
var headRE = regexp.MustCompile(`head -c (\d+)`)

// unix runs an exec request with /bin/sh, the device's files and programs standing in.
func (s *Server) unix(sess glider.Session) {
	root := s.unixRoot()
	files, err := listFiles(root)
	if err != nil {
		fmt.Fprintln(sess.Stderr(), err)
		sess.Exit(255)
		return
	}
	bin, err := s.programs()
	if err != nil {
		fmt.Fprintln(sess.Stderr(), err)
		sess.Exit(255)
		return
	}
	rewrite := func(b []byte) []byte {
		for _, f := range files {
			b = bytes.ReplaceAll(b, []byte("'"+f+"'"), []byte("'"+filepath.Join(root, f)+"'"))
		}
		return b
	}
	line := sess.RawCommand()
	var prefix []byte
	if m := headRE.FindStringSubmatchIndex(line); m != nil {
		n, _ := strconv.Atoi(line[m[2]:m[3]])
		script := make([]byte, n)
		if _, err := io.ReadFull(sess, script); err != nil {
			sess.Exit(255)
			return
		}
		prefix = rewrite(script)
		line = line[:m[2]] + strconv.Itoa(len(prefix)) + line[m[3]:]
	} else {
		line = string(rewrite([]byte(line)))
	}
	c := exec.Command("/bin/sh", "-c", line)
	c.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + root, "LC_ALL=C"}
	c.Dir = root
	// A session of its own: the transport's watchdog kills its whole session when stdin ends.
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c.Stdout, c.Stderr = sess, sess.Stderr()
	c.WaitDelay = 2 * time.Second
	stdin, err := c.StdinPipe()
	if err != nil {
		sess.Exit(255)
		return
	}
	if err := c.Start(); err != nil {
		fmt.Fprintln(sess.Stderr(), err)
		sess.Exit(127)
		return
	}
	go func() {
		stdin.Write(prefix)
		io.Copy(stdin, sess)
		stdin.Close()
	}()
	stop := context.AfterFunc(sess.Context(), func() { syscall.Kill(-c.Process.Pid, syscall.SIGKILL) })
	err = c.Wait()
	stop()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if code < 0 {
			code = 128 + int(syscall.SIGKILL)
		}
	}
	sess.Exit(code)
}

// listFiles lists the regular files under root as absolute paths of the device, longest first
// so that no path is rewritten inside a longer one.
func listFiles(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			out = append(out, "/"+filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, err
}

// programs writes one shell script per program named in Outputs, printing the output recorded
// for its arguments, and returns their directory.
func (s *Server) programs() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dir, err := os.MkdirTemp(s.bin, "bin")
	if err != nil {
		return "", err
	}
	byProg := map[string][]string{}
	for cmd := range s.outputs {
		prog, _, _ := strings.Cut(cmd, " ")
		byProg[prog] = append(byProg[prog], cmd)
	}
	for prog, cmds := range byProg {
		if strings.ContainsAny(prog, "/'") {
			return "", fmt.Errorf("program name %q", prog)
		}
		sort.Strings(cmds)
		var b strings.Builder
		b.WriteString("#!/bin/sh\ncase \"$*\" in\n")
		for i, cmd := range cmds {
			f := filepath.Join(dir, fmt.Sprintf(".%s.%d", prog, i))
			if err := os.WriteFile(f, []byte(s.outputs[cmd]), 0o600); err != nil {
				return "", err
			}
			_, args, _ := strings.Cut(cmd, " ")
			fmt.Fprintf(&b, "%s) cat %s ;;\n", shQuote(args), shQuote(f))
		}
		fmt.Fprintf(&b, "*) echo %s >&2; exit 64 ;;\nesac\n", shQuote(prog+": unknown arguments"))
		if err := os.WriteFile(filepath.Join(dir, prog), []byte(b.String()), 0o700); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// ClientKey writes a new ed25519 private key in OpenSSH format to dir/name and returns its path
// and public key.
func ClientKey(t testing.TB, dir, name string) (string, gossh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := gossh.MarshalPrivateKey(priv, name)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p, sp
}

// FileName is the file a command's captured output is kept in: the command with every run of
// characters other than letters, digits, '.', '_' and '-' made one '_'.
func FileName(command string) string {
	var b strings.Builder
	under := false
	for _, r := range command {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(r)
			continue
		}
		under = true
	}
	return b.String() + ".txt"
}
