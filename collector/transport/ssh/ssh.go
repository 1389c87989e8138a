// Package ssh runs hardtrail's transport over SSH: host keys checked on every hop, commands run as
// isolated, framed steps of one remote shell script per session, nothing left running after.
package ssh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hardtrail/hardtrail/collector/transport"
	gossh "golang.org/x/crypto/ssh"
)

// Defaults for the zero values of Config's durations.
const (
	DefaultConnectTimeout   = 10 * time.Second
	DefaultHandshakeTimeout = 15 * time.Second
	DefaultCommandTimeout   = transport.DefaultCommandTimeout
	DefaultKeepAlive        = 15 * time.Second
)

const (
	// keepAliveMisses is how many intervals may pass without an answer before the peer is dead.
	keepAliveMisses = 3
	// maxSessions stays below OpenSSH's default MaxSessions (10) per connection.
	maxSessions = 8
	// stopGrace is how long a stopped session may take to report before it is closed.
	stopGrace = 2 * time.Second
	// maxHops bounds a chain of jump hosts.
	maxHops = 8
)

// Config says how to reach and trust one target.
type Config struct {
	// Name names the target in messages and in the enrolment hint (default: Address).
	Name string
	// Address is user@host:port; the port defaults to 22 and the user to the current user.
	Address string
	// IdentityFiles are private keys in OpenSSH or PEM format. With none and no agent, the usual
	// ~/.ssh/id_ed25519, id_ecdsa and id_rsa are tried.
	IdentityFiles []string
	// Certificates are OpenSSH user certificates for the identity files; KEY-cert.pub beside a
	// key is used without being listed.
	Certificates []string
	// PassphraseFile or PassphraseEnv (a variable's name) unlock encrypted identity files. A
	// passphrase is never taken from the command line.
	PassphraseFile string
	PassphraseEnv  string
	// UseAgent offers the keys of the agent at $SSH_AUTH_SOCK after the identity files.
	UseAgent bool
	// KnownHosts are OpenSSH known_hosts files: hashed names, @cert-authority and @revoked lines
	// are honoured. With neither KnownHosts nor Fingerprints, ~/.ssh/known_hosts and
	// /etc/ssh/ssh_known_hosts are used. A missing file holds no keys.
	KnownHosts []string
	// Fingerprints pin host keys ("SHA256:...", as ssh-keygen -lf prints them), accepted beside
	// the known_hosts entries.
	Fingerprints []string
	// Jump is the host to connect through (ProxyJump), itself possibly behind another. Its host
	// key is checked like the target's. Empty IdentityFiles, Certificates, passphrase settings,
	// UseAgent, KnownHosts and timeouts are taken from the Config that names it.
	Jump *Config
	// ConnectTimeout bounds the TCP connection, HandshakeTimeout the SSH handshake (including
	// authentication), CommandTimeout each command, and KeepAlive is the interval of keepalive
	// requests; a peer that misses three is given up. Zero means the default; a negative
	// KeepAlive disables keepalives.
	ConnectTimeout   time.Duration
	HandshakeTimeout time.Duration
	CommandTimeout   time.Duration
	KeepAlive        time.Duration
	// LegacyAlgorithms also allows SHA-1 key exchanges, CBC ciphers, SHA-1 MACs and ssh-rsa
	// signatures, for old network devices; Info().Legacy records it.
	LegacyAlgorithms bool
	// EnableSecretFile or EnableSecretEnv (a variable's name) hold the secret a device CLI asks
	// for when an interactive session enters privileged mode (see transport.Shell.Enable). It
	// is read only when needed, never taken from the command line, and never appears in output.
	EnableSecretFile string
	EnableSecretEnv  string
	// RawCommands is for network devices, which have no POSIX shell: each command is sent as its
	// words joined by spaces, one session per command (RunBatch too), without sudo. ReadFile,
	// ReadFiles and Glob are not available.
	RawCommands bool
}

// hop is one connection of a chain, with its settings resolved.
type hop struct {
	cfg  Config
	name string
	user string
	host string // host:port
	keys *hostKeys
	auth *auth
}

