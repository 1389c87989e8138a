package diff

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Created reports whether the patch creates its file (the old name is DevNull).
func (p FilePatch) Created() bool { return p.OldName == DevNull }

// Deleted reports whether the patch deletes its file (the new name is DevNull).
func (p FilePatch) Deleted() bool { return p.NewName == DevNull }

// Name is the file the patch is about: the new name, or the old one when the file is deleted.
func (p FilePatch) Name() string {
	if p.Deleted() {
		return p.OldName
	}
	return p.NewName
}

// Stat returns how many lines the patch adds and removes.
func (p FilePatch) Stat() (added, removed int) {
	for _, h := range p.Hunks {
		for _, l := range h.Lines {
			switch l.Kind {
			case Insert:
				added++
			case Delete:
				removed++
			}
		}
	}
	return added, removed
}

// Parse reads a unified diff of one or more files, such as Unified's outputs concatenated.
// Text outside the file patches (`diff` command lines, `Only in ...`) is skipped, as GNU patch
// does. A file patch starts with `--- OLD` and `+++ NEW`; names are kept as written (not
// unquoted) up to a tab, after which diff writes a timestamp; Strip removes `a/` and `b/`.
// Each hunk must hold exactly the lines its header counts (an empty line inside a hunk is an
// empty context line, as mail and editors leave it), hunks must be in order without overlap,
// and their new starts must agree with the lines added and removed before them, so that any
// accepted patch applies to the file its hunks show. Errors name the patch line.
func Parse(patch []byte) ([]FilePatch, error) {
	ps := &parser{rest: patch}
	var out []FilePatch
	for {
		l, ok := ps.next()
		if !ok {
			return out, nil
		}
		if !bytes.HasPrefix(l, []byte("--- ")) {
			continue
		}
		nl, ok := ps.peek()
		if !ok || !bytes.HasPrefix(nl, []byte("+++ ")) {
			continue
		}
		ps.next()
		fp := FilePatch{OldName: headerName(l[4:]), NewName: headerName(nl[4:])}
		start := ps.line - 1
		for {
			l, ok := ps.peek()
			if !ok || !bytes.HasPrefix(l, []byte("@@ ")) {
				break
			}
			ps.next()
			h, err := ps.hunk(l)
			if err != nil {
				return nil, err
			}
			fp.Hunks = append(fp.Hunks, h)
		}
		if l, ok := ps.peek(); ok && len(l) > 0 && bytes.IndexByte([]byte(" +-"), l[0]) >= 0 && !ps.header() {
			return nil, fmt.Errorf("patch line %d: %q follows a hunk that has all the lines its header counts", ps.line+1, l)
		}
		if err := fp.check(); err != nil {
			return nil, fmt.Errorf("patch line %d: %w", start, err)
		}
		out = append(out, fp)
	}
}

// headerName is a `---`/`+++` header's file name: the text up to a tab.
func headerName(s []byte) string {
	if i := bytes.IndexByte(s, '\t'); i >= 0 {
		s = s[:i]
	}
	return string(s)
}

type parser struct {
	rest []byte
	line int // number of the last line next returned, from 1
}

// header reports whether the next two lines are a `---`/`+++` file header.
func (p *parser) header() bool {
	l, _ := p.peek()
	if !bytes.HasPrefix(l, []byte("--- ")) {
		return false
	}
	rest := p.rest[min(len(l)+1, len(p.rest)):]
	return bytes.HasPrefix(rest, []byte("+++ "))
}

// peek returns the next line without its newline.
func (p *parser) peek() ([]byte, bool) {
	if len(p.rest) == 0 {
		return nil, false
	}
	if i := bytes.IndexByte(p.rest, '\n'); i >= 0 {
		return p.rest[:i], true
	}
	return p.rest, true
}

func (p *parser) next() ([]byte, bool) {
	l, ok := p.peek()
	if ok {
		p.rest = p.rest[min(len(l)+1, len(p.rest)):]
		p.line++
	}
	return l, ok
}

