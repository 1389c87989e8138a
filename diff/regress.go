package diff

import (
	"bytes"
	"sort"
)

// Status is where an artifact stands against the remediation recorded for it.
type Status string

// The statuses Regression reports.
const (
	// Holding: current has the same lines as after.
	Holding Status = "holding"
	// Drifted: current differs from after, but no hardened line is reverted.
	Drifted Status = "drifted"
	// Regressed: a line the remediation removed is back, or a line it added is gone.
	Regressed Status = "regressed"
)

// NumberedLine is a line of one version of an artifact: its 1-based number there and its text
// without the newline.
type NumberedLine struct {
	Line int    `json:"line"`
	Text string `json:"text"`
}

// Change is a run of lines that differ between two versions of an artifact.
type Change struct {
	Removed []NumberedLine `json:"removed,omitempty"` // lines only in the older version, numbered there
	Added   []NumberedLine `json:"added,omitempty"`   // lines only in the newer version, numbered there
}

// Hardened is one change the remediation made (before to after) and how current stands to it.
type Hardened struct {
	Change
	// Back lists removed lines that current has again, numbered in current.
	Back []NumberedLine `json:"back,omitempty"`
	// Gone lists added lines that current lacks, numbered in after.
	Gone []NumberedLine `json:"gone,omitempty"`
}

// Reverted reports whether current undid any line of this change.
func (h Hardened) Reverted() bool { return len(h.Back)+len(h.Gone) > 0 }

// Report is what Regression finds.
type Report struct {
	Status Status `json:"status"`
	// Hardened lists the changes of the remediation in order, each a run of differing lines
	// between before and after (hunks without context).
	Hardened []Hardened `json:"hardened"`
	// Drift lists the changes from after to current that revert no hardened line; removed lines
	// are numbered in after, added ones in current.
	Drift []Change `json:"drift,omitempty"`
}

