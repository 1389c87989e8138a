// Package hugemem allocates large buffers that the kernel may back with transparent huge
// pages. A buffer written once from end to end, such as decompressed content, costs a page
// fault, a page-table entry and a memory-cgroup charge for every 4 KiB it touches: 512 of
// each for 2 MiB. Advised for huge pages (MADV_HUGEPAGE, honoured when the system's
// transparent_hugepage setting is "madvise" or "always"), the same 2 MiB costs one of each.
package hugemem

import "unsafe"

// Size is the huge page size this package aligns to, the x86-64 and arm64 (4 KiB granule)
// PMD size.
const Size = 2 << 20

// Min is the smallest buffer given huge pages: below it the rounding would cost more memory
// than it saves faults.
const Min = Size / 2

// Bytes returns a zeroed slice of length and capacity n. From Min bytes on, it starts on a
// huge-page boundary and its whole huge pages are advised for huge pages; the last partial
// one is too when that adds at most an eighth of n to the resident memory (a 2,000,000-byte
// buffer becomes one 2 MiB page). The allocation is Size bytes larger than the advised span,
// for the alignment: address space that is never touched, and so never resident, but that
// Go's heap accounting (GOGC, GOMEMLIMIT) counts.
func Bytes(n int) []byte {
	span := Span(n)
	if span == 0 {
		return make([]byte, n)
	}
	b := make([]byte, max(n, span)+Size)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b))) & (Size - 1))
	advise(b[off : off+span])
	return b[off : off+n : off+n]
}

// Span is how many bytes from the start of a buffer of n bytes Bytes advises for huge pages:
// a multiple of Size, 0 below Min or when no huge page is worth its rounding.
func Span(n int) int {
	if n < Min {
		return 0
	}
	span := n / Size * Size
	if n > span && span+Size-n <= n/8 {
		span += Size
	}
	return span
}