// hunk reads a hunk whose header line has just been read.
func (p *parser) hunk(header []byte) (Hunk, error) {
	at := p.line
	h, err := parseHeader(header)
	if err != nil {
		return h, fmt.Errorf("patch line %d: %w", at, err)
	}
	old, new := h.OldLines, h.NewLines
	for old > 0 || new > 0 {
		l, ok := p.next()
		if !ok {
			return h, fmt.Errorf("patch line %d: hunk %s ends early: %d old and %d new lines missing", at, header, old, new)
		}
		var kind Kind
		switch {
		case len(l) == 0: // a blank context line whose space was stripped
			kind = Keep
		case l[0] == '\\':
			if err := markNoNewline(&h, l); err != nil {
				return h, fmt.Errorf("patch line %d: %w", p.line, err)
			}
			continue
		default:
			kind = Kind(l[0])
			l = l[1:]
		}
		switch kind {
		case Keep:
			old--
			new--
		case Delete:
			old--
		case Insert:
			new--
		default:
			return h, fmt.Errorf("patch line %d: hunk %s: line starts with %q, want ' ', '-', '+' or '\\'", p.line, header, kind)
		}
		if old < 0 || new < 0 {
			return h, fmt.Errorf("patch line %d: hunk %s has more lines than its header counts", p.line, header)
		}
		h.Lines = append(h.Lines, Line{Kind: kind, Text: string(l)})
	}
	if l, ok := p.peek(); ok && len(l) > 0 && l[0] == '\\' {
		p.next()
		if err := markNoNewline(&h, l); err != nil {
			return h, fmt.Errorf("patch line %d: %w", p.line, err)
		}
	}
	return h, nil
}

func markNoNewline(h *Hunk, l []byte) error {
	if len(h.Lines) == 0 {
		return fmt.Errorf("%q does not follow a line", l)
	}
	last := &h.Lines[len(h.Lines)-1]
	if last.NoNewline {
		return fmt.Errorf("%q repeated", l)
	}
	last.NoNewline = true
	return nil
}

// parseHeader reads `@@ -l[,s] +l[,s] @@[ text]`.
func parseHeader(l []byte) (Hunk, error) {
	var h Hunk
	s, ok := strings.CutPrefix(string(l), "@@ -")
	if !ok {
		return h, fmt.Errorf("bad hunk header %q", l)
	}
	oldR, rest, ok := strings.Cut(s, " +")
	if !ok {
		return h, fmt.Errorf("bad hunk header %q", l)
	}
	newR, _, ok := strings.Cut(rest, " @@")
	if !ok {
		return h, fmt.Errorf("bad hunk header %q", l)
	}
	var err1, err2 error
	h.OldStart, h.OldLines, err1 = parseRange(oldR)
	h.NewStart, h.NewLines, err2 = parseRange(newR)
	if err := errors.Join(err1, err2); err != nil {
		return h, fmt.Errorf("bad hunk header %q: %w", l, err)
	}
	return h, nil
}

// maxLines bounds the numbers in a hunk header, so that positions never overflow.
const maxLines = 1 << 30

func parseRange(s string) (start, count int, err error) {
	a, b, hasCount := strings.Cut(s, ",")
	count = 1
	start, err = strconv.Atoi(a)
	if err == nil && hasCount {
		count, err = strconv.Atoi(b)
	}
	switch {
	case err != nil:
		return 0, 0, fmt.Errorf("range %q: %w", s, err)
	case start < 0 || count < 0 || start > maxLines || count > maxLines:
		return 0, 0, fmt.Errorf("range %q out of bounds", s)
	case count > 0 && start == 0:
		return 0, 0, fmt.Errorf("range %q starts at line 0", s)
	}
	return start, count, nil
}

// pos is where a range begins, 0-based: an empty range starts after the line its start names.
func pos(start, count int) int {
	if count == 0 {
		return start
	}
	return start - 1
}

