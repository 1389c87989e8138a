package diff

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	patch := "diff -u a/etc/x b/etc/x\n" +
		"--- a/etc/x\t2026-01-02 03:04:05.000000000 +0000\n" +
		"+++ b/etc/x\t2026-01-02 03:04:06.000000000 +0000\n" +
		"@@ -1,3 +1,3 @@ section\n" +
		" a\n" +
		"-b\n" +
		"+B\n" +
		"\n" + // a blank context line whose space was stripped
		"Only in a/etc: y\n" +
		"--- /dev/null\n" +
		"+++ b/etc/z\n" +
		"@@ -0,0 +1 @@\n" +
		"+z\n" +
		"\\ No newline at end of file\n"
	got, err := Parse([]byte(patch))
	if err != nil {
		t.Fatal(err)
	}
	want := []FilePatch{
		{OldName: "a/etc/x", NewName: "b/etc/x", Hunks: []Hunk{{
			OldStart: 1, OldLines: 3, NewStart: 1, NewLines: 3,
			Lines: []Line{{Keep, "a", false}, {Delete, "b", false}, {Insert, "B", false}, {Keep, "", false}},
		}}},
		{OldName: DevNull, NewName: "b/etc/z", Hunks: []Hunk{{
			OldStart: 0, OldLines: 0, NewStart: 1, NewLines: 1,
			Lines: []Line{{Insert, "z", true}},
		}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse:\n%#v\nwant:\n%#v", got, want)
	}
	if !got[1].Created() || got[1].Deleted() || got[1].Name() != "b/etc/z" {
		t.Errorf("second patch: Created %v Deleted %v Name %q", got[1].Created(), got[1].Deleted(), got[1].Name())
	}
	out, err := got[0].Apply([]byte("a\nb\n\nrest\n"))
	if err != nil || string(out) != "a\nB\n\nrest\n" {
		t.Errorf("Apply = %q, %v", out, err)
	}
	out, err = got[1].Apply(nil)
	if err != nil || string(out) != "z" {
		t.Errorf("Apply creation = %q, %v", out, err)
	}
}

func TestParseErrors(t *testing.T) {
	const head = "--- a/x\n+++ b/x\n"
	for _, tc := range []struct{ name, patch, want string }{
		{"bad header", head + "@@ -1,x +1 @@\n", `patch line 3: bad hunk header "@@ -1,x +1 @@": range "1,x"`},
		{"no new range", head + "@@ -1 @@\n", "patch line 3: bad hunk header"},
		{"line 0", head + "@@ -0,1 +1 @@\n-a\n", `range "0,1" starts at line 0`},
		{"huge", head + "@@ -1,99999999999 +1 @@\n", "out of bounds"},
		{"ends early", head + "@@ -1,3 +1,3 @@\n a\n", "patch line 3: hunk @@ -1,3 +1,3 @@ ends early: 2 old and 2 new lines missing"},
		{"too many deletions", head + "@@ -1 +1,2 @@\n-a\n-b\n", "patch line 5: hunk @@ -1 +1,2 @@ has more lines than its header counts"},
		{"bad line kind", head + "@@ -1 +1 @@\n*a\n", `patch line 4: hunk @@ -1 +1 @@: line starts with '*'`},
		{"lines past the count", head + "@@ -1 +1 @@\n-a\n+b\n+c\n", `patch line 6: "+c" follows a hunk that has all the lines its header counts`},
		{"marker first", head + "@@ -1 +1 @@\n\\ No newline at end of file\n-a\n+b\n", `patch line 4: "\\ No newline at end of file" does not follow a line`},
		{"marker twice", head + "@@ -1 +1 @@\n-a\n\\ x\n\\ x\n+b\n", `patch line 6: "\\ x" repeated`},
		{"overlap", head + "@@ -1,2 +1,2 @@\n a\n b\n@@ -2 +2 @@\n-b\n+c\n", "patch line 1: b/x: hunk 2 (@@ -2 +2 @@): overlaps or precedes hunk 1"},
		{"new start", head + "@@ -1 +1,2 @@\n a\n+b\n@@ -5 +5 @@\n-e\n+f\n", "hunk 2 (@@ -5 +5 @@): new start 5 does not follow from the lines added and removed before it (want 6)"},
		{"empty hunk", head + "@@ -1,0 +1,0 @@\n", "hunk 1 (@@ -1,0 +1,0 @@): empty hunk"},
		{"after no newline", head + "@@ -1 +1 @@\n-a\n\\ x\n+b\n@@ -3 +3 @@\n-c\n+d\n", `hunk 2 (@@ -3 +3 @@): follows a line marked "\\ No newline at end of file"`},
		{"line after no newline", head + "@@ -1,2 +1 @@\n-a\n\\ x\n-b\n+c\n", `line "b" follows a line marked`},
		{"created with old lines", "--- /dev/null\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n", "the file is created, so the old range must be 0,0"},
		{"deleted with new lines", "--- a/x\n+++ /dev/null\n@@ -1 +1 @@\n-a\n+b\n", "the file is deleted, so the new range must be 0,0"},
		{"both dev null", "--- /dev/null\n+++ /dev/null\n", "both names are /dev/null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.patch))
			if err == nil {
				t.Fatalf("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestApplyErrors(t *testing.T) {
	patch := func(s string) FilePatch {
		t.Helper()
		fps, err := Parse([]byte(s))
		if err != nil || len(fps) != 1 {
			t.Fatalf("Parse: %v, %d patches", err, len(fps))
		}
		return fps[0]
	}
	const head = "--- a/etc/ssh/sshd_config\n+++ b/etc/ssh/sshd_config\n"
	harden := patch(head + "@@ -2,3 +2,3 @@\n Port 22\n-PermitRootLogin yes\n+PermitRootLogin no\n UsePAM yes\n")
	for _, tc := range []struct {
		name string
		fp   FilePatch
		orig string
		want string
	}{
		{"context moved", harden, "# x\n# y\nPort 22\nPermitRootLogin yes\nUsePAM yes\n",
			`b/etc/ssh/sshd_config: hunk 1 (@@ -2,3 +2,3 @@): line 2: have "# y", want "Port 22"`},
		{"already applied", harden, "# x\nPort 22\nPermitRootLogin no\nUsePAM yes\n",
			`line 3: have "PermitRootLogin no", want "PermitRootLogin yes"`},
		{"file too short", harden, "# x\nPort 22\n", `line 3: the file ends, want "PermitRootLogin yes"`},
		{"starts past end", harden, "", "hunk 1 (@@ -2,3 +2,3 @@): starts past the end of the file (0 lines)"},
		{"newline differs", harden, "# x\nPort 22\nPermitRootLogin yes\nUsePAM yes",
			`line 4: have "UsePAM yes" without newline, want "UsePAM yes"`},
		{"no newline expected", patch(head + "@@ -1 +1 @@\n-a\n\\ x\n+b\n"), "a\n", `line 1: have "a", want "a" without newline`},
		{"inserted line without newline not last", patch(head + "@@ -1 +1 @@\n-a\n+b\n\\ x\n"), "a\nc\n",
			"a line the patch writes without newline is not the last line"},
		{"created exists", patch("--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+a\n"), "old\n", "b/x: the patch creates the file, which already has 4 bytes"},
		{"deleted leaves lines", patch("--- a/x\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n"), "a\nb\n", "a/x: the patch deletes the file, but 2 bytes would remain"},
		{"hand-built bad counts", FilePatch{OldName: "a", NewName: "b", Hunks: []Hunk{{OldStart: 1, OldLines: 2, NewStart: 1, NewLines: 1, Lines: []Line{{Kind: Keep, Text: "a"}}}}},
			"a\n", "b: hunk 1 (@@ -1,2 +1 @@): has 1 old and 1 new lines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.fp.Apply([]byte(tc.orig))
			if err == nil {
				t.Fatalf("no error; result %q", out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestStrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		want string
		err  string
	}{
		{"a/web1/sshd/effective", 1, "web1/sshd/effective", ""},
		{"a/web1/sshd/effective", 0, "a/web1/sshd/effective", ""},
		{"a//web1/x", 1, "web1/x", ""},
		{"a/web1/x", 2, "x", ""},
		{"/u/src/x", 1, "u/src/x", ""},
		{"/u/src/x", 0, "", "is absolute"},
		{"a/x", 2, "", "fewer than 2 components"},
		{"a/", 1, "", "is empty after stripping"},
		{"a/../etc/shadow", 1, "", "leaves the directory"},
		{"a/b/../../x", 1, "", "leaves the directory"},
	} {
		got, err := Strip(tc.name, tc.n)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("Strip(%q, %d) = %q, %v; want %q", tc.name, tc.n, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Strip(%q, %d) = %q, %v; want error with %q", tc.name, tc.n, got, err, tc.err)
		}
	}
}

// images builds the old and new versions of a file that a parsed patch shows: its hunks' lines
// at their stated places, and numbered filler lines (the same on both sides) in the gaps.
func images(fp FilePatch) (old, new []byte, ok bool) {
	var o, n bytes.Buffer
	at := 0
	for _, h := range fp.Hunks {
		op := pos(h.OldStart, h.OldLines)
		if op > 1<<14 {
			return nil, nil, false // too big for a quick check
		}
		for ; at < op; at++ {
			fmt.Fprintf(&o, "filler %d\n", at)
			fmt.Fprintf(&n, "filler %d\n", at)
		}
		for _, l := range h.Lines {
			nl := "\n"
			if l.NoNewline {
				nl = ""
			}
			if l.Kind != Insert {
				o.WriteString(l.Text + nl)
				at++
			}
			if l.Kind != Delete {
				n.WriteString(l.Text + nl)
			}
		}
	}
	return o.Bytes(), n.Bytes(), true
}

// FuzzParse feeds Parse arbitrary text. It must not panic, and whatever it accepts must be
// consistent: rendering it back parses to the same patches, and each file patch turns the old
// version its hunks show into the new one.
func FuzzParse(f *testing.F) {
	for _, fx := range fixtures(f) {
		f.Add(Unified(fx.a, fx.b, fx.la, fx.lb))
	}
	f.Add([]byte("--- a/x\n+++ b/x\n@@ -1,2 +1 @@\n-a\n\\ No newline at end of file\n+b\n c\n"))
	f.Add([]byte("junk\n--- a\n+++ b\n@@ -0,0 +1,2 @@\n+x\n+y\n--- b\n+++ /dev/null\n@@ -1 +0,0 @@\n-q\n"))
	f.Add([]byte("--- a\n+++ b\n@@ -3,0 +4,2 @@\n+x\n+y\n@@ -9 +11 @@\n-p\n+q\n\\ x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fps, err := Parse(data)
		if err != nil {
			return
		}
		var again []byte
		for _, fp := range fps {
			again = append(again, fp.Bytes()...)
		}
		fps2, err := Parse(again)
		if err != nil {
			t.Fatalf("rendered patch does not parse: %v\n%s", err, again)
		}
		if len(fps) != len(fps2) || (len(fps) > 0 && !reflect.DeepEqual(fps, fps2)) {
			t.Fatalf("round trip changed the patches:\n%#v\n%#v", fps, fps2)
		}
		for _, fp := range fps {
			old, new, ok := images(fp)
			if !ok {
				continue
			}
			got, err := fp.Apply(old)
			if err != nil {
				t.Fatalf("accepted patch does not apply to its own old version: %v\n%s\nold:\n%q", err, fp.Bytes(), old)
			}
			if !bytes.Equal(got, new) {
				t.Fatalf("Apply gave %q, want %q\n%s", got, new, fp.Bytes())
			}
		}
	})
}
