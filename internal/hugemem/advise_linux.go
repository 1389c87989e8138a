package hugemem

import "syscall"

// advise asks for huge pages for b. It is a hint: a kernel without transparent huge pages,
// or one set to "never", refuses it or ignores it, and b keeps small pages.
func advise(b []byte) { _ = syscall.Madvise(b, syscall.MADV_HUGEPAGE) }
