package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ReleaseExecutable unmaps the pages of the running executable's code and read-only data
// that the process has touched, and returns how many bytes were resident. The pages stay in
// the kernel's page cache: what the process runs next is mapped again at the cost of a minor
// fault, with no read from disk. The code that starting and loading ran once (flag and
// config parsing, the rule loader, package initialisation) then no longer counts in the
// agent's resident memory; a cycle maps back only what it runs.
//
// Only read-only mappings of the executable that hold no private copy of a page are
// released: for those, a page mapped again is the page released. A relocated
// position-independent executable, or code a debugger or a uprobe has patched, holds such
// copies, and its mapping is left alone.
func ReleaseExecutable() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("release executable: %w", err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("release executable: %w", err)
	}
	var released int64
	for _, m := range executableMappings(smaps, exe) {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), syscall.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("release executable: madvise %x-%x: %w", m.start, m.end, errno)
		}
		released += m.rss
	}
	return released, nil
}

// mapping is one entry of /proc/PID/smaps.
type mapping struct {
	start, end uint64
	perms      string
	path       string
	rss, anon  int64 // bytes
}

// executableMappings returns the read-only private mappings of the file at path that hold
// no anonymous (copied) page, from the text of /proc/PID/smaps.
func executableMappings(smaps []byte, path string) []mapping {
	var all []mapping
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		// A mapping's header: range, perms, offset, dev, inode, and the path if any.
		if len(f) >= 5 && !strings.HasSuffix(f[0], ":") {
			lo, hi, ok := strings.Cut(f[0], "-")
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if ok && err1 == nil && err2 == nil {
				all = append(all, mapping{start: start, end: end, perms: f[1], path: mappedPath(line)})
				continue
			}
		}
		if len(all) == 0 || len(f) != 3 || f[2] != "kB" {
			continue
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			all[len(all)-1].rss = v << 10
		case "Anonymous:":
			all[len(all)-1].anon = v << 10
		}
	}
	var out []mapping
	for _, m := range all {
		if m.path == path && len(m.perms) == 4 && m.perms[0] == 'r' && m.perms[1] == '-' && m.perms[3] == 'p' && m.anon == 0 {
			out = append(out, m)
		}
	}
	return out
}

// mappedPath is what follows the first five fields of a mapping's header: the mapped file's
// path, which may hold spaces.
func mappedPath(header string) string {
	rest := header
	for range 5 {
		rest = strings.TrimLeft(rest, " ")
		i := strings.IndexByte(rest, ' ')
		if i < 0 {
			return ""
		}
		rest = rest[i:]
	}
	return strings.TrimSpace(rest)
}
