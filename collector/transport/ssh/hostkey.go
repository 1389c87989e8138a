package ssh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/hardtrail/hardtrail/internal/atomicfile"
)

// modernHostKeyAlgorithms is the order offered for a host with no key on record: Ed25519 first, as
// OpenSSH does, so the fingerprint shown for an unknown host is the one `ssh` and `hosts add` see.
var modernHostKeyAlgorithms = []string{
	gossh.KeyAlgoED25519,
	gossh.KeyAlgoECDSA256, gossh.KeyAlgoECDSA384, gossh.KeyAlgoECDSA521,
	gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256,
}

var certHostKeyAlgorithms = []string{
	gossh.CertAlgoED25519v01,
	gossh.CertAlgoECDSA256v01, gossh.CertAlgoECDSA384v01, gossh.CertAlgoECDSA521v01,
	gossh.CertAlgoRSASHA512v01, gossh.CertAlgoRSASHA256v01,
}

// keyAlgorithms returns the host key algorithms that make a server present a key of keyType.
func keyAlgorithms(keyType string, legacy bool) []string {
	switch keyType {
	case gossh.KeyAlgoRSA:
		if legacy {
			return []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA}
		}
		return []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256}
	case gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSASHA512:
		return keyAlgorithms(gossh.KeyAlgoRSA, legacy)
	}
	return []string{keyType}
}

func defaultHostKeyAlgorithms(legacy bool) []string {
	if legacy {
		return append(slices.Clone(modernHostKeyAlgorithms), gossh.KeyAlgoRSA)
	}
	return slices.Clone(modernHostKeyAlgorithms)
}

// hostKeys verifies the host key of one hop against known_hosts files and pinned fingerprints.
type hostKeys struct {
	target  string // name used in messages and in the enrolment hint
	host    string // host:port as dialled, which known_hosts entries are matched against
	pins    []string
	legacy  bool
	cb      gossh.HostKeyCallback // nil when no known_hosts file exists
	known   []knownhosts.KnownKey // plain keys on record for host
	ca      bool                  // some @cert-authority line covers host
	caLines map[string]bool       // FILE:LINE of every @cert-authority line
	revoked map[string]bool       // marshalled keys marked @revoked
}

func newHostKeys(target, host string, files, pins []string, legacy bool) (*hostKeys, error) {
	h := &hostKeys{target: target, host: host, legacy: legacy}
	for _, p := range pins {
		p = strings.TrimRight(strings.TrimSpace(p), "=")
		if !strings.HasPrefix(p, "SHA256:") || len(p) != len("SHA256:")+43 {
			return nil, fmt.Errorf("fingerprint %q: want SHA256: and 43 base64 characters, as ssh-keygen -lf prints", p)
		}
		h.pins = append(h.pins, p)
	}
	db, err := loadKnownHosts(files)
	if err != nil {
		return nil, err
	}
	h.revoked, h.caLines = db.revoked, db.caLines
	for _, hosts := range db.caHosts {
		h.ca = h.ca || matchHosts(hosts, h.host)
	}
	if db.cb != nil {
		h.cb = db.cb
		// Ask the database which keys it holds for host by offering one it cannot hold.
		var ke *knownhosts.KeyError
		if errors.As(db.cb(host, &net.TCPAddr{}, db.probe), &ke) {
			// The database matches @cert-authority lines too; a CA key is not a host key.
			for _, k := range ke.Want {
				if !h.caLines[fmt.Sprintf("%s:%d", k.Filename, k.Line)] {
					h.known = append(h.known, k)
				}
			}
		}
	}
	return h, nil
}

// knownDB is what verifying host keys reads from a set of known_hosts files. It is read-only
// once loaded, and shared by every dial while the files are unchanged: a fleet dials each of
// its targets against the same files, which would otherwise be parsed once per target.
type knownDB struct {
	stamp   string                // the files as loaded: names, devices, inodes, sizes, mtimes
	cb      gossh.HostKeyCallback // nil when no file exists
	probe   gossh.PublicKey       // a key no file holds, which makes cb list what a host has
	revoked map[string]bool       // marshalled keys marked @revoked
	caLines map[string]bool       // FILE:LINE of every @cert-authority line
	caHosts [][]string            // the host patterns of each @cert-authority line
}

