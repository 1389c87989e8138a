// Package exepages returns to the system the pages of the running executable that the
// process has mapped: its code and read-only data stay in the kernel's page cache, and what
// the process runs next is mapped again at the cost of a minor fault, with no read from disk.
// Package initialisation and loading run once and touch pages all over a large binary; after
// Release, resident memory holds only what runs next.
package exepages

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Release unmaps the mapped pages of the running executable's read-only mappings and returns
// how many bytes were mapped. A mapping that holds a private copy of a page (a relocated
// position-independent executable, or code a debugger or a uprobe has patched) is left as it
// is, so that nothing but mapping changes.
func Release() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("release executable: %w", err)
	}
	return release(exe)
}

// release is Release for the mappings of the file at path.
func release(path string) (int64, error) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("release executable: %w", err)
	}
	pagemap, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return 0, fmt.Errorf("release executable: %w", err)
	}
	defer pagemap.Close()
	var released int64
	for _, m := range readOnly(maps, path) {
		mapped, private, err := residency(pagemap, m)
		if err != nil {
			return released, fmt.Errorf("release executable: %w", err)
		}
		if private || mapped == 0 {
			continue
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), syscall.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("release executable: madvise %x-%x: %w", m.start, m.end, errno)
		}
		released += mapped
	}
	return released, nil
}

// mapping is one line of /proc/PID/maps.
type mapping struct {
	start, end uint64
	perms      string
	path       string
}

// readOnly returns the read-only private mappings of the file at path, from the text of
// /proc/PID/maps.
func readOnly(maps []byte, path string) []mapping {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		p := f[1]
		if ok && err1 == nil && err2 == nil && len(p) == 4 && p[0] == 'r' && p[1] == '-' && p[3] == 'p' && mappedPath(line) == path {
			out = append(out, mapping{start: start, end: end, perms: p, path: path})
		}
	}
	return out
}

// mappedPath is what follows the first five fields of a mapping's line: the mapped file's path,
// which may hold spaces.
func mappedPath(line string) string {
	rest := line
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

// The bits of a /proc/PID/pagemap entry that residency reads.
const (
	pagePresent = 1 << 63
	pageFile    = 1 << 61 // a page of a file (or shared memory), not a private copy
)

// residency reads the pagemap entries of m: how many bytes of it are mapped, and whether a
// mapped page is a private (anonymous) copy rather than the file's page.
func residency(pagemap *os.File, m mapping) (mapped int64, private bool, err error) {
	size := int64(os.Getpagesize())
	n := (int64(m.end) - int64(m.start)) / size
	buf := make([]byte, 8*min(n, 4096))
	for at := int64(m.start) / size; n > 0; {
		k := min(n, int64(len(buf)/8))
		if _, err := pagemap.ReadAt(buf[:8*k], at*8); err != nil {
			return 0, false, err
		}
		for i := range k {
			e := binary.LittleEndian.Uint64(buf[8*i:])
			if e&pagePresent != 0 {
				mapped += size
				if e&pageFile == 0 {
					private = true
				}
			}
		}
		at, n = at+k, n-k
	}
	return mapped, private, nil
}
