package exepages

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestReadOnly(t *testing.T) {
	maps := `00400000-00fb4000 r-xp 00000000 00:2e 1234                               /opt/hard trail/bin
00fb4000-01c1e000 r--p 00bb4000 00:2e 1234                               /opt/hard trail/bin
01c1e000-01c60000 rw-p 0181e000 00:2e 1234                               /opt/hard trail/bin
01d00000-01d10000 r--s 01900000 00:2e 1234                               /opt/hard trail/bin
01e00000-01e10000 r--p 01900000 00:2e 1234                               /opt/hard trail/bin2
7f0000000000-7f0000100000 r-xp 00000000 00:2e 99                         /usr/lib/libc.so.6
7f0000200000-7f0000300000 rw-p 00000000 00:00 0 
`
	got := readOnly([]byte(maps), "/opt/hard trail/bin")
	if len(got) != 2 || got[0].start != 0x400000 || got[0].end != 0xfb4000 || got[1].start != 0xfb4000 || got[1].end != 0x1c1e000 {
		t.Errorf("%+v", got)
	}
}

func fileRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "RssFile:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v << 10
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// The test binary releases its pages and keeps running: what it runs next is mapped again.
func TestRelease(t *testing.T) {
	before := fileRSS(t)
	released, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	after := fileRSS(t)
	if released <= 0 || after >= before {
		t.Errorf("released %d bytes; file-backed RSS %d before, %d after", released, before, after)
	}
	// Code not run since is mapped again from the page cache.
	if !regexp.MustCompile(`l(ea)+se`).MatchString("release") {
		t.Error("regexp after release")
	}
	t.Logf("released %d KiB; file-backed RSS %d KiB before, %d KiB after", released>>10, before>>10, after>>10)
}

// A read-only private mapping that holds a private copy of a page (as a patched or relocated
// executable does) keeps it: it is left as it is, while a clean mapping of the same file is
// released.
func TestReleaseLeavesPrivateCopies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "image")
	page := os.Getpagesize()
	if err := os.WriteFile(path, []byte(strings.Repeat("x", 4*page)), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mmap := func() []byte {
		b, err := syscall.Mmap(int(f.Fd()), 0, 4*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Munmap(b) })
		return b
	}
	clean, patched := mmap(), mmap()
	sink = clean[0] + clean[2*page] + patched[page] // map pages of the file
	patched[0] = 'P'                                // a private copy
	for _, b := range [][]byte{clean, patched} {
		if err := syscall.Mprotect(b, syscall.PROT_READ); err != nil {
			t.Fatal(err)
		}
	}
	pagemap, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer pagemap.Close()
	resident := func(b []byte) (int64, bool) {
		for _, m := range readOnly(must(os.ReadFile("/proc/self/maps")), path) {
			if uintptr(m.start) == uintptrOf(b) {
				mapped, private, err := residency(pagemap, m)
				if err != nil {
					t.Fatal(err)
				}
				return mapped, private
			}
		}
		t.Fatal("mapping not listed")
		return 0, false
	}
	cleanMapped, _ := resident(clean)
	if m, p := resident(clean); m == 0 || p {
		t.Fatalf("clean mapping before: %d bytes mapped, private %v", m, p)
	}
	patchedMapped, _ := resident(patched)
	if m, p := resident(patched); m == 0 || !p {
		t.Fatalf("patched mapping before: %d bytes mapped, private %v", m, p)
	}
	released, err := release(path)
	if err != nil {
		t.Fatal(err)
	}
	if released != cleanMapped {
		t.Errorf("released %d bytes, want the clean mapping's %d", released, cleanMapped)
	}
	if m, _ := resident(clean); m != 0 {
		t.Errorf("clean mapping after: %d bytes mapped", m)
	}
	if m, p := resident(patched); m != patchedMapped || !p || patched[0] != 'P' {
		t.Errorf("patched mapping after: %d bytes mapped, private %v, first byte %q", m, p, patched[0])
	}
}

var sink byte

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