// known holds the last load of each set of files, by their names.
var known struct {
	mu sync.Mutex
	db map[string]*knownDB
}

// loadKnownHosts returns the parsed files, from the last load when no file has changed since.
func loadKnownHosts(files []string) (*knownDB, error) {
	var stamp strings.Builder
	var existing []string
	for _, f := range files {
		fi, err := os.Stat(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue // nothing enrolled yet: every host is unknown
		}
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		var dev, ino uint64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			dev, ino = uint64(st.Dev), st.Ino
		}
		fmt.Fprintf(&stamp, "%q %d %d %d %d\n", f, dev, ino, fi.Size(), fi.ModTime().UnixNano())
		existing = append(existing, f)
	}
	key := strings.Join(files, "\x00")
	known.mu.Lock()
	defer known.mu.Unlock()
	if db := known.db[key]; db != nil && db.stamp == stamp.String() {
		return db, nil
	}
	db := &knownDB{stamp: stamp.String(), revoked: map[string]bool{}, caLines: map[string]bool{}}
	for _, f := range existing {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		db.scanMarkers(f, data)
	}
	if len(existing) > 0 {
		cb, err := knownhosts.New(existing...)
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		_, probe, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		signer, err := gossh.NewSignerFromKey(probe)
		if err != nil {
			return nil, err
		}
		db.cb, db.probe = cb, signer.PublicKey()
	}
	if known.db == nil {
		known.db = map[string]*knownDB{}
	}
	known.db[key] = db
	return db, nil
}

// scanMarkers records @revoked keys and the @cert-authority lines of a file.
func (db *knownDB) scanMarkers(file string, data []byte) {
	n := 0
	for line := range bytes.Lines(data) {
		n++
		marker, hosts, key, _, _, err := gossh.ParseKnownHosts(line)
		if err != nil || key == nil {
			continue
		}
		switch marker {
		case "revoked":
			db.revoked[string(key.Marshal())] = true
		case "cert-authority":
			db.caLines[fmt.Sprintf("%s:%d", file, n)] = true
			db.caHosts = append(db.caHosts, hosts)
		}
	}
}

// matchHosts reports whether a known_hosts host list covers host:port, with the rules of OpenSSH:
// wildcards, negation, [host]:port for other ports than 22, and hashed names.
func matchHosts(patterns []string, hostport string) bool {
	norm := knownhosts.Normalize(hostport)
	host, port := splitPattern(norm)
	matched := false
	for _, pat := range patterns {
		if strings.HasPrefix(pat, "|1|") {
			if hashedMatch(pat, norm) {
				matched = true
			}
			continue
		}
		negate := strings.HasPrefix(pat, "!")
		ph, pp := splitPattern(strings.TrimPrefix(pat, "!"))
		if pp != port || !wildcardMatch(ph, host) {
			continue
		}
		if negate {
			return false
		}
		matched = true
	}
	return matched
}

func splitPattern(p string) (host, port string) {
	if h, pt, err := net.SplitHostPort(p); err == nil {
		return h, pt
	}
	return p, "22"
}

