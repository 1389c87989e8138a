// Package atomicfile writes files so that a reader, or a crash at any moment, sees either no new
// file or the whole of it, never part of one.
//
// A file is written into a temporary file in the same directory, named .NAME.tmp-PID-RANDOM,
// synced, then renamed (or, for Create, linked) into place, and the directory synced. The
// temporary file is removed on every error. A run that was killed leaves its temporary file
// behind; the next write into the same directory removes such files when the process that made
// them is gone or when they have not changed for StaleAfter.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// StaleAfter is how long a temporary file of a process that may still run is left alone. A
// writer keeps its temporary file's modification time fresh while it writes.
const StaleAfter = 15 * time.Minute

// tempRE matches the temporary files this package makes: .NAME.tmp-PID-RANDOM.
var tempRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\..+\.tmp-([0-9]+)-[0-9a-f]{8}$`) })

// WriteFile replaces path with data, created with mode (the umask does not apply).
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	return Write(path, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write replaces path with what fill writes, created with mode. When fill fails nothing at path
// changes and the error is returned as it is.
func Write(path string, mode fs.FileMode, fill func(io.Writer) error) error {
	return write(path, mode, fill, false)
}

// Create is Write for a file that must not exist yet: when path exists, nothing is written and
// the error wraps fs.ErrExist. Of two concurrent Creates, one wins and the other sees
// fs.ErrExist.
func Create(path string, mode fs.FileMode, fill func(io.Writer) error) error {
	return write(path, mode, fill, true)
}

func write(path string, mode fs.FileMode, fill func(io.Writer) error, exclusive bool) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return fmt.Errorf("%s: no file name", path)
	}
	CleanStale(dir)
	if exclusive {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s: %w", path, fs.ErrExist)
		}
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.tmp-%d-%s", base, os.Getpid(), hex.EncodeToString(rnd[:])))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode.Perm()); err != nil {
		return err
	}
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if exclusive {
		// link fails when path exists, where rename would replace it.
		if err = os.Link(tmp, path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s: %w", path, fs.ErrExist)
			}
			return err
		}
		os.Remove(tmp)
	} else if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// CleanStale removes the temporary files of earlier writes in dir whose process has ended, or
// that have not changed for StaleAfter. It returns how many it removed; errors are ignored, as
// a file it cannot remove is one it could not have made.
func CleanStale(dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		m := tempRE().FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		info, err := e.Info()
		if err != nil {
			continue
		}
		if alive(pid) && time.Since(info.ModTime()) < StaleAfter {
			continue
		}
		if os.Remove(filepath.Join(dir, e.Name())) == nil {
			n++
		}
	}
	return n
}

// alive reports whether a process with the PID exists (as far as this process can tell).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