func (h *hop) address() string { return h.user + "@" + h.host }

func (h *hop) fail(stage Stage, err error) error {
	return &Error{Stage: stage, Target: h.name, Address: h.address(), Err: err}
}

// Transport is a connection to one target. It implements transport.Transport and is safe for
// concurrent use (at most 8 sessions at once, below sshd's MaxSessions; more wait). Every Run,
// Gather, ReadFile and Glob is one session, which starts the login user's shell once. A Result's
// Duration is measured here, from the arrival of the command's frames, so it is approximate for
// commands shorter than a round trip.
type Transport struct {
	hops     []*hop
	clients  []*gossh.Client // one per hop, jump hosts first
	client   *gossh.Client   // the target's
	target   *hop
	info     transport.Info
	sessions chan struct{}

	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu       sync.Mutex
	hostname string
	lost     error // why the connection was given up
}

var (
	_ transport.Transport = (*Transport)(nil)
)

// Dial connects to the target, through its jump hosts, checking every host key and
// authenticating on every hop. ctx bounds the whole dial; the Config's timeouts bound each step.
func Dial(ctx context.Context, cfg Config) (*Transport, error) {
	hops, err := chain(cfg)
	if err != nil {
		return nil, err
	}
	t := &Transport{
		hops:     hops,
		target:   hops[len(hops)-1],
		sessions: make(chan struct{}, maxSessions),
		closed:   make(chan struct{}),
	}
	var via *gossh.Client
	var key gossh.PublicKey
	for _, h := range hops {
		if h.auth, err = loadAuth(&h.cfg); err != nil {
			t.Close()
			return nil, h.fail(StageAuth, err)
		}
		c, k, err := h.dial(ctx, via)
		if err != nil {
			t.Close()
			return nil, err
		}
		t.clients = append(t.clients, c)
		via, key = c, k
	}
	t.client = via
	if cert, ok := key.(*gossh.Certificate); ok {
		key = cert.Key // the host's own key: stable across certificate renewals
	}
	t.info = transport.Info{
		Kind:    "ssh",
		Address: t.target.address(),
		HostKey: gossh.FingerprintSHA256(key),
		Legacy:  t.target.cfg.LegacyAlgorithms,
	}
	if every := t.target.cfg.KeepAlive; every > 0 {
		t.wg.Add(1)
		go t.keepalive(t.client, every)
	}
	return t, nil
}

// chain resolves cfg and its jump hosts, jump hosts first.
func chain(cfg Config) ([]*hop, error) {
	var hops []*hop
	for c := &cfg; c != nil; c = c.Jump {
		if len(hops) == maxHops {
			return nil, fmt.Errorf("ssh %s: more than %d jump hosts", cfg.Address, maxHops-1)
		}
		h, err := newHop(*c)
		if err != nil {
			return nil, err
		}
		if c.Jump != nil {
			j := *c.Jump
			inherit(&j, c)
			c.Jump = &j
		}
		hops = append([]*hop{h}, hops...)
	}
	return hops, nil
}

func inherit(j *Config, from *Config) {
	if len(j.IdentityFiles) == 0 {
		j.IdentityFiles = from.IdentityFiles
		if len(j.Certificates) == 0 {
			j.Certificates = from.Certificates
		}
		if j.PassphraseFile == "" && j.PassphraseEnv == "" {
			j.PassphraseFile, j.PassphraseEnv = from.PassphraseFile, from.PassphraseEnv
		}
	}
	j.UseAgent = j.UseAgent || from.UseAgent
	if len(j.KnownHosts) == 0 && len(j.Fingerprints) == 0 {
		j.KnownHosts = from.KnownHosts
	}
	for _, d := range []struct{ to, from *time.Duration }{
		{&j.ConnectTimeout, &from.ConnectTimeout}, {&j.HandshakeTimeout, &from.HandshakeTimeout},
		{&j.KeepAlive, &from.KeepAlive},
	} {
		if *d.to == 0 {
			*d.to = *d.from
		}
	}
}

