package diff

import (
	"bytes"
	"hash/maphash"
	"math"
)

// text is a file split into lines. Line i is data[start(i):start(i+1)] and keeps its newline,
// so a last line without one never equals a line that has one, as in GNU diff. Line starts take
// 4 bytes each, or 8 for data of 4 GiB or more.
type text struct {
	data []byte
	off  []uint32 // the start of each line, then len(data); nil when wide is used
	wide []int    // off, for data too long for uint32
}

// wideAbove is the longest data whose line starts fit in uint32 (a variable for tests).
var wideAbove uint64 = math.MaxUint32

func split(data []byte) text {
	n := bytes.Count(data, []byte{'\n'})
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	if uint64(len(data)) > wideAbove {
		return text{data: data, wide: lineStarts(data, make([]int, 0, n+1))}
	}
	return text{data: data, off: lineStarts(data, make([]uint32, 0, n+1))}
}

// parallelFrom is the size of the larger side from which splitPair splits the two at once.
const parallelFrom = 256 << 10

// splitPair splits a and b, at the same time when they are large.
func splitPair(a, b []byte) (ta, tb text) {
	if max(len(a), len(b)) < parallelFrom {
		return split(a), split(b)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tb = split(b)
	}()
	ta = split(a)
	<-done
	return ta, tb
}

// lineStarts appends the offset of each line of data, and len(data), to off.
func lineStarts[T uint32 | int](data []byte, off []T) []T {
	off = append(off, 0)
	for p := 0; p < len(data); {
		i := bytes.IndexByte(data[p:], '\n')
		if i < 0 {
			p = len(data)
		} else {
			p += i + 1
		}
		off = append(off, T(p))
	}
	return off
}

func (t *text) n() int {
	if t.wide != nil {
		return len(t.wide) - 1
	}
	return len(t.off) - 1
}

// start is the offset of line i in data; start(n()) is len(data).
func (t *text) start(i int) int {
	if t.wide != nil {
		return t.wide[i]
	}
	return int(t.off[i])
}

func (t *text) line(i int) []byte { return t.data[t.start(i):t.start(i+1)] }

func (t *text) equal(i int, u *text, j int) bool {
	return bytes.Equal(t.line(i), u.line(j))
}

// lineText is line i without its newline, and whether it lacked one (the last line of a file
// that does not end in a newline).
func (t *text) lineText(i int) (string, bool) {
	l := t.line(i)
	if len(l) > 0 && l[len(l)-1] == '\n' {
		return string(l[:len(l)-1]), false
	}
	return string(l), true
}

// horizon is how many identical lines next to the first and last difference take part in the
// comparison; GNU diff keeps as many as the context (3) so that boundary shifting can move a
// change into them.
const horizon = 3

// compare reports which lines of a are deleted (da) and which lines of b are inserted (db).
//
// The choice among equally short edit scripts is GNU diffutils' (3.x, without --minimal), so that
// hunks come out byte for byte as `diff -u` writes them:
//  1. lines equal at both ends are set aside, except the horizon next to the differences;
//  2. a line without any equal in the other file is a change outright, and a line with very many
//     equals is left out of the search when it sits inside a run of such changes ("confusing"
//     lines, which otherwise make the search slow and the result noisy);
//  3. the remaining lines go through Myers' O(ND) search, split at the middle snake, with
//     GNU's cost cap (a split is forced past about the square root of the input size);
//  4. runs of changes are slid along runs of equal lines to merge with neighbours, and as far
//     down as they go otherwise.
func compare(a, b *text) (da, db []bool) {
	na, nb := a.n(), b.n()
	// The flags have a false sentinel at each end, which slide needs: pa[i+1] is line i.
	pa, pb := make([]bool, na+2), make([]bool, nb+2)
	da, db = pa[1:na+1], pb[1:nb+1]

	// Identical prefix and suffix, in whole lines.
	pre := 0
	for pre < na && pre < nb && a.equal(pre, b, pre) {
		pre++
	}
	if pre == na && pre == nb {
		return da, db
	}
	lo := max(0, pre-horizon)
	suf := 0
	for suf < min(na, nb)-lo && a.equal(na-1-suf, b, nb-1-suf) {
		suf++
	}
	keep := max(0, suf-horizon)
	hiA, hiB := na-keep, nb-keep

	// Equivalence classes of the lines in the compared region, two bytes each while they fit.
	if ra, rb, countA, _, ok := classify[uint16](a, lo, hiA, b, lo, hiB, math.MaxUint16); ok {
		newMatcher(ra, rb, countA, da[lo:hiA], db[lo:hiB]).run()
	} else {
		ra, rb, countA, _, _ := classify[int32](a, lo, hiA, b, lo, hiB, math.MaxInt32)
		newMatcher(ra, rb, countA, da[lo:hiA], db[lo:hiB]).run()
	}

	// The lines around the region are unchanged, so the region's flags with the ones on
	// either side are the padded flags slide wants.
	// The matcher kept only the searched lines' classes, so slide compares the lines.
	fa, fb := pa[lo:hiA+2], pb[lo:hiB+2]
	slide(hiA-lo, func(i, j int) bool { return a.equal(lo+i, a, lo+j) }, fa, fb)
	slide(hiB-lo, func(i, j int) bool { return b.equal(lo+i, b, lo+j) }, fb, fa)
	return da, db
}

