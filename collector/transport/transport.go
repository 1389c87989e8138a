// Package transport is the seam between sources and a target: run a command as argv, read a file,
// expand a glob, locally or over SSH, always bounded by a context.
package transport

import (
	"context"
	"errors"
	"io/fs"
	"time"
)

// DefaultMaxBytes caps one artifact (a command's stdout or a file's content) unless a source says
// otherwise.
const DefaultMaxBytes = 16 << 20

// MaxStderrBytes caps the stderr kept from one command; stderr is provenance, not evidence.
const MaxStderrBytes = 64 << 10

var (
	// ErrNotFound means the command is not installed or the file does not exist.
	ErrNotFound = errors.New("not found")
	// ErrPermission means the command or file exists but this user may not run or read it.
	ErrPermission = errors.New("permission denied")
)

// Command is one program to run on a target. Argv is passed to the program as is; a transport
// never builds a local shell string from it, and quotes each word where a remote shell must read it.
type Command struct {
	Argv []string
	// Sudo runs the command through `sudo -n` (never a password prompt) unless already root.
	Sudo bool
	// MaxBytes caps stdout; past it the output is marked truncated and the command is stopped.
	// Zero means DefaultMaxBytes.
	MaxBytes int64
	// Timeout, when set, bounds this command inside a batch; transports that run one command per
	// call rely on ctx instead.
	Timeout time.Duration
}

// Result is what a command did. A non-zero exit is data, not an error.
type Result struct {
	Stdout    []byte
	Stderr    []byte // at most MaxStderrBytes
	ExitCode  int    // -1 when the command was ended by a signal or stopped at the cap
	Duration  time.Duration
	Truncated bool // stdout passed MaxBytes and the command was stopped
}

// File is a file read from a target.
type File struct {
	Path      string
	Content   []byte
	Size      int64 // size on the target, which may exceed len(Content) when Truncated
	Mode      fs.FileMode
	Owner     string // user name, or the numeric ID when it has no name
	Group     string
	Truncated bool
}

// Info describes a connection for a snapshot's provenance.
type Info struct {
	Kind     string // "local" or "ssh"
	Address  string // user@host:port for ssh, empty for local
	Hostname string // the target's own name where known
	// HostKey is the SHA-256 fingerprint of the host key that was verified (ssh only).
	HostKey string
	// Legacy is true when legacy algorithms were allowed for this connection.
	Legacy bool
}

// Transport runs commands and reads files on one target. Implementations are safe for concurrent
// use by the sources of one collection.
type Transport interface {
	// Run runs cmd and waits for it. A command that runs and exits non-zero is not an error:
	// Result.ExitCode says so. The error is non-nil when the command could not be started
	// (wrapping ErrNotFound or ErrPermission when that is why), when ctx ended first (wrapping
	// ctx.Err(); the command and every process it started have been stopped), or when the
	// transport itself failed.
	Run(ctx context.Context, cmd Command) (*Result, error)
	// ReadFile reads at most maxBytes (zero means DefaultMaxBytes) of the regular file at path.
	// A missing file wraps ErrNotFound and an unreadable one ErrPermission.
	ReadFile(ctx context.Context, path string, maxBytes int64) (*File, error)
	// Glob returns the paths matching an absolute pattern in path.Match syntax, sorted. No match is
	// not an error.
	Glob(ctx context.Context, pattern string) ([]string, error)
	// Info describes the connection.
	Info() Info
	// Close releases the connection. It is safe to call more than once.
	Close() error
}

// Batcher is implemented by transports that can run several commands in one round trip, such as
// one SSH session with framed output, paying a login shell's start-up once instead of per command.
// RunBatch returns one BatchResult per command, in order; its own error means the whole batch
// failed (the transport broke or ctx ended before any result). Each command keeps its own exit
// code, stderr, cap and truncation.
type Batcher interface {
	RunBatch(ctx context.Context, cmds []Command) ([]BatchResult, error)
}

// BatchResult is one command's outcome inside a batch: Err as Run would have returned it.
type BatchResult struct {
	Result *Result
	Err    error
}

// FileBatcher is implemented by transports that read several files in one round trip.
// ReadFiles returns one FileResult per path, in order, each what ReadFile would have returned;
// its own error means no file could be read (the transport broke or ctx ended first).
type FileBatcher interface {
	ReadFiles(ctx context.Context, paths []string, maxBytes int64) ([]FileResult, error)
}

// FileResult is one file's outcome inside a FileBatcher call.
type FileResult struct {
	File *File
	Err  error
}

// Gatherer is implemented by transports that run commands, read files and expand globs all in
// one round trip. Each result is what Run (or RunBatch), ReadFile and Glob would have returned;
// a glob read is what Glob and then ReadFile on each match would have returned. Gather's own
// error means nothing could be gathered (the transport broke or ctx ended first).
type Gatherer interface {
	Gather(ctx context.Context, g Gathering) (*Gathered, error)
}

// Gathering is what one Gather call asks for.
type Gathering struct {
	Commands []Command
	Files    []FileRead
	Globs    []string
	// GlobReads expand a pattern and read every file it matches, in the same round trip.
	GlobReads []FileGlob
}

// FileGlob is an absolute pattern in path.Match syntax whose matches are read, each with the
// cap MaxBytes (zero means DefaultMaxBytes).
type FileGlob struct {
	Pattern  string
	MaxBytes int64
}

// FileRead is one file to read, with its cap (zero means DefaultMaxBytes).
type FileRead struct {
	Path     string
	MaxBytes int64
}

// Gathered holds one result per command, file and glob, in the order asked.
type Gathered struct {
	Commands  []BatchResult
	Files     []FileResult
	Globs     []GlobResult
	GlobReads []GlobReadResult
}

// GlobResult is one glob's expansion, sorted.
type GlobResult struct {
	Paths []string
	Err   error
}

// GlobReadResult is one glob read: the matches, sorted, and for each (Files[i] for Paths[i]) what
// ReadFile would have returned. Err means the pattern could not be expanded; then Paths is empty.
type GlobReadResult struct {
	Paths []string
	Files []FileResult
	Err   error
}