func hashedMatch(pat, norm string) bool {
	parts := strings.Split(pat, "|")
	if len(parts) != 4 {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(parts[2])
	want, err2 := base64.StdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	mac := hmac.New(sha1.New, salt)
	mac.Write([]byte(norm))
	return hmac.Equal(mac.Sum(nil), want)
}

func wildcardMatch(pat, s string) bool {
	for len(pat) > 0 {
		switch pat[0] {
		case '*':
			for i := 0; i <= len(s); i++ {
				if wildcardMatch(pat[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != pat[0] {
				return false
			}
		}
		pat, s = pat[1:], s[1:]
	}
	return s == ""
}

// algorithms lists the host key algorithms to offer: only those for which a key (or a CA) is on
// record, so that a server holding several keys presents the one we can check. With nothing on
// record, or with pinned fingerprints, all algorithms in the modern order.
func (h *hostKeys) algorithms() []string {
	var algs []string
	if h.ca {
		algs = append(algs, certHostKeyAlgorithms...)
		if h.legacy {
			algs = append(algs, gossh.CertAlgoRSAv01)
		}
	}
	for _, k := range h.known {
		algs = append(algs, keyAlgorithms(k.Key.Type(), h.legacy)...)
	}
	if len(algs) == 0 || len(h.pins) > 0 {
		algs = append(algs, defaultHostKeyAlgorithms(h.legacy)...)
	}
	out := algs[:0]
	seen := map[string]bool{}
	for _, a := range algs {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// check is one handshake's host key verification; it remembers what was presented and why it was
// refused, so that the handshake's error can be told apart from an authentication failure.
type check struct {
	*hostKeys
	presented gossh.PublicKey
	refused   error
	verified  bool
}

func (c *check) callback(hostname string, remote net.Addr, key gossh.PublicKey) error {
	c.presented = key
	if err := c.verify(hostname, remote, key); err != nil {
		c.refused = err
		return err
	}
	c.verified = true
	return nil
}

func (c *check) verify(hostname string, remote net.Addr, key gossh.PublicKey) error {
	herr := &HostKeyError{Host: c.host, Target: c.target, Presented: key}
	if c.isRevoked(key) {
		herr.Reason = ErrHostKeyRevoked
		return herr
	}
	if c.pinned(key) {
		return nil
	}
	var err error = &knownhosts.KeyError{}
	if c.cb != nil {
		err = c.cb(hostname, remote, key)
	}
	if err == nil {
		if _, isCert := key.(*gossh.Certificate); isCert || c.isKnown(key) {
			return nil
		}
		// Matched only a @cert-authority line: a CA key presented as a host key.
		err = &knownhosts.KeyError{Want: c.known}
	}
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		herr.Reason = ErrHostKeyRevoked
	case errors.As(err, &ke):
		for _, w := range ke.Want {
			herr.Expected = append(herr.Expected, fmt.Sprintf("%s %s (%s:%d)",
				w.Key.Type(), gossh.FingerprintSHA256(w.Key), w.Filename, w.Line))
		}
		herr.Expected = append(herr.Expected, c.pins...)
		herr.Reason = ErrHostKeyChanged
		if len(herr.Expected) == 0 {
			herr.Reason = ErrUnknownHost
		}
	default:
		// A host certificate that is expired, names other principals or comes from a CA that
		// is not trusted for this host.
		herr.Reason = fmt.Errorf("host certificate not accepted: %w", err)
		if cert, ok := key.(*gossh.Certificate); ok {
			herr.Reason = fmt.Errorf("host certificate (CA %s %s) not accepted: %w",
				cert.SignatureKey.Type(), gossh.FingerprintSHA256(cert.SignatureKey), err)
		}
	}
	return herr
}

func (h *hostKeys) isKnown(key gossh.PublicKey) bool {
	for _, k := range h.known {
		if bytes.Equal(k.Key.Marshal(), key.Marshal()) {
			return true
		}
	}
	return false
}

func (h *hostKeys) isRevoked(key gossh.PublicKey) bool {
	if h.revoked[string(key.Marshal())] {
		return true
	}
	if cert, ok := key.(*gossh.Certificate); ok {
		return h.revoked[string(cert.Key.Marshal())] || h.revoked[string(cert.SignatureKey.Marshal())]
	}
	return false
}

func (h *hostKeys) pinned(key gossh.PublicKey) bool {
	fps := []string{gossh.FingerprintSHA256(key)}
	if cert, ok := key.(*gossh.Certificate); ok {
		fps = append(fps, gossh.FingerprintSHA256(cert.Key))
	}
	for _, p := range h.pins {
		if slices.Contains(fps, p) {
			return true
		}
	}
	return false
}

// ScanHostKey connects to address (host:port or user@host:port) and returns the host key the
// server presents, without authenticating. It offers algorithms in the order Dial uses for a host
// with nothing on record, so the key is the one an unknown-host error named. The key proves
// nothing by itself: compare its fingerprint with one obtained out of band before trusting it.
func ScanHostKey(ctx context.Context, address string, timeout time.Duration) (gossh.PublicKey, error) {
	return scan(ctx, address, timeout, func(ctx context.Context, host string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", host)
	})
}

// ScanHostKeyVia is ScanHostKey for a target reached through jump, whose own host key (and its
// jump hosts') is verified as Dial does.
func ScanHostKeyVia(ctx context.Context, jump Config, address string, timeout time.Duration) (gossh.PublicKey, error) {
	t, err := Dial(ctx, jump)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	return scan(ctx, address, timeout, func(ctx context.Context, host string) (net.Conn, error) {
		return t.client.DialContext(ctx, "tcp", host)
	})
}

func scan(ctx context.Context, address string, timeout time.Duration,
	dial func(context.Context, string) (net.Conn, error)) (gossh.PublicKey, error) {
	_, host, err := splitAddress(address)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fail := func(stage Stage, err error) error {
		return &Error{Stage: stage, Target: address, Address: host, Err: err}
	}
	conn, err := dial(ctx, host)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fail(StageTimeout, fmt.Errorf("no TCP connection within %s: %w", timeout, ctx.Err()))
		}
		return nil, fail(StageDial, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var key gossh.PublicKey
	errScanned := errors.New("host key scanned")
	// Legacy algorithms come last: they change nothing for a modern server, and let an old
	// device show its key.
	algs := algorithms(true)
	cfg := &gossh.ClientConfig{
		User:              "hardtrail",
		Config:            gossh.Config{KeyExchanges: algs.KeyExchanges, Ciphers: algs.Ciphers, MACs: algs.MACs},
		HostKeyAlgorithms: defaultHostKeyAlgorithms(true),
		HostKeyCallback: func(_ string, _ net.Addr, k gossh.PublicKey) error {
			key = k
			return errScanned
		},
		ClientVersion: "SSH-2.0-hardtrail",
	}
	_, _, _, err = gossh.NewClientConn(conn, host, cfg)
	if key != nil {
		return key, nil
	}
	if ctx.Err() != nil {
		return nil, fail(StageTimeout, fmt.Errorf("no SSH host key within %s: the port accepts connections "+
			"but does not answer as an SSH server: %w", timeout, ctx.Err()))
	}
	return nil, fail(StageHandshake, err)
}

// KnownHostConflict is an enrolment refused because the file already trusts another key of the
// same type for the host: the host's key changed, or someone is in the middle.
type KnownHostConflict struct {
	File string
	Host string // host:port
	Type string // key type, such as ssh-ed25519
	// On are the entries that trust another key: "FILE:LINE SHA256:...".
	On []string
	// Shared is set when some of those entries also cover other hosts through a wildcard, so
	// that replacing cannot remove them without changing what is trusted for those hosts.
	Shared bool
}

func (e *KnownHostConflict) Error() string {
	if e.Shared {
		return fmt.Sprintf("known_hosts %s trusts another %s key for %s on a line that covers other hosts too (%s): edit that line by hand",
			e.File, e.Type, e.Host, strings.Join(e.On, ", "))
	}
	return fmt.Sprintf("known_hosts %s already trusts another %s key for %s (%s): the host key changed",
		e.File, e.Type, e.Host, strings.Join(e.On, ", "))
}

// AddKnownHost adds key for address (host:port or user@host:port) to the known_hosts file at
// path, creating the file (mode 0600) and its directory (0700) when missing. The host name is
// hashed as OpenSSH's HashKnownHosts does, so the file does not list the estate in clear;
// `ssh-keygen -F HOST -f FILE` still finds it. It returns false, writing nothing, when the key is
// already on record for the host, and a *KnownHostConflict when another key of the same type is.
// The file is rewritten atomically.
func AddKnownHost(path, address string, key gossh.PublicKey) (bool, error) {
	added, _, err := enrol(path, address, key, false)
	return added, err
}

// ReplaceKnownHost is AddKnownHost that removes the entries trusting another key of the same
// type for the host, so that only key is trusted for it of that type. An entry that names the
// host beside other hosts loses only the host's name; an entry that covers the host through a
// wildcard is not changed, and makes it fail with a *KnownHostConflict (Shared). It returns the
// removed entries as "FILE:LINE TYPE SHA256:...".
func ReplaceKnownHost(path, address string, key gossh.PublicKey) (removed []string, err error) {
	_, removed, err = enrol(path, address, key, true)
	return removed, err
}

func enrol(path, address string, key gossh.PublicKey, replace bool) (added bool, removed []string, err error) {
	_, host, err := splitAddress(address)
	if err != nil {
		return false, nil, err
	}
	norm := knownhosts.Normalize(host)
	data, err := os.ReadFile(path)
	mode := fs.FileMode(0o600)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return false, nil, fmt.Errorf("known_hosts: %w", err)
		}
	case err != nil:
		return false, nil, fmt.Errorf("known_hosts: %w", err)
	default:
		if st, err := os.Stat(path); err == nil {
			mode = st.Mode().Perm()
		}
	}
	conflict := &KnownHostConflict{File: path, Host: host, Type: key.Type()}
	var out bytes.Buffer
	n := 0
	for line := range bytes.Lines(data) {
		n++
		marker, hosts, k, _, _, perr := gossh.ParseKnownHosts(line)
		if perr != nil || k == nil || marker != "" || !matchHosts(hosts, host) || k.Type() != key.Type() {
			out.Write(line)
			continue
		}
		if bytes.Equal(k.Marshal(), key.Marshal()) {
			if !replace {
				return false, nil, nil // already trusted: nothing to write
			}
			continue // dropped here, added again below
		}
		where := fmt.Sprintf("%s:%d %s", path, n, gossh.FingerprintSHA256(k))
		conflict.On = append(conflict.On, where)
		// The patterns that are not this host exactly, plainly or hashed, stay.
		var keep []string
		shared := false
		for _, p := range hosts {
			switch {
			case p == norm || (strings.HasPrefix(p, "|1|") && hashedMatch(p, norm)):
			case !strings.HasPrefix(p, "!") && !strings.HasPrefix(p, "|1|") && strings.ContainsAny(p, "*?") && matchHosts([]string{p}, host):
				shared = true
				keep = append(keep, p)
			default:
				keep = append(keep, p)
			}
		}
		if shared {
			conflict.Shared = true
		}
		removed = append(removed, fmt.Sprintf("%s:%d %s %s", path, n, k.Type(), gossh.FingerprintSHA256(k)))
		if len(keep) > 0 {
			// The host field is the line's first word (marker lines are not touched).
			t := bytes.TrimLeft(line, " \t")
			rest := t[bytes.IndexAny(t, " \t"):]
			out.WriteString(strings.Join(keep, ","))
			out.Write(rest)
		}
	}
	if len(conflict.On) > 0 && (!replace || conflict.Shared) {
		return false, nil, conflict
	}
	if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
		out.WriteByte('\n')
	}
	out.WriteString(knownhosts.Line([]string{knownhosts.HashHostname(norm)}, key) + "\n")
	if err := atomicfile.WriteFile(path, out.Bytes(), mode); err != nil {
		return false, nil, fmt.Errorf("known_hosts %s: %w", path, err)
	}
	return true, removed, nil
}