// class is the type of a line's class number in the arrays the search reads.
type class interface{ uint16 | int32 }

// classify numbers the lines a[alo:ahi] and b[blo:bhi] so that equal lines share a number
// (from 1). It returns the numbers of the lines of each range, how many lines of a's range
// each number has, and the number of classes plus one; ok is false, and nothing else is
// returned, when there are more than limit classes (the most a C holds).
//
// Most lines of b follow a line of a that the previous line of b followed, so each line of b
// is first compared with the line of a after the last one it matched (and the one after
// that, for a deleted line) before it is looked up: the comparison reads both texts in order,
// where the lookup reads the table and a representative line at random.
func classify[C class](a *text, alo, ahi int, b *text, blo, bhi int, limit int32) (ea, eb []C, countA []int32, classes int, ok bool) {
	ea, eb = make([]C, ahi-alo), make([]C, bhi-blo)
	// Config text has about one distinct line in six or more; the table is sized for one in
	// eight at most half full, and grows.
	lines := (ahi - alo) + (bhi - blo)
	c := classifier{a: a, b: b, seed: maphash.MakeSeed(), reps: make([]int32, 1, max(64, lines/5)), count: make([]int32, 1, max(64, lines/5))}
	c.grow(max(64, lines/8))
	for i := alo; i < ahi; i++ {
		k := c.number(a.line(i), int32(i))
		if k > limit {
			return nil, nil, nil, 0, false
		}
		c.count[k]++
		ea[i-alo] = C(k)
	}
	p := alo // the line of a the next line of b is likely to equal
	for i := blo; i < bhi; i++ {
		l := b.line(i)
		switch {
		case p < ahi && bytes.Equal(a.line(p), l):
		case p+1 < ahi && bytes.Equal(a.line(p+1), l):
			p++
		default:
			k := c.number(l, ^int32(i))
			if k > limit {
				return nil, nil, nil, 0, false
			}
			eb[i-blo] = C(k)
			if r := c.reps[k]; r >= 0 && c.count[k] == 1 {
				p = int(r) + 1 // the one line of a with this text
			}
			continue
		}
		eb[i-blo] = ea[p-alo]
		p++
	}
	return ea, eb, c.count, len(c.reps), true
}

// classifier is an open-addressing table from line text to class number. Config text has
// far fewer distinct lines than lines, so the table starts small (it stays in cache) and
// doubles when half full.
type classifier struct {
	a, b  *text
	seed  maphash.Seed
	slots []slot
	mask  uint32
	reps  []int32 // a line of each class: i for a's line i, ^j for b's line j
	count []int32 // how many lines of a's range each class has
}

// slot holds a class and its line's hash; a probe compares line bytes only when hashes agree.
type slot struct{ hash, class uint32 }

func (c *classifier) rep(class uint32) []byte {
	if r := c.reps[class]; r >= 0 {
		return c.a.line(int(r))
	}
	return c.b.line(int(^c.reps[class]))
}

