package ssh

import (
	"errors"
	"fmt"
	"strings"

	gossh "golang.org/x/crypto/ssh"
)

// Stage says how far a connection or command got before it failed.
type Stage string

// The stages of an SSH transport, in the order a connection passes them.
const (
	StageDial      Stage = "dial"      // no TCP connection (refused, unreachable, no route)
	StageHandshake Stage = "handshake" // the SSH protocol failed before the host key was presented
	StageHostKey   Stage = "hostkey"   // the host key is unknown, changed, revoked or not trusted
	StageAuth      Stage = "auth"      // the target refused every key offered
	StageCommand   Stage = "command"   // the session or the connection broke while running commands
	StageTimeout   Stage = "timeout"   // a deadline passed: connect, handshake, command or keepalive
)

// Error is a failure of the SSH transport to one target. Err says what happened and what to do;
// errors.Is sees through it (context.DeadlineExceeded, ErrUnknownHost, ErrHostKeyChanged, ...).
type Error struct {
	Stage   Stage
	Target  string // the target's name, or its address when it has none
	Address string // user@host:port of the hop that failed
	Err     error
}

func (e *Error) Error() string {
	if e.Target == "" || e.Target == e.Address {
		return fmt.Sprintf("ssh %s: %s: %v", e.Address, e.Stage, e.Err)
	}
	return fmt.Sprintf("ssh %s (%s): %s: %v", e.Target, e.Address, e.Stage, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

var (
	// ErrUnknownHost means no known_hosts entry or pinned fingerprint covers the target.
	ErrUnknownHost = errors.New("host key is not known")
	// ErrHostKeyChanged means the target presented a key other than the one on record.
	ErrHostKeyChanged = errors.New("host key does not match")
	// ErrHostKeyRevoked means the key (or the CA that signed it) is marked @revoked.
	ErrHostKeyRevoked = errors.New("host key is revoked")
	// ErrEnableRefused means the device did not enter privileged mode with the enable secret
	// given: it asked again, or answered with its unprivileged prompt.
	ErrEnableRefused = errors.New("the device refused the enable secret")
	// ErrNoEnableSecret means the session landed unprivileged, its profile enters privileged
	// mode, and the target names no enable secret.
	ErrNoEnableSecret = errors.New("no enable secret is configured")
)

// HostKeyError details a host key that was refused. It wraps one of ErrUnknownHost,
// ErrHostKeyChanged or ErrHostKeyRevoked, or the reason a host certificate was not accepted.
type HostKeyError struct {
	Host      string          // host:port as checked against known_hosts
	Target    string          // the name to enrol the key under
	Presented gossh.PublicKey // the key the target presented
	// Expected lists the keys on record as "TYPE SHA256:... (FILE:LINE)" or pinned fingerprints.
	Expected []string
	Reason   error
}

func (e *HostKeyError) Unwrap() error { return e.Reason }

func (e *HostKeyError) Error() string {
	fp := gossh.FingerprintSHA256(e.Presented)
	typ := e.Presented.Type()
	switch {
	case errors.Is(e.Reason, ErrUnknownHost):
		return fmt.Sprintf("%v: %s presented %s %s; compare it with the target's own key out of band "+
			"(on the target: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then enrol it: "+
			"hardtrail hosts add %s --fingerprint %s", e.Reason, e.Host, typ, fp, e.Target, fp)
	case errors.Is(e.Reason, ErrHostKeyChanged):
		return fmt.Sprintf("%v: %s presented %s %s but the record expects %s. This may be an attack "+
			"(man in the middle); if the key was replaced on purpose, check the new one out of band and enrol it "+
			"in place of the old: hardtrail hosts add %s --fingerprint %s --replace",
			e.Reason, e.Host, typ, fp, strings.Join(e.Expected, ", "), e.Target, fp)
	case errors.Is(e.Reason, ErrHostKeyRevoked):
		return fmt.Sprintf("%v: %s presented %s %s, which known_hosts marks @revoked; do not connect "+
			"until the target has a new key", e.Reason, e.Host, typ, fp)
	}
	return fmt.Sprintf("%s presented %s %s: %v", e.Host, typ, fp, e.Reason)
}