// Regression compares three versions of one artifact: before and after a remediation, and
// current. The hardened lines are the runs of lines that differ between before and after
// (aligned from after, like after and current, so that current equal to before reverts every
// one of them).
//
// Lines are followed by content and neighbourhood, not by number. After is aligned with
// current as Unified aligns them; the unchanged lines around a hardened change locate it in
// current however far unrelated insertions and deletions have moved it (its window: the lines
// of current between the images of the nearest unchanged lines of after on either side). Then:
//   - a line the remediation added holds if the alignment keeps it, or if current has a line
//     with its text inserted in the window (reordered within the change, still between the
//     same unchanged neighbours); otherwise it is gone, even if its text appears elsewhere;
//   - a line the remediation removed is back if current has a line with its text inserted in
//     the window, or inserted anywhere when the remediation removed every copy of that text
//     (after has none), since then any copy is the old line returning;
//   - each inserted line of current counts for one hardened line at most;
//   - copies of a line next to each other are interchangeable: where current lacks some of
//     them, the remediation's copies are the ones taken to be gone, and a window extends over
//     copies of the line sought that are next to it.
//
// The rule errs toward reporting a regression: an added line counts only in its own place
// (moving a firewall rule or an sshd setting can undo it), while a removed line is caught
// wherever it comes back. Everything else that differs between after and current is drift. A
// missing newline at the end of a file is not a change here.
func Regression(before, after, current []byte) Report {
	tb, ta, tc := split(terminated(before)), split(terminated(after)), split(terminated(current))
	// Both comparisons start from after, so that when current equals before they are the same
	// computation and every hardened change is seen reverted, even where equal lines make
	// more than one alignment possible.
	da, db := compare(&ta, &tb)
	hard := changes(da, db) // after[a:a+del] was added by the remediation, before[b:b+ins] removed
	ra, rc := compare(&ta, &tc)
	added := make([]bool, ta.n())
	for _, c := range hard {
		for i := c.a; i < c.a+c.del; i++ {
			added[i] = true
		}
	}
	preferHardened(&ta, ra, added)
	drift := changes(ra, rc)

	// image[i] is the line of current that after's line i is aligned with, or -1.
	image := make([]int, ta.n())
	for i, j := 0, 0; i < ta.n(); {
		switch {
		case ra[i]:
			image[i] = -1
			i++
		case rc[j]:
			j++
		default:
			image[i] = j
			i++
			j++
		}
	}
	// from[i] is where the window of a change starting at after's line i begins in current:
	// just past the image of the nearest kept line above it. to[i] is where the window of a
	// change ending before line i ends: the image of the nearest kept line at or below i.
	from := make([]int, ta.n()+1)
	for i := 1; i <= ta.n(); i++ {
		from[i] = from[i-1]
		if image[i-1] >= 0 {
			from[i] = image[i-1] + 1
		}
	}
	to := make([]int, ta.n()+1)
	to[ta.n()] = tc.n()
	for i := ta.n() - 1; i >= 0; i-- {
		to[i] = to[i+1]
		if image[i] >= 0 {
			to[i] = image[i]
		}
	}

	claimed := make([]bool, tc.n()) // inserted lines of current already counted
	gone := make([]bool, ta.n())    // after's lines reported gone
	back := make([]bool, tc.n())    // current's lines reported back
	inserted := map[string][]int{}  // current's inserted lines by text, in order
	for k := range tc.n() {
		if rc[k] {
			inserted[string(tc.line(k))] = append(inserted[string(tc.line(k))], k)
		}
	}
	// find claims the first unclaimed inserted line of current with text l in [lo, hi).
	find := func(l []byte, lo, hi int) int {
		// Copies of l next to the window are as good as copies in it.
		for lo > 0 && bytes.Equal(tc.line(lo-1), l) {
			lo--
		}
		for hi < tc.n() && bytes.Equal(tc.line(hi), l) {
			hi++
		}
		ks := inserted[string(l)]
		for _, k := range ks[sort.SearchInts(ks, lo):] {
			if k >= hi {
				break
			}
			if !claimed[k] {
				claimed[k] = true
				return k
			}
		}
		return -1
	}

	rep := Report{Status: Holding, Hardened: make([]Hardened, len(hard))}
	pending := make([][]int, len(hard)) // removed lines not found in their window
	for n, c := range hard {
		h := &rep.Hardened[n]
		lo, hi := from[c.a], to[c.a+c.del]
		for i := c.b; i < c.b+c.ins; i++ {
			h.Removed = append(h.Removed, numbered(&tb, i))
		}
		for i := c.a; i < c.a+c.del; i++ {
			h.Added = append(h.Added, numbered(&ta, i))
			if image[i] < 0 && find(ta.line(i), lo, hi) < 0 {
				gone[i] = true
				h.Gone = append(h.Gone, numbered(&ta, i))
			}
		}
		for i := c.b; i < c.b+c.ins; i++ {
			if k := find(tb.line(i), lo, hi); k >= 0 {
				back[k] = true
				h.Back = append(h.Back, numbered(&tc, k))
			} else {
				pending[n] = append(pending[n], i)
			}
		}
	}
	// Removed lines whose every copy the remediation removed, coming back anywhere.
	inAfter := make(map[string]bool, ta.n())
	for i := range ta.n() {
		inAfter[string(ta.line(i))] = true
	}
	for n, ls := range pending {
		h := &rep.Hardened[n]
		for _, i := range ls {
			l := tb.line(i)
			if inAfter[string(l)] {
				continue
			}
			if k := find(l, 0, tc.n()); k >= 0 {
				back[k] = true
				h.Back = append(h.Back, numbered(&tc, k))
			}
		}
		if h.Reverted() {
			rep.Status = Regressed
		}
	}

	for _, c := range drift {
		var d Change
		for i := c.a; i < c.a+c.del; i++ {
			if !gone[i] {
				d.Removed = append(d.Removed, numbered(&ta, i))
			}
		}
		for j := c.b; j < c.b+c.ins; j++ {
			if !back[j] {
				d.Added = append(d.Added, numbered(&tc, j))
			}
		}
		if len(d.Removed)+len(d.Added) > 0 {
			rep.Drift = append(rep.Drift, d)
		}
	}
	if rep.Status == Holding && len(drift) > 0 {
		rep.Status = Drifted
	}
	return rep
}

// preferHardened reassigns which of several equal adjacent lines of after are missing from
// current (del): such copies are interchangeable, so the remediation's lines (added) are taken
// to be missing first. The number missing from each run, and so the alignment's validity, stay.
func preferHardened(t *text, del, added []bool) {
	for s := 0; s < t.n(); {
		e := s + 1
		for e < t.n() && bytes.Equal(t.line(e), t.line(s)) {
			e++
		}
		missing, hard := 0, 0
		for i := s; i < e; i++ {
			missing += boolInt(del[i])
			hard += boolInt(added[i])
		}
		if missing > 0 && missing < e-s && hard > 0 {
			// Hardened lines first, then the other lines that were missing, then the rest.
			was := append([]bool(nil), del[s:e]...)
			for i := s; i < e; i++ {
				del[i] = false
			}
			for pass := 0; pass < 3 && missing > 0; pass++ {
				for i := s; i < e && missing > 0; i++ {
					pick := [3]bool{added[i], !added[i] && was[i-s], !added[i] && !was[i-s]}[pass]
					if pick && !del[i] {
						del[i] = true
						missing--
					}
				}
			}
		}
		s = e
	}
}

// terminated returns b ending in a newline (unless empty).
func terminated(b []byte) []byte {
	if len(b) == 0 || b[len(b)-1] == '\n' {
		return b
	}
	return append(b[:len(b):len(b)], '\n')
}

func numbered(t *text, i int) NumberedLine {
	s, _ := t.lineText(i)
	return NumberedLine{Line: i + 1, Text: s}
}