func (c *classifier) number(l []byte, ref int32) int32 {
	h := uint32(maphash.Bytes(c.seed, l)) | 1 // never 0, which marks an empty slot
	for s := h & c.mask; ; s = (s + 1) & c.mask {
		sl := &c.slots[s]
		if sl.hash == 0 {
			c.reps = append(c.reps, ref)
			c.count = append(c.count, 0)
			*sl = slot{h, uint32(len(c.reps) - 1)}
			if len(c.reps) > len(c.slots)/2 {
				c.grow(len(c.slots))
			}
			return int32(len(c.reps) - 1)
		}
		if sl.hash == h && bytes.Equal(c.rep(sl.class), l) {
			return int32(sl.class)
		}
	}
}

// grow makes room for more than n classes at half load, and moves the classes over.
func (c *classifier) grow(n int) {
	size := 16
	for size < 2*n+2 {
		size <<= 1
	}
	old := c.slots
	c.slots, c.mask = make([]slot, size), uint32(size-1)
	for _, sl := range old {
		if sl.hash == 0 {
			continue
		}
		s := sl.hash & c.mask
		for c.slots[s].hash != 0 {
			s = (s + 1) & c.mask
		}
		c.slots[s] = sl
	}
}

// matcher runs the search over the lines that survive discarding.
type matcher[C class] struct {
	ea, eb       []C     // classes of every line in the region; run moves xs, ys into them
	countA       []int32 // how many lines of ea each class has; run reuses it
	da, db       []bool  // results, per line of the region
	xs, ys       []C     // classes of the lines searched
	dx, dy       bits    // results, per line searched
	fwd, bwd     []int32 // furthest x on each diagonal k, stored at k+diag
	diag         int
	tooExpensive int
}

func newMatcher[C class](ea, eb []C, countA []int32, da, db []bool) *matcher[C] {
	return &matcher[C]{ea: ea, eb: eb, countA: countA, da: da, db: db}
}

func (m *matcher[C]) run() {
	// b's lines are judged by their counts in a, then a's by their counts in b, which take
	// the place of a's counts.
	discB := discards(m.eb, m.countA)
	countB := m.countA
	clear(countB)
	for _, v := range m.eb {
		countB[v]++
	}
	discA := discards(m.ea, countB)
	m.xs = searchable(m.ea, discA, m.da)
	m.ys = searchable(m.eb, discB, m.db)

	nx, ny := len(m.xs), len(m.ys)
	m.dx, m.dy = make(bits, nx/64+1), make(bits, ny/64+1)
	size := nx + ny + 3
	m.fwd = make([]int32, size)
	m.bwd = make([]int32, size)
	m.diag = ny + 1
	// The cost cap: about the square root of the input size, at least 4096.
	c := 1
	for d := size; d != 0; d >>= 2 {
		c <<= 1
	}
	m.tooExpensive = max(4096, c)
	m.compare(0, nx, 0, ny, false)
	scatter(m.dx, discA, m.da)
	scatter(m.dy, discB, m.db)
}

// scatter copies the results of the searched lines to their lines of the region.
func scatter(found bits, d []byte, changed []bool) {
	k := 0
	for i, v := range d {
		if v == searched {
			changed[i] = found.has(k)
			k++
		}
	}
}

// bits is a set of small integers, one bit each.
type bits []uint64

func (b bits) set(i int)      { b[i/64] |= 1 << (i % 64) }
func (b bits) has(i int) bool { return b[i/64]&(1<<(i%64)) != 0 }

// Discard marks: keep the line, it has no equal in the other file, or it has very many.
const (
	searched = iota
	noEqual
	tooCommon
)

