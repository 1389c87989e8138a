package evidence

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/hardtrail/hardtrail/diff"
)

// The diffs of a bundle are git-style, so that GNU patch, git apply and this package read them
// alike: each file starts with `diff --git a/PATH b/PATH`, a created or deleted file says so with
// `new file mode 100644` or `deleted file mode 100644`, and then comes its unified diff from
// diff.Unified, against /dev/null when the file is created or deleted. An empty file created
// or deleted has no unified diff; its `index` line names git's empty blob, which is how GNU
// patch tells an empty file apart from a file the patch leaves alone.
const (
	gitHeader   = "diff --git "
	newMode     = "new file mode 100644"
	deletedMode = "deleted file mode 100644"
	emptyNew    = "index 0000000..e69de29"
	emptyGone   = "index e69de29..0000000"
)

// A path with a space is written as git writes it for GNU patch: quoted in the `diff --git`
// line, and with a tab ending the `---` and `+++` names (where diff writes a timestamp), so
// that GNU patch and diff.Parse both read the whole name.
func gitNames(path string) string {
	if strings.Contains(path, " ") {
		return `"a/` + path + `" "b/` + path + `"`
	}
	return "a/" + path + " b/" + path
}

func label(prefix, path string) string {
	if strings.Contains(path, " ") {
		return prefix + path + "\t"
	}
	return prefix + path
}

// fileDiff renders the change of one file of the tree, at path (TARGET/ARTIFACT): from old to
// new, where inOld and inNew say whether the file exists on each side. It returns nothing when
// the file is the same on both sides.
func fileDiff(path string, old, new []byte, inOld, inNew bool) []byte {
	if inOld == inNew && bytes.Equal(old, new) {
		return nil
	}
	var b bytes.Buffer
	b.WriteString(gitHeader + gitNames(path) + "\n")
	la, lb := label("a/", path), label("b/", path)
	switch {
	case !inOld:
		b.WriteString(newMode + "\n")
		la = diff.DevNull
		if len(new) == 0 {
			b.WriteString(emptyNew + "\n")
		}
	case !inNew:
		b.WriteString(deletedMode + "\n")
		lb = diff.DevNull
		if len(old) == 0 {
			b.WriteString(emptyGone + "\n")
		}
	}
	b.Write(diff.Unified(old, new, la, lb))
	return b.Bytes()
}

// applyDiff applies a bundle diff (one or more fileDiff outputs concatenated, in path order)
// to tree, a map from path to content, in memory. It accepts only what fileDiff writes: every
// file's part must be byte for byte what fileDiff renders from the hunks it holds, so nothing
// can hide in a bundle's diff. Errors name the file the diff is about.
func applyDiff(patch []byte, tree map[string][]byte) error {
	segs, err := splitDiff(patch)
	if err != nil {
		return err
	}
	prev := ""
	for _, s := range segs {
		if prev != "" && s.path <= prev {
			return fmt.Errorf("%s: out of order or repeated (after %s)", s.path, prev)
		}
		prev = s.path
		if err := s.apply(tree); err != nil {
			return err
		}
	}
	return nil
}

// segment is one file's part of a bundle diff.
type segment struct {
	path      string
	mode      string // newMode, deletedMode or ""
	emptyFile bool   // an empty file created or deleted: no unified diff
	fp        diff.FilePatch
}

// splitDiff cuts a bundle diff into files and checks each one.
func splitDiff(patch []byte) ([]segment, error) {
	if len(patch) == 0 {
		return nil, nil
	}
	if !bytes.HasPrefix(patch, []byte(gitHeader)) {
		return nil, fmt.Errorf("line 1: want %q, the header of a file's diff", gitHeader+"a/PATH b/PATH")
	}
	var out []segment
	line := 1
	for len(patch) > 0 {
		// A line starting with "diff --git " is always a header: hunk lines start with ' ', '+',
		// '-' or '\'.
		end := len(patch)
		if i := bytes.Index(patch, []byte("\n"+gitHeader)); i >= 0 {
			end = i + 1
		}
		raw := patch[:end]
		patch = patch[end:]
		s, err := parseSegment(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, s)
		line += bytes.Count(raw, []byte("\n"))
	}
	return out, nil
}

