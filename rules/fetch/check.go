package fetch

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// docNames are the files besides *.toml a pack may hold: inert text that publishers ship with
// their rules and that nothing loads or runs.
var docNames = map[string]bool{
	"README": true, "README.md": true, "README.txt": true,
	"LICENSE": true, "LICENSE.md": true, "LICENSE.txt": true,
	"COPYING": true, "NOTICE": true,
}

// limits bound what a fetch may write.
type limits struct {
	maxBytes     int64 // all files together
	maxFileBytes int64 // any one file
	maxFiles     int   // regular files
}

// maxEntries bounds directories and files together.
func (l limits) maxEntries() int { return 2*l.maxFiles + 16 }

// maxStream bounds an archive's bytes, compressed or not: the files plus tar's framing (a header
// and padding per entry, a long-name header now and then, the end blocks).
func (l limits) maxStream() int64 { return l.maxBytes + int64(l.maxEntries())*2048 + 10240 }

// packStats counts what a checked tree holds.
type packStats struct {
	files, rules, dirs int
	bytes              int64
}

// treeCheck walks a directory with Lstat, never following a link, and refuses anything but
// directories and regular, singly linked files with accepted names, within limits.
type treeCheck struct {
	limits limits
	// normalise sets directories to 0755 and files to 0644 during the walk (fetched content
	// arrives with whatever modes its source chose, 0000 and 0777 included).
	normalise bool
}

func (c treeCheck) run(root string) (packStats, error) {
	var st packStats
	fi, err := os.Lstat(root)
	if err != nil {
		return st, err
	}
	if !fi.IsDir() {
		return st, refusef("%s is %s, not a directory", root, describe(fi.Mode()))
	}
	return st, c.walk(root, ".", &st)
}

func (c treeCheck) walk(dir, rel string, st *packStats) error {
	if c.normalise {
		if err := os.Chmod(dir, 0o755); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p, r := filepath.Join(dir, e.Name()), path.Join(rel, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		mode := fi.Mode()
		switch {
		case mode.IsDir():
			if err := checkName(r, true); err != nil {
				return err
			}
			st.dirs++
			if st.dirs+st.files > c.limits.maxEntries() {
				return refusef("more than %d files and directories", c.limits.maxEntries())
			}
			if err := c.walk(p, r, st); err != nil {
				return err
			}
		case mode.IsRegular():
			if err := checkName(r, false); err != nil {
				return err
			}
			if n := nlink(fi); n > 1 {
				return refusef("%s is hard-linked (%d names); hard links are not accepted", r, n)
			}
			st.files++
			if st.files > c.limits.maxFiles {
				return refusef("too many files: more than %d", c.limits.maxFiles)
			}
			if fi.Size() > c.limits.maxFileBytes {
				return refusef("%s is %d bytes, over the per-file limit of %d", r, fi.Size(), c.limits.maxFileBytes)
			}
			st.bytes += fi.Size()
			if st.bytes > c.limits.maxBytes {
				return refusef("files total more than the limit of %d bytes (at %s)", c.limits.maxBytes, r)
			}
			if strings.HasSuffix(r, ".toml") {
				st.rules++
			}
			if c.normalise {
				if err := os.Chmod(p, 0o644); err != nil {
					return err
				}
			}
		case mode&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			return refusef("%s is a symlink (to %q); symlinks are not accepted", r, target)
		default:
			return refusef("%s is %s; only regular files and directories are accepted", r, describe(mode))
		}
	}
	return nil
}

// checkName refuses a name in a pack unless it is printable, not hidden, and (for a file) a *.toml
// rule file or one of docNames. rel is the slash-separated path inside the pack.
func checkName(rel string, isDir bool) error {
	name := path.Base(rel)
	if !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return refusef("%q: names must be printable UTF-8", rel)
	}
	if strings.HasPrefix(name, ".") {
		return refusef("%s: hidden files and directories are not accepted in a rule pack", rel)
	}
	if isDir || strings.HasSuffix(name, ".toml") || docNames[name] {
		return nil
	}
	return refusef("%s: a rule pack holds only *.toml rule files (and README, LICENSE, COPYING, NOTICE); "+
		"select the directory that holds the rules with SOURCE//SUBDIR", rel)
}

// describe names a file type for messages.
func describe(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	default:
		return fmt.Sprintf("a special file (%v)", m.Type())
	}
}

func nlink(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// syncTree flushes every file and directory under root to disk, so the rename that installs the
// pack never publishes files whose data a crash could still lose.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return syncPath(p)
	})
}

func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