// discards decides which lines of one side stay out of the search. A line with no equal on the
// other side is certainly a change. A line with many equals (more than 5, doubled for each
// factor of 4 in n/64) is dropped only inside a run of such lines that begins and ends with a
// line of no equal, where the common lines are under a quarter of the run, do not form a block
// of their own (about √(length/4) lines), and are not near the run's ends (before three lines of
// no equal in a row, or the first one eight lines in).
func discards[C class](e []C, other []int32) []byte {
	n := len(e)
	many := 5
	for t := n / 64; ; {
		t >>= 2
		if t <= 0 {
			break
		}
		many *= 2
	}
	d := make([]byte, n)
	for i, c := range e {
		switch k := int(other[c]); {
		case k == 0:
			d[i] = noEqual
		case k > many:
			d[i] = tooCommon
		}
	}

	for i := 0; i < n; i++ {
		if d[i] == tooCommon {
			// Not inside a run that starts with a line of no equal.
			d[i] = searched
			continue
		}
		if d[i] == searched {
			continue
		}
		end, common := i, 0
		for end < n && d[end] != searched {
			if d[end] == tooCommon {
				common++
			}
			end++
		}
		for end > i && d[end-1] == tooCommon {
			end--
			d[end] = searched
			common--
		}
		length := end - i
		if common*4 > length {
			for k := i; k < end; k++ {
				if d[k] == tooCommon {
					d[k] = searched
				}
			}
		} else {
			block := 1
			for t := length >> 2; ; {
				t >>= 2
				if t <= 0 {
					break
				}
				block <<= 1
			}
			block++
			for k := i; k < end; {
				if d[k] != tooCommon {
					k++
					continue
				}
				s := k
				for k < end && d[k] == tooCommon {
					k++
				}
				if k-s >= block {
					for t := s; t < k; t++ {
						d[t] = searched
					}
				}
			}
			keepEdge(d, i, length, 1)
			keepEdge(d, end-1, length, -1)
		}
		i = end - 1
	}
	return d
}

// keepEdge walks a run from one end and keeps the common lines it meets until it has seen three
// lines of no equal in a row, or one such line at least eight lines in.
func keepEdge(d []byte, at, length, step int) {
	row := 0
	for j := 0; j < length; j++ {
		p := at + j*step
		if j >= 8 && d[p] == noEqual {
			return
		}
		switch d[p] {
		case tooCommon:
			d[p] = searched
			row = 0
		case searched:
			row = 0
		default:
			row++
		}
		if row == 3 {
			return
		}
	}
}

// searchable marks discarded lines as changed and returns the classes of the rest, moved to
// the front of e in place.
func searchable[C class](e []C, d []byte, changed []bool) []C {
	xs := e[:0]
	for i, c := range e {
		if d[i] != searched {
			changed[i] = true
			continue
		}
		xs = append(xs, c)
	}
	return xs
}

// compare finds a shortest edit script between xs[xlo:xhi] and ys[ylo:yhi] by splitting it at a
// point the script passes through. exact turns off the cost cap.
func (m *matcher[C]) compare(xlo, xhi, ylo, yhi int, exact bool) {
	xs, ys := m.xs, m.ys
	for xlo < xhi && ylo < yhi && xs[xlo] == ys[ylo] {
		xlo++
		ylo++
	}
	for xlo < xhi && ylo < yhi && xs[xhi-1] == ys[yhi-1] {
		xhi--
		yhi--
	}
	switch {
	case xlo == xhi:
		for ; ylo < yhi; ylo++ {
			m.dy.set(ylo)
		}
	case ylo == yhi:
		for ; xlo < xhi; xlo++ {
			m.dx.set(xlo)
		}
	default:
		x, y, exactLo, exactHi := m.middle(xlo, xhi, ylo, yhi, exact)
		m.compare(xlo, x, ylo, y, exactLo)
		m.compare(x, xhi, y, yhi, exactHi)
	}
}