// check verifies that the file patch is consistent in itself, so that it applies to exactly
// the files whose lines its hunks show.
func (p FilePatch) check() error {
	if p.Created() && p.Deleted() {
		return fmt.Errorf("both names are %s", DevNull)
	}
	if p.OldName == "" || p.NewName == "" {
		return fmt.Errorf("empty file name in %q / %q", p.OldName, p.NewName)
	}
	oldEnd, newEnd := 0, 0           // end of the previous hunk in each version
	oldDone, newDone := false, false // a line without newline ended that version
	for i, h := range p.Hunks {
		where := fmt.Sprintf("%s: hunk %d (%s)", p.Name(), i+1, h.Header())
		if h.OldLines == 0 && h.NewLines == 0 {
			return fmt.Errorf("%s: empty hunk", where)
		}
		if p.Created() && (h.OldStart != 0 || h.OldLines != 0) {
			return fmt.Errorf("%s: the file is created, so the old range must be 0,0", where)
		}
		if p.Deleted() && (h.NewStart != 0 || h.NewLines != 0) {
			return fmt.Errorf("%s: the file is deleted, so the new range must be 0,0", where)
		}
		op, np := pos(h.OldStart, h.OldLines), pos(h.NewStart, h.NewLines)
		if op < oldEnd {
			return fmt.Errorf("%s: overlaps or precedes hunk %d", where, i)
		}
		if np-op != newEnd-oldEnd {
			return fmt.Errorf("%s: new start %d does not follow from the lines added and removed before it (want %d)",
				where, h.NewStart, op+newEnd-oldEnd+boolInt(h.NewLines > 0))
		}
		if oldDone || newDone {
			return fmt.Errorf("%s: follows a line marked %q", where, strings.TrimSpace(noNewline))
		}
		old, new := 0, 0
		for _, l := range h.Lines {
			inOld, inNew := l.Kind != Insert, l.Kind != Delete
			if inOld && oldDone || inNew && newDone {
				return fmt.Errorf("%s: line %q follows a line marked %q", where, l.Text, strings.TrimSpace(noNewline))
			}
			switch l.Kind {
			case Keep, Delete, Insert:
			default:
				return fmt.Errorf("%s: line kind %q", where, l.Kind)
			}
			if strings.IndexByte(l.Text, '\n') >= 0 {
				return fmt.Errorf("%s: line %q holds a newline", where, l.Text)
			}
			if l.NoNewline && l.Text == "" {
				return fmt.Errorf("%s: an empty line is marked %q", where, strings.TrimSpace(noNewline))
			}
			if inOld {
				old++
				oldDone = l.NoNewline
			}
			if inNew {
				new++
				newDone = l.NoNewline
			}
		}
		if old != h.OldLines || new != h.NewLines {
			return fmt.Errorf("%s: has %d old and %d new lines", where, old, new)
		}
		oldEnd, newEnd = op+h.OldLines, np+h.NewLines
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Apply applies the patch to orig, the old version of its file, and returns the new version.
// It is strict: every context and removed line must be in orig at the line its hunk states,
// with the same text and the same final newline (or lack of one); there is no offset or fuzz.
// A created file's orig must be empty; a deleted file's result is empty, and the caller
// removes the file. Errors name the file, the hunk and the line.
func (p FilePatch) Apply(orig []byte) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if p.Created() && len(orig) > 0 {
		return nil, fmt.Errorf("%s: the patch creates the file, which already has %d bytes", p.Name(), len(orig))
	}
	t := split(orig)
	out := make([]byte, 0, len(orig)+len(orig)/8+64)
	at := 0    // next line of orig to copy
	open := -1 // length of out after a line written without newline
	for i, h := range p.Hunks {
		where := func() string { return fmt.Sprintf("%s: hunk %d (%s)", p.Name(), i+1, h.Header()) }
		op := pos(h.OldStart, h.OldLines)
		if op > t.n() {
			return nil, fmt.Errorf("%s: starts past the end of the file (%d lines)", where(), t.n())
		}
		out = append(out, t.data[t.start(at):t.start(op)]...)
		at = op
		for _, l := range h.Lines {
			if l.Kind != Insert {
				if at >= t.n() {
					return nil, fmt.Errorf("%s: line %d: the file ends, want %s", where(), at+1, describe(l.Text, l.NoNewline))
				}
				have := t.line(at)
				nl := have[len(have)-1] != '\n'
				if !nl {
					have = have[:len(have)-1]
				}
				if string(have) != l.Text || nl != l.NoNewline {
					return nil, fmt.Errorf("%s: line %d: have %s, want %s", where(), at+1, describe(string(have), nl), describe(l.Text, l.NoNewline))
				}
				at++
			}
			if l.Kind != Delete {
				out = append(out, l.Text...)
				if l.NoNewline {
					open = len(out)
				} else {
					out = append(out, '\n')
				}
			}
		}
	}
	out = append(out, t.data[t.start(at):]...)
	if open >= 0 && open != len(out) {
		return nil, fmt.Errorf("%s: a line the patch writes without newline is not the last line", p.Name())
	}
	if p.Deleted() && len(out) > 0 {
		return nil, fmt.Errorf("%s: the patch deletes the file, but %d bytes would remain", p.Name(), len(out))
	}
	return out, nil
}

func describe(text string, noNewline bool) string {
	if noNewline {
		return strconv.Quote(text) + " without newline"
	}
	return strconv.Quote(text)
}

// Strip removes the first n slash-separated components of a file name from a patch, as
// `patch -pN` does (runs of slashes count as one), so Strip("a/etc/ssh/sshd_config", 1) is
// "etc/ssh/sshd_config". Patches are outside input: Strip refuses a result that is empty,
// absolute, or has a ".." component, so that it stays under the directory it is applied in.
func Strip(name string, n int) (string, error) {
	s := name
	for range n {
		i := strings.IndexByte(s, '/')
		if i < 0 {
			return "", fmt.Errorf("file name %q has fewer than %d components to strip", name, n)
		}
		s = strings.TrimLeft(s[i:], "/")
	}
	switch {
	case s == "":
		return "", fmt.Errorf("file name %q is empty after stripping %d components", name, n)
	case strings.HasPrefix(s, "/"):
		return "", fmt.Errorf("file name %q is absolute", s)
	}
	for _, c := range strings.Split(s, "/") {
		if c == ".." {
			return "", fmt.Errorf("file name %q leaves the directory", s)
		}
	}
	return s, nil
}
