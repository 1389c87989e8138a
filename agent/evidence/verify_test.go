package evidence

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"strings"
	"testing"
)

// tarGz writes entries as given (no fixing of sizes), for hostile archives.
func tarGz(t testing.TB, hs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range hs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func reg(name string, size int64) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size}
}

func dir(name string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}
}

// Hostile or malformed structure: refused as a failure naming the entry, before anything
// else is looked at.
func TestVerifyStructure(t *testing.T) {
	small := Limits{MaxEntries: 5, MaxFileSize: 100, MaxTotal: 150}
	for _, tc := range []struct {
		name    string
		entries []*tar.Header
		lim     Limits
		path    string
		msg     string
	}{
		{"parent path", []*tar.Header{dir("INC-1/"), reg("INC-1/../evil", 1)}, DefaultLimits, "INC-1/../evil", `".."`},
		{"parent at top", []*tar.Header{reg("../evil", 1)}, DefaultLimits, "../evil", `".."`},
		{"absolute", []*tar.Header{reg("/tmp/evil", 1)}, DefaultLimits, "/tmp/evil", "absolute"},
		{"symlink", []*tar.Header{dir("INC-1/"), {Name: "INC-1/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd", Mode: 0o777}}, DefaultLimits, "INC-1/link", "a link"},
		{"hard link", []*tar.Header{reg("INC-1/a", 1), {Name: "INC-1/b", Typeflag: tar.TypeLink, Linkname: "INC-1/a"}}, DefaultLimits, "INC-1/b", "a link"},
		{"device", []*tar.Header{{Name: "INC-1/dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}, DefaultLimits, "INC-1/dev", "character device"},
		{"fifo", []*tar.Header{{Name: "INC-1/fifo", Typeflag: tar.TypeFifo}}, DefaultLimits, "INC-1/fifo", "FIFO"},
		{"duplicate", []*tar.Header{reg("INC-1/a", 1), reg("INC-1/a", 2)}, DefaultLimits, "INC-1/a", "twice"},
		{"duplicate dir and file", []*tar.Header{dir("INC-1/a/"), reg("INC-1/a", 2)}, DefaultLimits, "INC-1/a", "twice"},
		{"file used as directory", []*tar.Header{reg("INC-1/a", 1), reg("INC-1/a/b", 1)}, DefaultLimits, "INC-1/a", "is inside it"},
		{"two top directories", []*tar.Header{reg("INC-1/a", 1), reg("INC-2/a", 1)}, DefaultLimits, "INC-2/a", "outside the bundle's top directory INC-1/"},
		{"file at the top", []*tar.Header{reg("manifest.json", 1)}, DefaultLimits, "manifest.json", "where the bundle's top directory"},
		{"top not an incident", []*tar.Header{reg("-x/a", 1)}, DefaultLimits, "-x/a", "named by its incident"},
		{"dot path", []*tar.Header{reg("INC-1/./a", 1)}, DefaultLimits, "INC-1/./a", "not a clean relative path"},
		{"double slash", []*tar.Header{reg("INC-1//a", 1)}, DefaultLimits, "INC-1//a", "not a clean relative path"},
		{"backslash", []*tar.Header{reg(`INC-1/..\evil`, 1)}, DefaultLimits, `INC-1/..\evil`, "backslash"},
		{"control character", []*tar.Header{reg("INC-1/a\nb", 1)}, DefaultLimits, "INC-1/a\nb", "control character"},
		{"setuid", []*tar.Header{{Name: "INC-1/a", Typeflag: tar.TypeReg, Mode: 0o4755}}, DefaultLimits, "INC-1/a", "special bits"},
		{"file too large", []*tar.Header{reg("INC-1/a", 101)}, small, "INC-1/a", "limit of 100 for one file"},
		{"total too large", []*tar.Header{reg("INC-1/a", 100), reg("INC-1/b", 51)}, small, "INC-1/b", "add up to more than the limit of 150"},
		{"too many entries", []*tar.Header{dir("INC-1/"), reg("INC-1/a", 1), reg("INC-1/b", 1), reg("INC-1/c", 1), reg("INC-1/d", 1), reg("INC-1/e", 1)}, small, "INC-1/e", "more than 5 entries"},
		{"no manifest", []*tar.Header{dir("INC-1/"), reg("INC-1/report.md", 1)}, DefaultLimits, "INC-1/manifest.json", "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(bytes.NewReader(tarGz(t, tc.entries...)), nil, tc.lim)
			var f *Failure
			if !errors.As(err, &f) || f.Path != tc.path || !strings.Contains(f.Msg, tc.msg) {
				t.Errorf("got %v, want %q: ...%s...", err, tc.path, tc.msg)
			}
		})
	}
}

// Input that is not a readable bundle: a CorruptError, never a Failure.
func TestVerifyCorrupt(t *testing.T) {
	good, _, _ := signedBundle(t)
	var trailing bytes.Buffer
	trailing.Write(good)
	trailing.WriteString("junk")
	// A tar whose data runs past the gzip stream's end.
	var short bytes.Buffer
	zw := gzip.NewWriter(&short)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(reg("INC-1/a", 1000))
	tw.Write([]byte("only a little"))
	zw.Close()
	// Non-zero bytes after the tar's end, inside the gzip stream.
	var after bytes.Buffer
	zw = gzip.NewWriter(&after)
	tw = tar.NewWriter(zw)
	tw.WriteHeader(reg("INC-1/a", 1))
	tw.Write([]byte("x"))
	tw.Close()
	zw.Write([]byte("hidden"))
	zw.Close()
	// A corrupted checksum.
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-6] ^= 0xff
	for _, tc := range []struct {
		name string
		data []byte
		msg  string
	}{
		{"empty", nil, "empty"},
		{"not gzip", []byte("this is a plain text file, not a bundle\n"), "not a gzip file"},
		{"plain tar", tarOnly(t), "not a gzip file"},
		{"truncated in half", good[:len(good)/2], "truncated"},
		{"truncated by one byte", good[:len(good)-1], "unexpected EOF"},
		{"gzip of garbage", gz([]byte("garbage that is not a tar header, repeated ... repeated ... repeated")), "damaged or truncated tar"},
		{"data after gzip", trailing.Bytes(), "data after the end of the gzip stream"},
		{"data after tar", after.Bytes(), "after the tar archive"},
		{"file data cut", short.Bytes(), "truncated"},
		{"bad checksum", badCRC, "checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(bytes.NewReader(tc.data), nil, DefaultLimits)
			var c *CorruptError
			if !errors.As(err, &c) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want a corrupt input error with %q", err, tc.msg)
			}
		})
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func tarOnly(t *testing.T) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(reg("INC-1/a", 1))
	tw.Write([]byte("x"))
	tw.Close()
	return buf.Bytes()
}