// middle searches forward from (xlo, ylo) and backward from (xhi, yhi) one edit at a time, on
// diagonals k = x - y, until the two frontiers overlap; the overlap is a point of a shortest
// script. Past the cost cap (unless exact) it settles for the frontier point that got furthest.
// The bools say whether each half may still be solved exactly.
func (m *matcher[C]) middle(xlo, xhi, ylo, yhi int, exact bool) (int, int, bool, bool) {
	xs, ys, o := m.xs, m.ys, m.diag
	fd, bd := m.fwd, m.bwd // diagonal k is at index k+o
	kmin, kmax := xlo-yhi, xhi-ylo
	fmid, bmid := xlo-ylo, xhi-yhi
	fmin, fmax, bmin, bmax := fmid, fmid, bmid, bmid
	odd := (fmid-bmid)&1 != 0
	fd[fmid+o] = int32(xlo)
	bd[bmid+o] = int32(xhi)
	for c := 1; ; c++ {
		if fmin > kmin {
			fmin--
			fd[fmin-1+o] = -1
		} else {
			fmin++
		}
		if fmax < kmax {
			fmax++
			fd[fmax+1+o] = -1
		} else {
			fmax--
		}
		for k := fmax; k >= fmin; k -= 2 {
			x := int(max(fd[k-1+o]+1, fd[k+1+o]))
			y := x - k
			for x < xhi && y < yhi && xs[x] == ys[y] {
				x++
				y++
			}
			fd[k+o] = int32(x)
			if odd && bmin <= k && k <= bmax && int(bd[k+o]) <= x {
				return x, y, true, true
			}
		}

		if bmin > kmin {
			bmin--
			bd[bmin-1+o] = math.MaxInt32
		} else {
			bmin++
		}
		if bmax < kmax {
			bmax++
			bd[bmax+1+o] = math.MaxInt32
		} else {
			bmax--
		}
		for k := bmax; k >= bmin; k -= 2 {
			x := int(min(bd[k-1+o], bd[k+1+o]-1))
			y := x - k
			for x > xlo && y > ylo && xs[x-1] == ys[y-1] {
				x--
				y--
			}
			bd[k+o] = int32(x)
			if !odd && fmin <= k && k <= fmax && x <= int(fd[k+o]) {
				return x, y, true, true
			}
		}

		if exact || c < m.tooExpensive {
			continue
		}
		// Too expensive: take the forward point with the largest x+y or the backward point
		// with the smallest, whichever advanced further.
		fbest, fx := -1, 0
		for k := fmax; k >= fmin; k -= 2 {
			x := min(int(fd[k+o]), xhi)
			y := x - k
			if y > yhi {
				x, y = yhi+k, yhi
			}
			if x+y > fbest {
				fbest, fx = x+y, x
			}
		}
		bbest, bx := math.MaxInt, 0
		for k := bmax; k >= bmin; k -= 2 {
			x := max(xlo, int(bd[k+o]))
			y := x - k
			if y < ylo {
				x, y = ylo+k, ylo
			}
			if x+y < bbest {
				bbest, bx = x+y, x
			}
		}
		if (xhi+yhi)-bbest < fbest-(xlo+ylo) {
			return fx, fbest - fx, true, false
		}
		return bx, bbest - bx, false, true
	}
}

// slide moves each run of changed lines of one file (ch, padded) along equal lines: up while the
// line above the run equals its last line, merging with runs above; then down while its first line
// equals the line below, merging with runs below; repeated until the run stops growing. A run
// that could line up with a run of changes in the other file (oc, padded) is then moved back to
// end where that one ends, so a deletion and an insertion print together.
func slide(n int, eq func(i, j int) bool, ch, oc []bool) {
	i, j := 0, 0 // line of this file, and the matching position in the other
	for {
		for i < n && !ch[i+1] {
			for oc[j+1] {
				j++
			}
			j++
			i++
		}
		if i == n {
			return
		}
		start := i
		i++
		for ch[i+1] {
			i++
		}
		for oc[j+1] {
			j++
		}
		var aligned int
		for {
			length := i - start
			for start > 0 && eq(start-1, i-1) {
				start--
				ch[start+1] = true
				i--
				ch[i+1] = false
				for ch[start] {
					start--
				}
				j--
				for oc[j+1] {
					j--
				}
			}
			aligned = n
			if oc[j] {
				aligned = i
			}
			for i != n && eq(start, i) {
				ch[start+1] = false
				start++
				ch[i+1] = true
				i++
				for ch[i+1] {
					i++
				}
				j++
				for oc[j+1] {
					j++
					aligned = i
				}
			}
			if length == i-start {
				break
			}
		}
		for aligned < i {
			start--
			ch[start+1] = true
			i--
			ch[i+1] = false
			j--
			for oc[j+1] {
				j--
			}
		}
	}
}
