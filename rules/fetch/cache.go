package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Cache is a directory of fetched rule packs, one directory per source named by the SHA-256 of
// the source as written.
type Cache struct {
	// Dir is the cache directory, created on first use with mode 0700.
	Dir string
	// Options are passed to Fetch; Options.Lint is required.
	Options Options
}

// Get returns the directory holding the pack of a remote source. A pinned source (a checksum or
// a commit) that was fetched before is used as it is, without the network; any other source is
// fetched again each time. Fetches into the cache are serialised by a lock on the cache
// directory, so concurrent runs do not replace a pack under each other.
func (c Cache) Get(ctx context.Context, source string) (string, error) {
	if err := CheckSource(source); err != nil {
		return "", fmt.Errorf("rules source %s: %w", RedactSource(source), err)
	}
	sum := sha256.Sum256([]byte(source))
	dst := filepath.Join(c.Dir, hex.EncodeToString(sum[:]))
	pinned := Pinned(source)
	if pinned && isDir(dst) {
		if c.Options.Logger != nil {
			c.Options.Logger.Debug("rule pack from the cache", "dir", dst)
		}
		return dst, nil
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return "", fmt.Errorf("rules cache: %w", err)
	}
	unlock, err := lockDir(c.Dir)
	if err != nil {
		return "", fmt.Errorf("rules cache %s: %w", c.Dir, err)
	}
	defer unlock()
	if pinned && isDir(dst) { // fetched by another run while this one waited
		return dst, nil
	}
	if err := Fetch(ctx, source, dst, c.Options); err != nil {
		return "", err
	}
	return dst, nil
}

// RedactSource leaves out a source's query, which may hold a presigned URL's signature.
func RedactSource(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		return s[:i] + "?..."
	}
	return s
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// lockDir takes an exclusive lock on a directory, waiting for it, and returns its release.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}
