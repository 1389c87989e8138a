package diff

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// fixtureDir holds config-like before/after pairs: NAME/a and NAME/b (a missing file is an
// added or removed artifact) and the golden NAME/unified.diff.
const fixtureDir = "../testdata/diff"

type fixture struct {
	name   string
	a, b   []byte
	la, lb string // labels: a/NAME and b/NAME, or DevNull for a missing side
}

func fixtures(t testing.TB) []fixture {
	t.Helper()
	ents, err := os.ReadDir(fixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	var fs []fixture
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		f := fixture{name: e.Name(), la: "a/" + e.Name(), lb: "b/" + e.Name()}
		read := func(side string, label *string) []byte {
			b, err := os.ReadFile(filepath.Join(fixtureDir, f.name, side))
			if errors.Is(err, os.ErrNotExist) {
				*label = DevNull
				return nil
			}
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		f.a, f.b = read("a", &f.la), read("b", &f.lb)
		fs = append(fs, f)
	}
	if len(fs) < 8 {
		t.Fatalf("only %d fixtures in %s", len(fs), fixtureDir)
	}
	return fs
}

func TestUnifiedGolden(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			got := Unified(f.a, f.b, f.la, f.lb)
			path := filepath.Join(fixtureDir, f.name, "unified.diff")
			testutil.Golden(t, path, got)
		})
	}
}

// gnuDiff runs GNU `diff -u` with labels on a and b written to dir.
func gnuDiff(t testing.TB, tool, dir string, a, b []byte, la, lb string) []byte {
	t.Helper()
	pa, pb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(pa, a, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pb, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "-u", "--label", la, "--label", lb, pa, pb).Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("%s: %v", tool, err)
	}
	return out
}

func TestUnifiedMatchesGNUFixtures(t *testing.T) {
	tool := testutil.Tool(t, "diff")
	dir := t.TempDir()
	for _, f := range fixtures(t) {
		for _, swap := range []bool{false, true} {
			a, b, la, lb := f.a, f.b, f.la, f.lb
			if swap {
				a, b, la, lb = b, a, strings.Replace(lb, "b/", "a/", 1), strings.Replace(la, "a/", "b/", 1)
			}
			want := gnuDiff(t, tool, dir, a, b, la, lb)
			if got := Unified(a, b, la, lb); !bytes.Equal(got, want) {
				t.Errorf("%s (swapped %v) differs from GNU diff\nGNU:\n%s\nours:\n%s", f.name, swap, want, got)
			}
		}
	}
}

// gnuDiffMany runs one GNU `diff -ruN` over trees holding the pairs as files, and returns
// each pair's hunks (the output without its `diff` and `---`/`+++` lines).
func gnuDiffMany(t testing.TB, tool string, pairs [][2][]byte) [][]byte {
	t.Helper()
	dir := t.TempDir()
	for i, p := range pairs {
		for side, b := range p {
			d := filepath.Join(dir, string(rune('a'+side)))
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("%05d", i)), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	out, err := exec.Command(tool, "-ruN", filepath.Join(dir, "a"), filepath.Join(dir, "b")).Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("%s: %v", tool, err)
	}
	hunks := make([][]byte, len(pairs))
	// Hunk lines start with ' ', '+', '-', '@' or '\\', so "diff " begins each file's section.
	secs := bytes.Split(append([]byte("\n"), out...), []byte("\ndiff "))[1:]
	for k, sec := range secs {
		if k < len(secs)-1 {
			sec = append(sec, '\n') // the split took it
		}
		lines := bytes.SplitAfterN(sec, []byte("\n"), 4)
		if len(lines) < 4 {
			t.Fatalf("short section in GNU output: %q", sec)
		}
		name := filepath.Base(string(bytes.TrimSpace(bytes.Fields(lines[0])[2])))
		var i int
		if _, err := fmt.Sscanf(name, "%d", &i); err != nil || i >= len(pairs) {
			t.Fatalf("GNU output names %q", name)
		}
		hunks[i] = lines[3]
	}
	return hunks
}

