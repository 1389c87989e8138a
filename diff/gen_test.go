package diff

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// boilerplate holds the lines that repeat in real configs; drawn often, they make many equally
// short edit scripts, where only GNU diff's own choices give its output.
var boilerplate = []string{"", "}", "{", "COMMIT", "#", "# comment", "\tallow all;", "-A INPUT -j ACCEPT", "end", "  exit"}

// configText returns n lines of config-like text: mostly boilerplate, some numbered settings.
func configText(r *rand.Rand, n int) []string {
	l := make([]string, n)
	for i := range l {
		if r.IntN(3) == 0 {
			l[i] = fmt.Sprintf("Option%d value%d", r.IntN(n/2+1), r.IntN(4))
		} else {
			l[i] = boilerplate[r.IntN(len(boilerplate))]
		}
	}
	return l
}

// edited applies k random edits: deletions, insertions of boilerplate or copied lines, and changes.
func edited(r *rand.Rand, a []string, k int) []string {
	b := append([]string(nil), a...)
	for ; k > 0; k-- {
		p := r.IntN(len(b) + 1)
		switch r.IntN(4) {
		case 0:
			if p < len(b) {
				n := min(len(b)-p, 1+r.IntN(3))
				b = append(b[:p], b[p+n:]...)
			}
		case 1:
			ins := boilerplate[r.IntN(len(boilerplate))]
			if len(a) > 0 && r.IntN(2) == 0 {
				ins = a[r.IntN(len(a))]
			}
			b = append(b[:p], append([]string{ins}, b[p:]...)...)
		case 2:
			if p < len(b) {
				b[p] = fmt.Sprintf("Option%d changed%d", r.IntN(len(a)/2+1), r.IntN(9))
			}
		case 3:
			if p < len(b) {
				b[p] = boilerplate[r.IntN(len(boilerplate))]
			}
		}
	}
	return b
}

// joined renders lines as a file, ending in a newline unless noEOL.
func joined(l []string, noEOL bool) []byte {
	if len(l) == 0 {
		return nil
	}
	s := strings.Join(l, "\n")
	if !noEOL {
		s += "\n"
	}
	return []byte(s)
}

// randomPair returns two config-like versions of one artifact.
func randomPair(r *rand.Rand, maxLines int) (a, b []byte) {
	la := configText(r, r.IntN(maxLines+1))
	lb := edited(r, la, 1+r.IntN(6))
	if r.IntN(8) == 0 {
		la, lb = nil, la // whole file added or, swapped below, removed
	}
	if r.IntN(2) == 0 {
		la, lb = lb, la
	}
	return joined(la, r.IntN(6) == 0), joined(lb, r.IntN(6) == 0)
}
