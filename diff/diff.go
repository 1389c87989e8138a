// Package diff renders unified diffs that GNU patch applies exactly, applies them, and finds reverted hardening.
package diff

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
)

// DevNull is the label of the missing side of an added or removed file. Unified(nil, b, DevNull,
// "b/NAME") renders an added file and Unified(a, nil, "a/NAME", DevNull) a removed one, as
// `diff -uN` with those labels does; `patch -p1` creates or deletes the file, and so does Apply.
// An empty added or removed file renders as nothing (as with `diff -uN`), so callers must list
// such files themselves.
const DevNull = "/dev/null"

// Context is the number of unchanged lines shown around each change.
const Context = 3

// Kind says what a hunk line does; its value is the line's first character in a unified diff.
type Kind byte

// The kinds of hunk lines.
const (
	Keep   Kind = ' ' // context: the line is in both versions
	Delete Kind = '-' // the line is only in the old version
	Insert Kind = '+' // the line is only in the new version
)

// Line is one line of a hunk.
type Line struct {
	Kind Kind
	// Text is the line without its newline.
	Text string
	// NoNewline marks the last line of a file that does not end in a newline (for a Keep line,
	// of both files); a unified diff follows it with `\ No newline at end of file`.
	NoNewline bool
}

// Hunk is one `@@ -OldStart,OldLines +NewStart,NewLines @@` section of a unified diff. A start is
// the 1-based number of the first line of the range; for an empty range it is the number of the
// line before it (0 at the top of the file).
type Hunk struct {
	OldStart, OldLines int
	NewStart, NewLines int
	Lines              []Line
}

// FilePatch is the diff of one file: its two names as the header gives them (labels, possibly
// with `a/` and `b/` prefixes, or DevNull) and its hunks in file order.
type FilePatch struct {
	OldName, NewName string
	Hunks            []Hunk
}

// Unified returns the unified diff of a and b with Context lines of context, headed
// `--- labelA` and `+++ labelB`, or nothing when a and b are equal. For text it is byte for byte
// what `diff -u --label labelA --label labelB A B` from GNU diffutils 3.x writes, including
// `\ No newline at end of file`. Lines end at '\n'; callers should report binary content
// (IsBinary) by hash instead.
func Unified(a, b []byte, labelA, labelB string) []byte {
	var buf bytes.Buffer
	WriteUnified(&buf, a, b, labelA, labelB) // a bytes.Buffer does not fail
	return buf.Bytes()
}

// WriteUnified writes what Unified returns to w, straight from a and b without building hunks,
// and returns how many lines it adds and removes. Nothing is written when a and b are equal.
func WriteUnified(w io.Writer, a, b []byte, labelA, labelB string) (added, removed int, err error) {
	if bytes.Equal(a, b) {
		return 0, 0, nil
	}
	ta, tb := splitPair(a, b)
	da, db := compare(&ta, &tb)
	bw, ok := w.(*bufio.Writer)
	if !ok {
		bw = bufio.NewWriterSize(w, 64<<10)
	}
	bw.WriteString("--- ")
	bw.WriteString(labelA)
	bw.WriteString("\n+++ ")
	bw.WriteString(labelB)
	bw.WriteByte('\n')
	var hdr []byte
	eachSpan(&ta, da, db, Context, func(sp span) {
		for _, c := range sp.cs {
			added += c.ins
			removed += c.del
		}
		hdr = sp.header().appendHeader(hdr[:0])
		bw.Write(hdr)
		bw.WriteByte('\n')
		sp.lines(&ta, &tb, func(k Kind, t *text, i int) {
			l := t.line(i)
			bw.WriteByte(byte(k))
			bw.Write(l)
			if len(l) == 0 || l[len(l)-1] != '\n' {
				bw.WriteByte('\n')
				bw.WriteString(noNewline)
			}
		})
	})
	return added, removed, bw.Flush()
}

// Hunks returns the hunks of the unified diff of a and b (as Unified renders them), or none
// when a and b are equal.
func Hunks(a, b []byte) []Hunk {
	if bytes.Equal(a, b) {
		return nil
	}
	ta, tb := splitPair(a, b)
	da, db := compare(&ta, &tb)
	return group(&ta, &tb, changes(da, db), Context)
}

// Stat returns how many lines Unified(a, b, ...) adds and removes.
func Stat(a, b []byte) (added, removed int) {
	if bytes.Equal(a, b) {
		return 0, 0
	}
	ta, tb := splitPair(a, b)
	da, db := compare(&ta, &tb)
	eachChange(da, db, func(c change) {
		added += c.ins
		removed += c.del
	})
	return added, removed
}

// IsBinary reports whether b looks binary: a NUL byte in its first 8 KiB, the test git and GNU
// diff use. Binary artifacts should be reported as differing by hash, not diffed.
func IsBinary(b []byte) bool {
	return bytes.IndexByte(b[:min(len(b), 8<<10)], 0) >= 0
}

// change is one run of differing lines: a[a:a+del] became b[b:b+ins].
type change struct{ a, b, del, ins int }

// changes turns per-line flags into runs, in order.
func changes(da, db []bool) []change {
	var cs []change
	eachChange(da, db, func(c change) { cs = append(cs, c) })
	return cs
}

// eachChange calls f with each run of changes, in order.
func eachChange(da, db []bool, f func(change)) {
	i, j := 0, 0
	for i < len(da) || j < len(db) {
		if (i < len(da) && da[i]) || (j < len(db) && db[j]) {
			c := change{a: i, b: j}
			for i < len(da) && da[i] {
				i++
			}
			for j < len(db) && db[j] {
				j++
			}
			c.del, c.ins = i-c.a, j-c.b
			f(c)
			continue
		}
		i++
		j++
	}
}

