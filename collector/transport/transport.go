// Package transport is the seam between sources and a target: run a command as argv, read a file,
// expand a glob, locally or over SSH, always bounded by a context.
package transport

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"time"
)

// DefaultMaxBytes caps one artifact (a command's stdout or a file's content) unless a source says
// otherwise.
const DefaultMaxBytes = 16 << 20

// MaxStderrBytes caps the stderr kept from one command; stderr is provenance, not evidence.
const MaxStderrBytes = 64 << 10

// DefaultCommandTimeout bounds one command whose Command.Timeout is zero, on every transport,
// unless the transport is configured otherwise (a target's command_timeout).
const DefaultCommandTimeout = 60 * time.Second

var (
	// ErrNotFound means the command is not installed or the file does not exist.
	ErrNotFound = errors.New("not found")
	// ErrPermission means the command or file exists but this user may not run or read it.
	ErrPermission = errors.New("permission denied")
	// ErrNotRegular means the path names something other than a regular file (a directory, a
	// FIFO, a device): there is no content to read.
	ErrNotRegular = errors.New("not a regular file")
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
	// Timeout bounds this command, in Run and in Gather alike; zero means the transport's
	// command timeout (DefaultCommandTimeout unless configured). A command stopped by it is
	// reported with an error wrapping context.DeadlineExceeded and no exit code of its own.
	Timeout time.Duration
}

// Result is what a command did. A non-zero exit is data, not an error.
type Result struct {
	Stdout    []byte
	Stderr    []byte // at most MaxStderrBytes
	ExitCode  int    // -1 when the command was ended by a signal, stopped at the cap or timed out
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
	// (wrapping ErrNotFound or ErrPermission when that is why), when ctx ended or cmd's timeout
	// passed first (wrapping ctx.Err() or context.DeadlineExceeded; the command and every
	// process it started have been stopped), or when the transport itself failed.
	Run(ctx context.Context, cmd Command) (*Result, error)
	// ReadFile reads at most maxBytes (zero means DefaultMaxBytes) of the regular file at path.
	// A missing file wraps ErrNotFound, an unreadable one ErrPermission, and anything but a
	// regular file ErrNotRegular.
	ReadFile(ctx context.Context, path string, maxBytes int64) (*File, error)
	// Glob returns the paths matching an absolute pattern in path.Match syntax, sorted. No match is
	// not an error.
	Glob(ctx context.Context, pattern string) ([]string, error)
	// Gather runs a profile's steps: its commands, file reads, glob expansions and glob reads,
	// in the order asked within each kind, commands first. Each result is what Run, ReadFile
	// and Glob would have returned (a glob read: Glob, then ReadFile on each match), and each
	// command keeps its own Timeout, cap, exit code and stderr. A transport does it in as few
	// round trips as it can (one SSH session). Gather's own error means nothing could be
	// gathered: the transport broke or ctx ended first.
	Gather(ctx context.Context, g Gathering) (*Gathered, error)
	// Info describes the connection.
	Info() Info
	// Close releases the connection. It is safe to call more than once.
	Close() error
}

// BatchResult is one command's outcome in a Gather: Result and Err as Run would have returned.
type BatchResult struct {
	Result *Result
	Err    error
}

// FileResult is one file's outcome in a Gather: File and Err as ReadFile would have returned.
type FileResult struct {
	File *File
	Err  error
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

// GatherEach implements Gather for a transport whose Run, ReadFile and Glob are cheap, calling
// them for each step, at most workers (default 4) at a time. Its own error is ctx's, when ctx
// ended before every step finished.
func GatherEach(ctx context.Context, tr Transport, g Gathering, workers int) (*Gathered, error) {
	out := &Gathered{
		Commands:  make([]BatchResult, len(g.Commands)),
		Files:     make([]FileResult, len(g.Files)),
		Globs:     make([]GlobResult, len(g.Globs)),
		GlobReads: make([]GlobReadResult, len(g.GlobReads)),
	}
	var jobs []func()
	for i, c := range g.Commands {
		jobs = append(jobs, func() { out.Commands[i].Result, out.Commands[i].Err = tr.Run(ctx, c) })
	}
	for i, f := range g.Files {
		jobs = append(jobs, func() { out.Files[i].File, out.Files[i].Err = tr.ReadFile(ctx, f.Path, f.MaxBytes) })
	}
	for i, p := range g.Globs {
		jobs = append(jobs, func() { out.Globs[i].Paths, out.Globs[i].Err = tr.Glob(ctx, p) })
	}
	for i, gr := range g.GlobReads {
		jobs = append(jobs, func() {
			o := &out.GlobReads[i]
			if o.Paths, o.Err = tr.Glob(ctx, gr.Pattern); o.Err != nil {
				o.Paths = nil
				return
			}
			o.Files = make([]FileResult, len(o.Paths))
			for k, p := range o.Paths {
				o.Files[k].File, o.Files[k].Err = tr.ReadFile(ctx, p, gr.MaxBytes)
			}
		})
	}
	if workers <= 0 {
		workers = 4
	}
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for _, job := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			job()
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