func newHop(cfg Config) (*hop, error) {
	u, host, err := splitAddress(cfg.Address)
	if err != nil {
		if cfg.Name != "" {
			return nil, fmt.Errorf("ssh %s: %w", cfg.Name, err)
		}
		return nil, fmt.Errorf("ssh: %w", err)
	}
	if u == "" {
		if cu, err := user.Current(); err == nil {
			u = cu.Username
		} else {
			u = os.Getenv("USER")
		}
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&cfg.ConnectTimeout, DefaultConnectTimeout}, {&cfg.HandshakeTimeout, DefaultHandshakeTimeout},
		{&cfg.CommandTimeout, DefaultCommandTimeout}, {&cfg.KeepAlive, DefaultKeepAlive},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	h := &hop{cfg: cfg, name: cfg.Name, user: u, host: host}
	if h.name == "" {
		h.name = h.address()
	}
	files := cfg.KnownHosts
	if len(files) == 0 && len(cfg.Fingerprints) == 0 {
		if home, err := os.UserHomeDir(); err == nil {
			files = append(files, home+"/.ssh/known_hosts")
		}
		files = append(files, "/etc/ssh/ssh_known_hosts")
	}
	if h.keys, err = newHostKeys(h.name, host, files, cfg.Fingerprints, cfg.LegacyAlgorithms); err != nil {
		return nil, h.fail(StageHostKey, err)
	}
	return h, nil
}

// splitAddress parses [user@]host[:port] into the user (maybe empty) and host:port.
func splitAddress(a string) (usr, host string, err error) {
	if i := strings.LastIndex(a, "@"); i >= 0 {
		usr, a = a[:i], a[i+1:]
		if usr == "" {
			return "", "", errors.New("empty user before @")
		}
	}
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		h, p = strings.TrimSuffix(strings.TrimPrefix(a, "["), "]"), "22"
	}
	if h == "" || strings.ContainsAny(h, " \t\n/") {
		return "", "", fmt.Errorf("address %q: want user@host:port", a)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("address %q: bad port %q", a, p)
	}
	return usr, net.JoinHostPort(h, p), nil
}

// algorithms is the modern set, plus the SHA-1 and CBC algorithms old devices need when legacy.
func algorithms(legacy bool) gossh.Algorithms {
	a := gossh.SupportedAlgorithms()
	if legacy {
		a.KeyExchanges = append(a.KeyExchanges, gossh.InsecureAlgorithms().KeyExchanges...)
		a.Ciphers = append(a.Ciphers, gossh.InsecureCipherAES128CBC, gossh.InsecureCipherTripleDESCBC)
		a.MACs = append(a.MACs, gossh.InsecureAlgorithms().MACs...)
	}
	return a
}

// dial connects this hop, directly or through via. With only pinned fingerprints the key types
// on record are unknown, so when the server's first choice is not pinned, it asks for the other
// types before refusing.
func (h *hop) dial(ctx context.Context, via *gossh.Client) (*gossh.Client, gossh.PublicKey, error) {
	algs := h.keys.algorithms()
	var refused error // the first host key refusal, which says more than what follows it
	for {
		c, chk, err := h.handshake(ctx, via, algs)
		if err == nil {
			return c, chk.presented, nil
		}
		var hk *HostKeyError
		if !errors.As(err, &hk) {
			var neg *gossh.AlgorithmNegotiationError
			if refused != nil && errors.As(err, &neg) {
				return nil, nil, refused
			}
			return nil, nil, err
		}
		if refused == nil {
			refused = err
		}
		if len(h.keys.pins) == 0 || len(h.keys.known) > 0 || h.keys.ca || !errors.Is(hk, ErrHostKeyChanged) {
			return nil, nil, err
		}
		drop := keyAlgorithms(hk.Presented.Type(), true)
		rest := algs[:0:0]
		for _, a := range algs {
			if !slices.Contains(drop, a) {
				rest = append(rest, a)
			}
		}
		if len(rest) == 0 || len(rest) == len(algs) {
			return nil, nil, err
		}
		algs = rest
	}
}