func parseSegment(raw []byte) (segment, error) {
	var s segment
	head, rest, ok := bytes.Cut(raw, []byte("\n"))
	if !ok {
		return s, fmt.Errorf("%q does not end in a newline", head)
	}
	names := string(head[len(gitHeader):])
	quote := strings.HasPrefix(names, `"`)
	frame := len("a/ b/") + 4*boolInt(quote)
	n := (len(names) - frame) / 2
	if n <= 0 || len(names) != 2*n+frame {
		return s, fmt.Errorf("header %q: want %q with the same path twice", head, gitHeader+"a/PATH b/PATH")
	}
	p := names[2+boolInt(quote) : 2+boolInt(quote)+n]
	if names != gitNames(p) {
		return s, fmt.Errorf("header %q: want %q with the same path twice (quoted when it has a space)", head, gitHeader+"a/PATH b/PATH")
	}
	if _, err := diff.Strip("a/"+p, 1); err != nil {
		return s, fmt.Errorf("header %q: %w", head, err)
	}
	s.path = p
	for _, m := range []string{newMode, deletedMode} {
		if r, ok := bytes.CutPrefix(rest, []byte(m+"\n")); ok {
			s.mode, rest = m, r
		}
	}
	fps, err := diff.Parse(rest)
	if err != nil {
		return s, fmt.Errorf("%s: %w", p, err)
	}
	switch len(fps) {
	case 0:
		s.emptyFile = true
		if s.mode == "" {
			return s, fmt.Errorf("%s: no change: neither created, deleted nor a unified diff", p)
		}
	case 1:
		s.fp = fps[0]
		wantOld, wantNew := "a/"+p, "b/"+p // as diff.Parse reads them: up to a tab
		switch s.mode {
		case newMode:
			wantOld = diff.DevNull
		case deletedMode:
			wantNew = diff.DevNull
		}
		if s.fp.OldName != wantOld || s.fp.NewName != wantNew {
			return s, fmt.Errorf("%s: unified diff of %s and %s, want %s and %s", p, s.fp.OldName, s.fp.NewName, wantOld, wantNew)
		}
		if len(s.fp.Hunks) == 0 {
			return s, fmt.Errorf("%s: unified diff without hunks", p)
		}
	default:
		return s, fmt.Errorf("%s: %d unified diffs under one header", p, len(fps))
	}
	// Canonical form: exactly what fileDiff renders for this change.
	var want bytes.Buffer
	want.Write(head)
	want.WriteByte('\n')
	if s.mode != "" {
		want.WriteString(s.mode + "\n")
	}
	if s.emptyFile {
		want.WriteString(map[string]string{newMode: emptyNew, deletedMode: emptyGone}[s.mode] + "\n")
	} else {
		fp := s.fp
		if fp.OldName != diff.DevNull {
			fp.OldName = label("a/", p)
		}
		if fp.NewName != diff.DevNull {
			fp.NewName = label("b/", p)
		}
		want.Write(fp.Bytes())
	}
	if !bytes.Equal(want.Bytes(), raw) {
		return s, fmt.Errorf("%s: holds text that is not part of its change (or is not in the form hardtrail writes)", p)
	}
	return s, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s segment) apply(tree map[string][]byte) error {
	old, have := tree[s.path]
	switch s.mode {
	case newMode:
		if have {
			return fmt.Errorf("%s: the diff creates it, but it exists", s.path)
		}
	default:
		if !have {
			return fmt.Errorf("%s: the diff changes it, but it does not exist", s.path)
		}
	}
	if s.emptyFile {
		if s.mode == deletedMode {
			if len(old) > 0 {
				return fmt.Errorf("%s: the diff deletes it as an empty file, but it has %d bytes", s.path, len(old))
			}
			delete(tree, s.path)
		} else {
			tree[s.path] = []byte{}
		}
		return nil
	}
	out, err := s.fp.Apply(old)
	if err != nil {
		return err
	}
	if s.mode == deletedMode {
		delete(tree, s.path)
	} else {
		tree[s.path] = out
	}
	return nil
}

// treeDiff names the first path where two trees differ, or "" when they are equal.
func treeDiff(got, want map[string][]byte) (string, string) {
	paths := make([]string, 0, len(got)+len(want))
	for p := range got {
		paths = append(paths, p)
	}
	for p := range want {
		if _, ok := got[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		g, inG := got[p]
		w, inW := want[p]
		switch {
		case !inW:
			return p, "is left over, but after/ does not have it"
		case !inG:
			return p, "is missing, but after/ has it"
		case !bytes.Equal(g, w):
			return p, fmt.Sprintf("differs from after/%s (%d bytes, want %d)", p, len(g), len(w))
		}
	}
	return "", ""
}

// fenced wraps text in a Markdown code fence longer than any run of backticks in it.
func fenced(info string, text []byte) string {
	longest, run := 0, 0
	for _, c := range text {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", max(3, longest+1))
	var b strings.Builder
	b.WriteString(fence + info + "\n")
	b.Write(text)
	if len(text) > 0 && text[len(text)-1] != '\n' {
		b.WriteString("\n")
	}
	b.WriteString(fence + "\n")
	return b.String()
}