// span is where one hunk lies: 0-based starts and lengths in a and b, and its changes.
type span struct {
	oldStart, oldLines, newStart, newLines int
	cs                                     []change
}

// spans gathers changes into hunks with ctx lines of context, joining changes that are at most
// 2·ctx unchanged lines apart, as GNU diff does.
func spans(a *text, cs []change, ctx int) []span {
	var out []span
	for len(cs) > 0 {
		n := 1
		for n < len(cs) && sameHunk(cs[n-1], cs[n], ctx) {
			n++
		}
		out = append(out, newSpan(a, cs[:n], ctx))
		cs = cs[n:]
	}
	return out
}

// eachSpan calls f with each span that spans would return for the changes of da and db,
// holding one hunk's changes at a time; f must not keep the span's changes.
func eachSpan(a *text, da, db []bool, ctx int, f func(span)) {
	var cs []change
	eachChange(da, db, func(c change) {
		if len(cs) > 0 && !sameHunk(cs[len(cs)-1], c, ctx) {
			f(newSpan(a, cs, ctx))
			cs = cs[:0]
		}
		cs = append(cs, c)
	})
	if len(cs) > 0 {
		f(newSpan(a, cs, ctx))
	}
}

// sameHunk reports whether change c, which follows prev, belongs to prev's hunk: at most 2·ctx
// unchanged lines lie between them.
func sameHunk(prev, c change, ctx int) bool { return c.a-(prev.a+prev.del) <= 2*ctx }

// newSpan is the hunk of the changes cs with ctx lines of context.
func newSpan(a *text, cs []change, ctx int) span {
	first, last := cs[0], cs[len(cs)-1]
	before := min(ctx, first.a)
	after := min(ctx, a.n()-(last.a+last.del))
	return span{
		oldStart: first.a - before, oldLines: last.a + last.del + after - (first.a - before),
		newStart: first.b - before, newLines: last.b + last.ins + after - (first.b - before),
		cs: cs,
	}
}

// lines calls f for each line of the hunk in order: the kind, and which line of a or b it is.
func (sp span) lines(a, b *text, f func(k Kind, t *text, i int)) {
	i, j := sp.oldStart, sp.newStart
	for _, c := range sp.cs {
		for ; i < c.a; i, j = i+1, j+1 {
			f(Keep, a, i)
		}
		for ; i < c.a+c.del; i++ {
			f(Delete, a, i)
		}
		for ; j < c.b+c.ins; j++ {
			f(Insert, b, j)
		}
	}
	for ; i < sp.oldStart+sp.oldLines; i++ {
		f(Keep, a, i)
	}
}

// header is the hunk without lines and with 1-based starts; an empty range names the line
// before it.
func (sp span) header() Hunk {
	h := Hunk{OldStart: sp.oldStart, OldLines: sp.oldLines, NewStart: sp.newStart, NewLines: sp.newLines}
	if h.OldLines > 0 {
		h.OldStart++
	}
	if h.NewLines > 0 {
		h.NewStart++
	}
	return h
}

// group gathers changes into hunks with ctx lines of context (see spans).
func group(a, b *text, cs []change, ctx int) []Hunk {
	var hs []Hunk
	for _, sp := range spans(a, cs, ctx) {
		h := sp.header()
		sp.lines(a, b, func(k Kind, t *text, i int) {
			s, nl := t.lineText(i)
			h.Lines = append(h.Lines, Line{Kind: k, Text: s, NoNewline: nl})
		})
		hs = append(hs, h)
	}
	return hs
}

// noNewline is the marker line GNU diff writes after a line that lacks its newline.
const noNewline = "\\ No newline at end of file\n"

// Bytes renders the file patch as a unified diff: `--- OldName`, `+++ NewName`, then the hunks.
func (p FilePatch) Bytes() []byte {
	size := len(p.OldName) + len(p.NewName) + 10
	for _, h := range p.Hunks {
		size += 40
		for _, l := range h.Lines {
			size += len(l.Text) + 2
			if l.NoNewline {
				size += len(noNewline)
			}
		}
	}
	out := make([]byte, 0, size)
	out = append(out, "--- "...)
	out = append(out, p.OldName...)
	out = append(out, "\n+++ "...)
	out = append(out, p.NewName...)
	out = append(out, '\n')
	for _, h := range p.Hunks {
		out = h.appendTo(out)
	}
	return out
}

// Header returns the hunk's `@@ ... @@` line without its newline.
func (h Hunk) Header() string {
	return string(h.appendHeader(nil))
}

func (h Hunk) appendHeader(out []byte) []byte {
	out = append(out, "@@ -"...)
	out = appendRange(out, h.OldStart, h.OldLines)
	out = append(out, " +"...)
	out = appendRange(out, h.NewStart, h.NewLines)
	return append(out, " @@"...)
}

func (h Hunk) appendTo(out []byte) []byte {
	out = append(h.appendHeader(out), '\n')
	for _, l := range h.Lines {
		out = append(out, byte(l.Kind))
		out = append(out, l.Text...)
		out = append(out, '\n')
		if l.NoNewline {
			out = append(out, noNewline...)
		}
	}
	return out
}

// appendRange writes "start,count", or just "start" when count is 1, as GNU diff does.
func appendRange(out []byte, start, count int) []byte {
	out = strconv.AppendInt(out, int64(start), 10)
	if count != 1 {
		out = append(out, ',')
		out = strconv.AppendInt(out, int64(count), 10)
	}
	return out
}