func (h *hop) handshake(ctx context.Context, via *gossh.Client, hostKeyAlgs []string) (*gossh.Client, *check, error) {
	cctx, ccancel := context.WithTimeout(ctx, h.cfg.ConnectTimeout)
	var conn net.Conn
	var err error
	if via == nil {
		conn, err = (&net.Dialer{}).DialContext(cctx, "tcp", h.host)
	} else {
		conn, err = via.DialContext(cctx, "tcp", h.host)
	}
	connectTimedOut := cctx.Err() != nil
	ccancel()
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, nil, h.fail(StageTimeout, fmt.Errorf("gave up connecting: %w", ctx.Err()))
		case connectTimedOut:
			return nil, nil, h.fail(StageTimeout, fmt.Errorf("no TCP connection within %s (connect timeout): "+
				"the host is down or a firewall drops the packets: %w", h.cfg.ConnectTimeout, context.DeadlineExceeded))
		case via != nil:
			return nil, nil, h.fail(StageDial, fmt.Errorf("the jump host could not connect to %s: %w", h.host, err))
		}
		return nil, nil, h.fail(StageDial, fmt.Errorf("%w: check the address and that sshd listens there", err))
	}
	chk := &check{hostKeys: h.keys}
	algs := algorithms(h.cfg.LegacyAlgorithms)
	config := &gossh.ClientConfig{
		Config:            gossh.Config{KeyExchanges: algs.KeyExchanges, Ciphers: algs.Ciphers, MACs: algs.MACs},
		User:              h.user,
		Auth:              []gossh.AuthMethod{h.auth.method()},
		HostKeyCallback:   chk.callback,
		HostKeyAlgorithms: hostKeyAlgs,
		ClientVersion:     "SSH-2.0-hardtrail",
	}
	// ClientConfig.Timeout covers only the TCP connect: a server that accepts and never speaks
	// would hold NewClientConn forever, so the connection is closed when the deadline passes.
	hctx, hcancel := context.WithTimeout(ctx, h.cfg.HandshakeTimeout)
	defer hcancel()
	stop := context.AfterFunc(hctx, func() { conn.Close() })
	c, chans, reqs, err := gossh.NewClientConn(conn, h.host, config)
	if !stop() {
		if err == nil {
			c.Close()
		}
		conn.Close()
		if ctx.Err() != nil {
			return nil, nil, h.fail(StageTimeout, fmt.Errorf("gave up during the SSH handshake: %w", ctx.Err()))
		}
		return nil, nil, h.fail(StageTimeout, fmt.Errorf("no SSH handshake within %s (handshake timeout): "+
			"the port accepts connections but does not answer as an SSH server, or the server is overloaded: %w",
			h.cfg.HandshakeTimeout, context.DeadlineExceeded))
	}
	if err != nil {
		conn.Close()
		switch {
		case chk.refused != nil:
			return nil, nil, h.fail(StageHostKey, chk.refused)
		case chk.verified:
			return nil, nil, h.fail(StageAuth, fmt.Errorf("%s refused every key offered (%s): add the public key "+
				"to %s's authorized_keys on the target, or sign it with a CA the target trusts: %w",
				h.host, h.auth.describe(), h.user, err))
		case errors.As(err, new(*gossh.AlgorithmNegotiationError)) && !h.cfg.LegacyAlgorithms:
			return nil, nil, h.fail(StageHandshake, fmt.Errorf("%w; if this is an old device whose algorithms "+
				"you accept, set legacy_algorithms = true", err))
		}
		return nil, nil, h.fail(StageHandshake, err)
	}
	return gossh.NewClient(c, chans, reqs), chk, nil
}

// keepalive asks the server for a reply every interval and gives the connection up when none
// comes for keepAliveMisses intervals, so a dead peer fails commands instead of hanging them.
func (t *Transport) keepalive(c *gossh.Client, every time.Duration) {
	defer t.wg.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-t.closed:
			return
		case <-tick.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		timer := time.NewTimer(every * keepAliveMisses)
		select {
		case err := <-reply:
			timer.Stop()
			if err != nil {
				t.lose(fmt.Errorf("connection lost: %w", err))
				return
			}
		case <-timer.C:
			t.lose(fmt.Errorf("no answer to keepalives for %s: the target or the network is down",
				every*keepAliveMisses))
			c.Close()
			<-reply
			return
		case <-t.closed:
			timer.Stop()
			<-reply // Close closes the client, which ends the request
			return
		}
	}
}

