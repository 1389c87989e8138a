package htmlreport

import (
	"strings"
	"unicode"

	"github.com/hardtrail/hardtrail/diff"
)

// Segment is a run of a line's text, Changed when the other side lacks it.
type Segment struct {
	Text    string
	Changed bool
}

// Cell is one side of a side-by-side row: a line number (0 for none) and its text.
type Cell struct {
	N        int
	Segments []Segment
}

// Row is one row of a side-by-side diff: Kind is "keep", "change" (a line replaced by
// another), "delete", "insert", or "hunk" (a hunk header, in Header).
type Row struct {
	Kind        string
	Header      string
	Old, New    Cell
	Highlighted bool // the row's changed words are marked
}

// maxWordTokens bounds the word diff of one pair of lines; longer lines are marked whole.
const maxWordTokens = 2000

// SideBySide turns the unified diff of a and b (the diff engine's hunks) into rows: unchanged
// context on both sides, each run of removed lines paired with the run of added lines that
// replaces it, and within a pair the changed words marked.
func SideBySide(a, b []byte) []Row {
	var rows []Row
	for _, h := range diff.Hunks(a, b) {
		rows = append(rows, Row{Kind: "hunk", Header: h.Header()})
		oldN, newN := h.OldStart, h.NewStart
		if h.OldLines == 0 {
			oldN++
		}
		if h.NewLines == 0 {
			newN++
		}
		ls := h.Lines
		for i := 0; i < len(ls); {
			if ls[i].Kind == diff.Keep {
				t := []Segment{{Text: ls[i].Text}}
				rows = append(rows, Row{Kind: "keep", Old: Cell{oldN, t}, New: Cell{newN, t}})
				oldN, newN, i = oldN+1, newN+1, i+1
				continue
			}
			var del, ins []string
			for ; i < len(ls) && ls[i].Kind == diff.Delete; i++ {
				del = append(del, ls[i].Text)
			}
			for ; i < len(ls) && ls[i].Kind == diff.Insert; i++ {
				ins = append(ins, ls[i].Text)
			}
			for j := 0; j < max(len(del), len(ins)); j++ {
				r := Row{}
				switch {
				case j < len(del) && j < len(ins):
					r.Kind, r.Highlighted = "change", true
					o, n := WordDiff(del[j], ins[j])
					r.Old, r.New = Cell{oldN, o}, Cell{newN, n}
					oldN, newN = oldN+1, newN+1
				case j < len(del):
					r.Kind = "delete"
					r.Old = Cell{oldN, []Segment{{Text: del[j], Changed: true}}}
					oldN++
				default:
					r.Kind = "insert"
					r.New = Cell{newN, []Segment{{Text: ins[j], Changed: true}}}
					newN++
				}
				rows = append(rows, r)
			}
		}
	}
	return rows
}

// tokens splits a line into words (runs of letters and digits), runs of space, and single
// other characters.
func tokens(s string) []string {
	var out []string
	class := func(r rune) int {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_':
			return 1
		case unicode.IsSpace(r):
			return 2
		}
		return 0
	}
	start, prev := 0, -1
	for i, r := range s {
		c := class(r)
		if i > 0 && (c != prev || c == 0) {
			out = append(out, s[start:i])
			start = i
		}
		prev = c
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// WordDiff marks the words of old and new that the other lacks, with the diff engine run over
// the lines' tokens, one token a line.
func WordDiff(old, new string) ([]Segment, []Segment) {
	ta, tb := tokens(old), tokens(new)
	if len(ta)+len(tb) > maxWordTokens {
		return []Segment{{Text: old, Changed: true}}, []Segment{{Text: new, Changed: true}}
	}
	join := func(ts []string) []byte {
		var b strings.Builder
		for _, t := range ts {
			b.WriteString(t)
			b.WriteByte('\n')
		}
		return []byte(b.String())
	}
	var so, sn []Segment
	add := func(s []Segment, text string, changed bool) []Segment {
		if n := len(s); n > 0 && s[n-1].Changed == changed {
			s[n-1].Text += text
			return s
		}
		return append(s, Segment{Text: text, Changed: changed})
	}
	ai, bi := 0, 0
	for _, h := range diff.Hunks(join(ta), join(tb)) {
		start := h.OldStart - 1
		if h.OldLines == 0 {
			start = h.OldStart
		}
		for ; ai < start; ai, bi = ai+1, bi+1 {
			so, sn = add(so, ta[ai], false), add(sn, tb[bi], false)
		}
		for _, l := range h.Lines {
			switch l.Kind {
			case diff.Keep:
				so, sn = add(so, ta[ai], false), add(sn, tb[bi], false)
				ai, bi = ai+1, bi+1
			case diff.Delete:
				so = add(so, ta[ai], true)
				ai++
			case diff.Insert:
				sn = add(sn, tb[bi], true)
				bi++
			}
		}
	}
	for ; ai < len(ta); ai, bi = ai+1, bi+1 {
		so, sn = add(so, ta[ai], false), add(sn, tb[bi], false)
	}
	return so, sn
}