func TestUnifiedMatchesGNURandom(t *testing.T) {
	tool := testutil.Tool(t, "diff")
	r := rand.New(rand.NewPCG(1, 2))
	var pairs [][2][]byte
	for i := range 2000 {
		a, b := randomPair(r, 20+i/10)
		pairs = append(pairs, [2][]byte{a, b})
	}
	for i, want := range gnuDiffMany(t, tool, pairs) {
		a, b := pairs[i][0], pairs[i][1]
		var got []byte
		if u := Unified(a, b, "a", "b"); len(u) > 0 {
			got = u[len("--- a\n+++ b\n"):]
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d differs from GNU diff\na=%q\nb=%q\nGNU:\n%s\nours:\n%s", i, a, b, want, got)
		}
	}
}

// TestUnifiedMatchesGNULarge covers GNU diff's heuristics that only act on larger inputs:
// discarding of lines too common to anchor, and the cost cap on unrelated texts.
func TestUnifiedMatchesGNULarge(t *testing.T) {
	testutil.Short(t, "large inputs")
	tool := testutil.Tool(t, "diff")
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	cases := map[string]func() ([]byte, []byte){
		"many edits": func() ([]byte, []byte) {
			a := configText(r, 3000)
			return joined(a, false), joined(edited(r, a, 400), false)
		},
		// More distinct lines than two-byte class numbers hold: the four-byte search.
		"70,000 distinct lines": func() ([]byte, []byte) {
			a := make([]string, 70_000)
			for i := range a {
				a[i] = fmt.Sprintf("allow 10.%d.%d.0/24 port %d", i/256, i%256, i%9000)
			}
			return joined(a, false), joined(edited(r, a, 300), false)
		},
		"unrelated, capped": func() ([]byte, []byte) {
			// Past about 12,000 lines of unrelated text the search hits the cost cap.
			alpha := []string{"A", "B", "C", "D", "}", ""}
			mk := func() []byte {
				l := make([]string, 14000)
				for i := range l {
					l[i] = alpha[r.IntN(len(alpha))]
				}
				return joined(l, false)
			}
			return mk(), mk()
		},
	}
	for name, mk := range cases {
		a, b := mk()
		want := gnuDiff(t, tool, dir, a, b, "a/x", "b/x")
		if got := Unified(a, b, "a/x", "b/x"); !bytes.Equal(got, want) {
			t.Errorf("%s: differs from GNU diff (%d bytes, GNU %d)", name, len(got), len(want))
		}
	}
}