// track runs fn in a goroutine that Close waits for; fn must end once the connection is closed.
func (t *Transport) track(fn func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.closed:
		go fn() // Close has closed the connection already
		return
	default:
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		fn()
	}()
}

func (t *Transport) lose(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lost == nil {
		t.lost = err
	}
}

func (t *Transport) lostErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lost
}

// Info implements transport.Transport. Hostname is known after the first command.
func (t *Transport) Info() transport.Info {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := t.info
	i.Hostname = t.hostname
	return i
}

// Close implements transport.Transport.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		close(t.closed)
		t.mu.Unlock()
		for i := len(t.clients) - 1; i >= 0; i-- {
			t.clients[i].Close()
		}
		for _, h := range t.hops {
			h.auth.close()
		}
		t.wg.Wait()
	})
	return nil
}

func (t *Transport) fail(stage Stage, err error) error { return t.target.fail(stage, err) }

// Run implements transport.Transport: one session for the command.
func (t *Transport) Run(ctx context.Context, c transport.Command) (*transport.Result, error) {
	if t.target.cfg.RawCommands {
		return t.runRaw(ctx, c)
	}
	g, _, err := t.gather(ctx, transport.Gathering{Commands: []transport.Command{c}})
	if err != nil {
		return nil, err
	}
	return g.Commands[0].Result, g.Commands[0].Err
}

// RunBatch runs all commands in one session, one after the other, so the login shell starts once:
// Gather with commands only.
func (t *Transport) RunBatch(ctx context.Context, cmds []transport.Command) ([]transport.BatchResult, error) {
	g, err := t.Gather(ctx, transport.Gathering{Commands: cmds})
	if err != nil {
		return nil, err
	}
	return g.Commands, nil
}

func validCommand(c transport.Command) error {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return errors.New("empty command")
	}
	for _, w := range c.Argv {
		if err := validWord(w); err != nil {
			return err
		}
	}
	return nil
}

// commandTimeout is how long cmd may run: its own Timeout, else the target's command timeout.
func (t *Transport) commandTimeout(c transport.Command) time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return t.target.cfg.CommandTimeout
}

// ReadFile implements transport.Transport: stat and content in one session.
func (t *Transport) ReadFile(ctx context.Context, path string, maxBytes int64) (*transport.File, error) {
	rs, err := t.ReadFiles(ctx, []string{path}, maxBytes)
	if err != nil {
		return nil, err
	}
	return rs[0].File, rs[0].Err
}

// FileResult is one file's outcome in ReadFiles: Err as ReadFile would have returned it.
type FileResult = transport.FileResult

// ReadFiles reads several files in one session, paying the login shell's start-up once: Gather
// with files only.
func (t *Transport) ReadFiles(ctx context.Context, paths []string, maxBytes int64) ([]FileResult, error) {
	var g transport.Gathering
	for _, p := range paths {
		g.Files = append(g.Files, transport.FileRead{Path: p, MaxBytes: maxBytes})
	}
	got, err := t.Gather(ctx, g)
	if err != nil {
		return nil, err
	}
	return got.Files, nil
}

// Glob implements transport.Transport: the pattern is expanded by the target's shell with every
// literal part quoted, then matched here with path.Match.
func (t *Transport) Glob(ctx context.Context, pattern string) ([]string, error) {
	if t.target.cfg.RawCommands {
		return nil, t.errRaw("glob")
	}
	g, err := t.Gather(ctx, transport.Gathering{Globs: []string{pattern}})
	if err != nil {
		return nil, err
	}
	return g.Globs[0].Paths, g.Globs[0].Err
}

func newMarker() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "HT-" + hex.EncodeToString(b)
}
