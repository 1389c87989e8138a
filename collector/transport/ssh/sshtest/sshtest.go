// Package sshtest starts real OpenSSH servers on loopback, with fresh keys, for tests.
package sshtest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/internal/testutil"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Key is a key pair made by ssh-keygen.
type Key struct {
	Path    string // private key
	PubPath string
	Public  gossh.PublicKey
}

// NewKey makes a key of type typ (ed25519, ecdsa or rsa) in dir, encrypted when passphrase is set.
func NewKey(t testing.TB, dir, name, typ, passphrase string) *Key {
	t.Helper()
	keygen := testutil.Tool(t, "ssh-keygen")
	p := filepath.Join(dir, name)
	args := []string{"-q", "-t", typ, "-N", passphrase, "-C", name, "-f", p}
	if typ == "rsa" {
		args = append(args, "-b", "2048")
	}
	testutil.Run(t, keygen, args...)
	return &Key{Path: p, PubPath: p + ".pub", Public: readPublic(t, p+".pub")}
}

func readPublic(t testing.TB, path string) gossh.PublicKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := gossh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return k
}

// AuthorizedLine is the key as an authorized_keys or known_hosts key field.
func (k *Key) AuthorizedLine() string {
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k.Public)))
}

// Certify signs k with the CA key ca (ssh-keygen -s) for principals, valid for validity
// (an ssh-keygen -V interval such as "-5m:+1h"); host makes a host certificate. It returns the
// certificate's path, KEY-cert.pub beside the key.
func (k *Key) Certify(t testing.TB, ca *Key, host bool, validity string, principals ...string) string {
	t.Helper()
	args := []string{"-q", "-s", ca.Path, "-I", filepath.Base(k.Path), "-n", strings.Join(principals, ","), "-V", validity}
	if host {
		args = append(args, "-h")
	}
	testutil.Run(t, testutil.Tool(t, "ssh-keygen"), append(args, k.PubPath)...)
	return k.Path + "-cert.pub"
}

// Options configure a server.
type Options struct {
	// HostKeyTypes are the host keys to generate (default ed25519, ecdsa, rsa).
	HostKeyTypes []string
	// HostCA, when set, certifies every host key for the principal 127.0.0.1.
	HostCA *Key
	// UserCA, when set, is the server's TrustedUserCAKeys.
	UserCA *Key
	// Config lines are sshd_config lines; they take precedence over the defaults.
	Config []string
}

// Server is a running sshd -D on 127.0.0.1.
type Server struct {
	Addr     string // 127.0.0.1:PORT
	Port     int
	Dir      string
	HostKeys map[string]*Key // by type: ed25519, ecdsa, rsa
	cmd      *exec.Cmd
	log      *testutil.SyncBuffer
	done     chan struct{}
}

// Start runs sshd with fresh host keys, public key authentication only, root allowed with keys,
// authorized keys in DIR/authorized_keys/USER, and stops it when the test ends. It needs root
// (skips, or fails in CI, without it).
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	testutil.Root(t)
	sshd := testutil.Tool(t, "sshd")
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation directory
		t.Fatal(err)
	}
	dir := t.TempDir()
	// sshd reads a user's authorized keys as that user: let every user traverse to them.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{Dir: dir, HostKeys: map[string]*Key{}, log: &testutil.SyncBuffer{}, done: make(chan struct{})}
	types := opts.HostKeyTypes
	if len(types) == 0 {
		types = []string{"ed25519", "ecdsa", "rsa"}
	}
	// sshd keeps the first value of a keyword: the caller's lines go first.
	conf := append([]string(nil), opts.Config...)
	for _, typ := range types {
		k := NewKey(t, dir, "ssh_host_"+typ+"_key", typ, "")
		s.HostKeys[typ] = k
		conf = append(conf, "HostKey "+k.Path)
		if opts.HostCA != nil {
			conf = append(conf, "HostCertificate "+k.Certify(t, opts.HostCA, true, "-5m:+1h", "127.0.0.1"))
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "authorized_keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf = append(conf,
		"ListenAddress 127.0.0.1",
		"AuthorizedKeysFile "+filepath.Join(dir, "authorized_keys", "%u"),
		"StrictModes no",
		"PidFile none",
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"AllowTcpForwarding yes",
		"MaxStartups 100",
		"LogLevel VERBOSE",
	)
	if opts.UserCA != nil {
		conf = append(conf, "TrustedUserCAKeys "+opts.UserCA.PubPath)
	}
	cfgPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, sshd, "-t", "-f", cfgPath)

	for attempt := 0; ; attempt++ {
		port := freePort(t)
		s.log = &testutil.SyncBuffer{}
		s.done = make(chan struct{})
		s.cmd = exec.Command(sshd, "-D", "-e", "-f", cfgPath, "-p", strconv.Itoa(port))
		s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func(c *exec.Cmd, done chan struct{}) {
			c.Wait()
			close(done)
		}(s.cmd, s.done)
		s.Port, s.Addr = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := s.waitReady(5 * time.Second); err == nil {
			break
		} else if attempt == 2 {
			s.stop()
			t.Fatalf("sshd did not start: %v\n%s", err, s.log.String())
		}
		s.stop() // most likely the port was taken meanwhile
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("sshd %s log:\n%s", s.Addr, s.log.String())
		}
	})
	return s
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) waitReady(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("sshd exited")
		default:
		}
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "SSH-2.0-") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no SSH banner on %s within %s", s.Addr, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(3 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Authorize adds k to user's authorized keys, with options (such as `cert-authority`) before it.
func (s *Server) Authorize(t testing.TB, user string, k *Key, options string) {
	t.Helper()
	line := k.AuthorizedLine() + "\n"
	if options != "" {
		line = options + " " + line
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, "authorized_keys", user), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		t.Fatal(err)
	}
}

// KnownHostsLine is a known_hosts line for the host key of type typ, under the name OpenSSH
// gives this server: [127.0.0.1]:PORT.
func (s *Server) KnownHostsLine(typ string) string {
	return knownhosts.Line([]string{s.Addr}, s.HostKeys[typ].Public)
}

// KnownHostsLineAs is KnownHostsLine for the server reached at another address (a proxy).
func (s *Server) KnownHostsLineAs(addr, typ string) string {
	return knownhosts.Line([]string{addr}, s.HostKeys[typ].Public)
}

// WriteKnownHosts writes a known_hosts file holding the given lines and returns its path.
func WriteKnownHosts(t testing.TB, dir string, lines ...string) string {
	t.Helper()
	p := filepath.Join(dir, fmt.Sprintf("known_hosts_%d", time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Log returns what sshd logged so far.
func (s *Server) Log() string { return s.log.String() }

// PID is the listening sshd's process ID.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// ChildCPU is the CPU time (user+system) of the server's reaped children: every connection and
// everything run in it, once the connection has ended.
func (s *Server) ChildCPU(t testing.TB) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.PID()))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at the state, field 3.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	cutime, _ := strconv.ParseInt(f[16-3], 10, 64)
	cstime, _ := strconv.ParseInt(f[17-3], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(cutime+cstime) * time.Second / ticks
}

// Connections counts the server's live connection processes.
func (s *Server) Connections() int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", s.PID(), s.PID()))
	if err != nil {
		return 0
	}
	return len(strings.Fields(string(b)))
}