func TestUnifiedEdges(t *testing.T) {
	for _, tc := range []struct{ name, a, b, want string }{
		{"equal", "x\n", "x\n", ""},
		{"both empty", "", "", ""},
		{"empty to one line", "", "x\n", "@@ -0,0 +1 @@\n+x\n"},
		{"one line to empty", "x\n", "", "@@ -1 +0,0 @@\n-x\n"},
		{"newline added", "x", "x\n", "@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+x\n"},
		{"newline removed", "x\n", "x", "@@ -1 +1 @@\n-x\n+x\n\\ No newline at end of file\n"},
		{"insert after last", "a\nb\nc\nd\n", "a\nb\nc\nd\ne\n", "@@ -2,3 +2,4 @@\n b\n c\n d\n+e\n"},
		{"insert at top", "a\nb\nc\nd\n", "z\na\nb\nc\nd\n", "@@ -1,3 +1,4 @@\n+z\n a\n b\n c\n"},
		{"repeated braces", "}\n}\n", "}\n}\n}\n", "@@ -1,2 +1,3 @@\n }\n }\n+}\n"},
		{"blank line only", "\n", "\n\n", "@@ -1 +1,2 @@\n \n+\n"},
		{"joined when 6 apart", "1\nx\n2\n3\n4\n5\n6\n7\ny\n", "1\nX\n2\n3\n4\n5\n6\n7\nY\n",
			"@@ -1,9 +1,9 @@\n 1\n-x\n+X\n 2\n 3\n 4\n 5\n 6\n 7\n-y\n+Y\n"},
		{"split when 7 apart", "x\n1\n2\n3\n4\n5\n6\n7\ny\n", "X\n1\n2\n3\n4\n5\n6\n7\nY\n",
			"@@ -1,4 +1,4 @@\n-x\n+X\n 1\n 2\n 3\n@@ -6,4 +6,4 @@\n 5\n 6\n 7\n-y\n+Y\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := ""
			if tc.want != "" {
				want = "--- a\n+++ b\n" + tc.want
			}
			if got := string(Unified([]byte(tc.a), []byte(tc.b), "a", "b")); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestStat(t *testing.T) {
	for _, tc := range []struct {
		a, b         string
		added, remov int
	}{
		{"", "", 0, 0},
		{"a\n", "a\n", 0, 0},
		{"a\nb\n", "a\nc\nd\n", 2, 1},
		{"a", "a\n", 1, 1},
		{"a\nb\nc\n", "", 0, 3},
	} {
		added, removed := Stat([]byte(tc.a), []byte(tc.b))
		if added != tc.added || removed != tc.remov {
			t.Errorf("Stat(%q, %q) = +%d -%d, want +%d -%d", tc.a, tc.b, added, removed, tc.added, tc.remov)
		}
		fp := FilePatch{OldName: "a", NewName: "b", Hunks: Hunks([]byte(tc.a), []byte(tc.b))}
		if pa, pr := fp.Stat(); pa != added || pr != removed {
			t.Errorf("FilePatch.Stat = +%d -%d, Stat = +%d -%d", pa, pr, added, removed)
		}
	}
}

func TestIsBinary(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 9000)
	late := append(slices.Clone(big), 0)
	early := slices.Clone(big)
	early[8191] = 0
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"empty", nil, false},
		{"text", []byte("PermitRootLogin no\n"), false},
		{"utf-8 and tabs", []byte("# é\tü\r\n"), false},
		{"nul", []byte("a\x00b"), true},
		{"nul at 8191", early, true},
		{"nul past 8 KiB", late, false},
	} {
		if got := IsBinary(tc.b); got != tc.want {
			t.Errorf("%s: IsBinary = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// roundTrip checks that Unified(a, b) parses back into one file patch that turns a into b.
func roundTrip(t testing.TB, a, b []byte) {
	t.Helper()
	u := Unified(a, b, "a/x", "b/x")
	fps, err := Parse(u)
	if err != nil {
		t.Fatalf("Parse(Unified(%q, %q)): %v\n%s", a, b, err, u)
	}
	if bytes.Equal(a, b) {
		if len(u) != 0 || len(fps) != 0 {
			t.Fatalf("equal inputs gave %q", u)
		}
		return
	}
	if len(fps) != 1 {
		t.Fatalf("Parse gave %d file patches\n%s", len(fps), u)
	}
	got, err := fps[0].Apply(a)
	if err != nil {
		t.Fatalf("Apply: %v\na=%q\nb=%q\n%s", err, a, b, u)
	}
	if !bytes.Equal(got, b) {
		t.Fatalf("Apply gave %q, want %q\n%s", got, b, u)
	}
	if !bytes.Equal(fps[0].Bytes(), u) {
		t.Fatalf("Bytes() of the parsed patch differs from the patch\n%s", u)
	}
	added, removed := Stat(a, b)
	if pa, pr := fps[0].Stat(); pa != added || pr != removed {
		t.Fatalf("patch has +%d -%d, Stat says +%d -%d", pa, pr, added, removed)
	}
}

func TestApplyRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 3000 {
		a, b := randomPair(r, 60)
		roundTrip(t, a, b)
	}
}

// gnuPatch applies patch with GNU patch -p1 inside dir, strictly (no fuzz).
func gnuPatch(t testing.TB, tool, dir string, patch []byte) {
	t.Helper()
	c := exec.Command(tool, "-p1", "--force", "--fuzz=0", "--no-backup-if-mismatch", "--quiet", "-d", dir)
	c.Stdin = bytes.NewReader(patch)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("patch -p1: %v\n%s\npatch:\n%s", err, out, patch)
	}
}

func TestGNUPatchAppliesRandom(t *testing.T) {
	tool := testutil.Tool(t, "patch")
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 60 {
		a, b := randomPair(r, 40)
		dir := t.TempDir()
		path := filepath.Join(dir, "x")
		if err := os.WriteFile(path, a, 0o600); err != nil {
			t.Fatal(err)
		}
		gnuPatch(t, tool, dir, Unified(a, b, "a/x", "b/x"))
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("case %d: patch -p1 gave %q, want %q", i, got, b)
		}
	}
}

// TestCombinedPatch renders an evidence-style tree diff (changed, added and removed artifacts
// of several targets in one patch, labels a/TARGET/ARTIFACT and b/...) and applies it with
// GNU patch -p1 and with Parse, Strip and Apply; both must turn before into after.
func TestCombinedPatch(t *testing.T) {
	before, after := map[string][]byte{}, map[string][]byte{}
	for _, f := range fixtures(t) {
		name := "web1/" + f.name
		if f.la != DevNull {
			before[name] = f.a
		}
		if f.lb != DevNull {
			after[name] = f.b
		}
	}
	before["web2/sysctl/all"] = []byte("kernel.kptr_restrict = 1\n")
	after["web2/sysctl/all"] = []byte("kernel.kptr_restrict = 1\n")
	after["web2/firewall/nftables"] = []byte("table inet filter {\n}")

	var patch []byte
	names := map[string]bool{}
	for n := range before {
		names[n] = true
	}
	for n := range after {
		names[n] = true
	}
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range names {
			if !yield(n) {
				return
			}
		}
	}) {
		la, lb := "a/"+n, "b/"+n
		if _, ok := before[n]; !ok {
			la = DevNull
		}
		if _, ok := after[n]; !ok {
			lb = DevNull
		}
		patch = append(patch, Unified(before[n], after[n], la, lb)...)
	}

	check := func(t *testing.T, dir string) {
		t.Helper()
		got := readTree(t, dir)
		if !mapsEqual(got, after) {
			t.Errorf("tree after patching:\n%v\nwant:\n%v", keys(got), keys(after))
		}
	}

	t.Run("gnu patch", func(t *testing.T) {
		tool := testutil.Tool(t, "patch")
		dir := t.TempDir()
		writeTree(t, dir, before)
		gnuPatch(t, tool, dir, patch)
		check(t, dir)
	})
	t.Run("apply", func(t *testing.T) {
		fps, err := Parse(patch)
		if err != nil {
			t.Fatal(err)
		}
		tree := map[string][]byte{}
		for n, b := range before {
			tree[n] = b
		}
		for _, fp := range fps {
			name, err := Strip(fp.Name(), 1)
			if err != nil {
				t.Fatal(err)
			}
			out, err := fp.Apply(tree[name])
			if err != nil {
				t.Fatal(err)
			}
			if fp.Deleted() {
				delete(tree, name)
			} else {
				tree[name] = out
			}
		}
		if !mapsEqual(tree, after) {
			t.Errorf("tree after Apply:\n%v\nwant:\n%v", keys(tree), keys(after))
		}
	})
}

func writeTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for n, b := range files {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func mapsEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

func keys(m map[string][]byte) string {
	var s []string
	for k, v := range m {
		s = append(s, fmt.Sprintf("%s (%d bytes)", k, len(v)))
	}
	slices.Sort(s)
	return strings.Join(s, "\n")
}

// FuzzUnified edits config-like text (ops drive deletions, insertions of boilerplate and of
// existing lines, changes, and the final newline) and checks that the diff both ways applies
// back exactly.
func FuzzUnified(f *testing.F) {
	for _, fx := range fixtures(f) {
		f.Add(fx.a, []byte{1, 2, 3, 4, 5, 6})
		f.Add(fx.b, []byte{0, 0, 7, 1, 9})
	}
	f.Add([]byte("}\n}\n\nCOMMIT\n}\n"), []byte{2, 0, 3, 1, 4, 4})
	f.Fuzz(func(t *testing.T, base, ops []byte) {
		if len(base) > 1<<16 || len(ops) > 1<<10 {
			return
		}
		b := mutate(base, ops)
		roundTrip(t, base, b)
		roundTrip(t, b, base)
	})
}

// mutate applies edits read from ops, two bytes each: what to do, and where or which line.
func mutate(base, ops []byte) []byte {
	lines := strings.SplitAfter(string(base), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i := 0; i+1 < len(ops); i += 2 {
		p := 0
		if len(lines) > 0 {
			p = int(ops[i+1]) % (len(lines) + 1)
		}
		bp := boilerplate[int(ops[i+1])%len(boilerplate)] + "\n"
		switch ops[i] % 6 {
		case 0:
			if p < len(lines) {
				lines = slices.Delete(lines, p, p+1)
			}
		case 1:
			lines = slices.Insert(lines, p, bp)
		case 2:
			if len(lines) > 0 {
				lines = slices.Insert(lines, p, lines[int(ops[i+1])%len(lines)])
			}
		case 3:
			if p < len(lines) {
				lines[p] = bp
			}
		case 4:
			if p < len(lines) {
				lines[p] = fmt.Sprintf("changed %d\n", ops[i+1])
			}
		case 5:
			if n := len(lines); n > 0 {
				if last := lines[n-1]; strings.HasSuffix(last, "\n") {
					lines[n-1] = strings.TrimSuffix(last, "\n")
				} else {
					lines[n-1] = last + "\n"
				}
			}
		}
	}
	// Only the last line may lack its newline.
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasSuffix(lines[i], "\n") {
			lines[i] += "\n"
		}
	}
	return []byte(strings.Join(lines, ""))
}

// Line starts of data of 4 GiB or more are kept as int instead of uint32; forcing that layout
// on small inputs must not change a byte of the output.
func TestUnifiedWideLineStarts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var pairs [][2][]byte
	for i := range 300 {
		a, b := randomPair(r, 20+i)
		pairs = append(pairs, [2][]byte{a, b})
	}
	big, bigAfter := testutil.BigConfig(5_000)
	pairs = append(pairs, [2][]byte{big, bigAfter}, [2][]byte{[]byte("a\nb"), []byte("a\nc")})
	want := make([][]byte, len(pairs))
	for i, p := range pairs {
		want[i] = Unified(p[0], p[1], "a", "b")
	}
	defer func(w uint64) { wideAbove = w }(wideAbove)
	wideAbove = 0
	if tx := split([]byte("x\n")); tx.wide == nil || tx.off != nil {
		t.Fatal("split did not use wide line starts")
	}
	for i, p := range pairs {
		if got := Unified(p[0], p[1], "a", "b"); !bytes.Equal(got, want[i]) {
			t.Fatalf("case %d: wide line starts give\n%s\nwant\n%s", i, got, want[i])
		}
	}
}

// Class numbers are two bytes while the classes fit, four past that.
func TestClassifyWidens(t *testing.T) {
	for _, n := range []int{60_000, 70_000} {
		var sb strings.Builder
		for i := range n {
			fmt.Fprintf(&sb, "line %d\n", i)
		}
		ta := split([]byte(sb.String()))
		tb := split([]byte("other\n" + sb.String()))
		_, _, _, classes, ok := classify[uint16](&ta, 0, ta.n(), &tb, 0, tb.n(), math.MaxUint16)
		if want := n+1 < math.MaxUint16; ok != want {
			t.Errorf("%d distinct lines: two-byte classes ok=%v (%d classes), want %v", n, ok, classes, want)
		}
		if _, _, _, classes, ok := classify[int32](&ta, 0, ta.n(), &tb, 0, tb.n(), math.MaxInt32); !ok || classes != n+2 {
			t.Errorf("%d distinct lines: four-byte classes ok=%v, %d classes", n, ok, classes)
		}
	}
}
