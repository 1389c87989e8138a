package hugemem

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

func TestSpan(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, 0},
		{Min - 1, 0},
		{Min, 0},                     // rounding to 2 MiB would double it
		{2_000_000, Size},            // 97,152 bytes more: under an eighth
		{Size - Size/9, Size},        // just under an eighth more
		{Size - Size/8 - 4096, 0},    // more than an eighth
		{Size, Size},                 // exact
		{Size + 1, Size},             // the partial page would add nearly 2 MiB
		{3 * Size, 3 * Size},         // exact
		{4*Size - 100_000, 4 * Size}, // rounds up
		{3*Size + Size/2, 3 * Size},
	} {
		if got := Span(c.n); got != c.want {
			t.Errorf("Span(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

func TestBytes(t *testing.T) {
	for _, n := range []int{0, 1, 4096, Min - 1, Min, 2_000_000, Size, Size + 1, 5*Size - 3} {
		b := Bytes(n)
		if len(b) != n || cap(b) != n {
			t.Errorf("Bytes(%d): len %d cap %d", n, len(b), cap(b))
		}
		if Span(n) > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(b)))%Size != 0 {
			t.Errorf("Bytes(%d) starts at %p, not on a huge-page boundary", n, unsafe.SliceData(b))
		}
		if bytes.IndexFunc(b, func(r rune) bool { return r != 0 }) >= 0 {
			t.Errorf("Bytes(%d) is not zeroed", n)
		}
	}
}

// TestBytesGetsHugePages writes a buffer and reads from smaps that the kernel backed it with
// a huge page, when the system allows them for advised memory.
func TestBytesGetsHugePages(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || !bytes.Contains(mode, []byte("[madvise]")) && !bytes.Contains(mode, []byte("[always]")) {
		t.Skipf("transparent huge pages are off on this system (%q, %v): nothing to measure", bytes.TrimSpace(mode), err)
	}
	b := Bytes(2_000_000)
	for i := range b {
		b[i] = byte(i)
	}
	if kb := anonHugeKB(t, uintptr(unsafe.Pointer(unsafe.SliceData(b)))); kb < Size>>10 {
		t.Errorf("the buffer's mapping holds %d kB of huge pages, want at least %d", kb, Size>>10)
	}
}

// anonHugeKB is the AnonHugePages of the mapping that holds addr.
func anonHugeKB(t *testing.T, addr uintptr) int {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 && strings.Contains(line, "-") {
			in = lo <= addr && addr < hi
			continue
		}
		var kb int
		if in {
			if n, _ := fmt.Sscanf(line, "AnonHugePages: %d kB", &kb); n == 1 {
				return kb
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("no mapping of /proc/self/smaps holds %#x", addr)
	return 0
}