// The bundle diff reader takes only the form the exporter writes.
func TestApplyDiff(t *testing.T) {
	tree := func() map[string][]byte {
		return map[string][]byte{"w/a": []byte("one\ntwo\n"), "w/empty": {}}
	}
	mod := fileDiff("w/a", []byte("one\ntwo\n"), []byte("one\n2\n"), true, true)
	add := fileDiff("w/b", nil, []byte("new\n"), false, true)
	addEmpty := fileDiff("w/c", nil, nil, false, true)
	delEmpty := fileDiff("w/empty", nil, nil, true, false)
	all := bytes.Join([][]byte{mod, add, addEmpty, delEmpty}, nil)
	tr := tree()
	if err := applyDiff(all, tr); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"w/a": []byte("one\n2\n"), "w/b": []byte("new\n"), "w/c": {}}
	if p, why := treeDiff(tr, want); p != "" {
		t.Fatalf("%s %s", p, why)
	}
	if fileDiff("w/a", []byte("x"), []byte("x"), true, true) != nil {
		t.Error("no change rendered a diff")
	}
	for _, tc := range []struct {
		name, patch, err string
	}{
		{"leading text", "hello\n" + string(mod), "line 1"},
		{"trailing text", string(mod) + "rm -rf /\n", "not part of its change"},
		{"out of order", string(add) + string(mod), "out of order"},
		{"repeated", string(mod) + string(mod), "out of order or repeated"},
		{"path escapes", strings.ReplaceAll(string(add), "w/b", "../b"), "leaves the directory"},
		{"header names differ", strings.Replace(string(mod), "b/w/a", "b/w/x", 1), "same path twice"},
		{"labels differ from header", strings.Replace(string(mod), "+++ b/w/a", "+++ b/w/z", 1), "unified diff of a/w/a and b/w/z"},
		{"creates an existing file", strings.ReplaceAll(string(add), "w/b", "w/a"), "exists"},
		{"changes a missing file", strings.ReplaceAll(string(mod), "w/a", "w/zz"), "does not exist"},
		{"context mismatch", strings.Replace(string(mod), " one", " uno", 1), "line 1"},
		{"bare header", "diff --git a/w/a b/w/a\n", "no change"},
		{"deletes non-empty as empty", strings.ReplaceAll(string(delEmpty), "w/empty", "w/a"), "has 8 bytes"},
		{"two diffs under one header", string(mod) + strings.TrimPrefix(string(mod), "diff --git a/w/a b/w/a\n"), "2 unified diffs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := applyDiff([]byte(tc.patch), tree())
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("got %v, want ...%s...", err, tc.err)
			}
		})
	}
}

// FuzzVerify feeds the archive reader arbitrary bytes: it never panics and never writes a
// file (the working directory stays as it was).
func FuzzVerify(f *testing.F) {
	good, _, _ := signedBundle(f)
	f.Add(good)
	f.Add(good[:len(good)/3])
	f.Add(tarGz(f, dir("INC-1/"), reg("INC-1/../evil", 3)))
	f.Add(tarGz(f, &tar.Header{Name: "INC-1/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}))
	f.Add(tarGz(f, reg("/abs", 2)))
	f.Add([]byte("\x1f\x8b"))
	f.Add([]byte{})
	// Verify sees a valid bundle only rarely; seed the checks behind the structure too.
	var buf bytes.Buffer
	build(f).Write(&buf, nil)
	f.Add(buf.Bytes())
	// Verify takes no path: the one place it could write to is the working directory.
	listing := func() string {
		ents, _ := os.ReadDir(".")
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return strings.Join(names, "\n")
	}
	before := listing()
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxEntries: 1000, MaxFileSize: 1 << 20, MaxTotal: 4 << 20}
		v, err := Verify(bytes.NewReader(data), nil, lim)
		if (v == nil) == (err == nil) {
			t.Fatalf("verified %v and error %v", v, err)
		}
		var fail *Failure
		var corrupt *CorruptError
		if err != nil && !errors.As(err, &fail) && !errors.As(err, &corrupt) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		if now := listing(); now != before {
			t.Fatalf("the working directory changed:\n%s\nwas:\n%s", now, before)
		}
	})
}
