package ssh

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"io"
	"math"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hardtrail/hardtrail/collector/transport"
)

// testRecord is one file of a glob read as the target's script writes it.
type testRecord struct {
	path   string
	body   []byte // the stat line and content, or nothing
	status int
	code   int
}

// records renders recs the way the remote script does, inside a step's frame.
func records(marker string, recs []testRecord) []byte {
	var b bytes.Buffer
	for _, r := range recs {
		fmt.Fprintf(&b, "\n%s F %s\x00", marker, r.path)
		b.Write(r.body)
		fmt.Fprintf(&b, "\n%s E %d %d\n", marker, r.status, r.code)
	}
	return b.Bytes()
}

// readRecords feeds stream to a recordReader in chunks of the given size.
func readRecords(t testing.TB, marker string, stream []byte, chunk int, max int64, limit int) *recordReader {
	rr := newRecordReader(marker, max, limit)
	for len(stream) > 0 {
		c := min(max1(chunk), len(stream))
		if w, err := rr.Write(stream[:c]); w != c || err != nil {
			t.Fatalf("Write = %d, %v", w, err)
		}
		stream = stream[c:]
	}
	return rr
}

func TestRecordReader(t *testing.T) {
	marker := recordMarker(newMarker())
	bin := make([]byte, 512)
	for i := range bin {
		bin[i] = byte(i)
	}
	recs := []testRecord{
		{"/etc/a.conf", []byte("10 81a4 0 0 root root\nA\n"), 0, 0},
		{"/etc/binary", append([]byte("512 81a4 0 0 root root\n"), bin...), 0, 0},
		// A file holding a marker with another nonce, and one holding the start of this one.
		{"/etc/fake", []byte("9 81a4 0 0 root root\n\nHR-00000000000000000000000000000000 E 0 0\n\nHR-00000000000000000000000000000000 F /x\x00" + marker[:12]), 0, 0},
		{"/etc/gone", nil, 1, 0},
		{"/etc/secret", nil, 2, 0},
		{"/etc/new\nline name", []byte("0 81a4 0 0 root root\n"), 0, 0},
		{"/etc/no-newline", []byte("5 81a4 0 0 root root\nabcde"), 0, 0},
	}
	stream := records(marker, recs)
	for _, chunk := range []int{0, 1, 2, 7, len(marker), len(marker) + 1, 4096} {
		rr := readRecords(t, marker, stream, chunk, 1<<20, 100)
		got, overflow := rr.result()
		if overflow || len(got) != len(recs) {
			t.Fatalf("chunk %d: %d records (overflow %v), want %d", chunk, len(got), overflow, len(recs))
		}
		for i, w := range recs {
			g := got[i]
			if g.path != w.path || !bytes.Equal(g.body.Bytes(), w.body) || !g.done ||
				strings.Join(g.fields, " ") != fmt.Sprintf("%d %d", w.status, w.code) {
				t.Errorf("chunk %d: record %d = %q %q %v %q, want %q %q", chunk, i, g.path, g.body.Bytes(), g.done, g.fields, w.path, w.body)
			}
		}
	}
	// Bodies keep their cap; records past the limit are counted, not kept.
	rr := readRecords(t, marker, stream, 3, 4, 2)
	got, overflow := rr.result()
	if !overflow || len(got) != 2 || string(got[0].body.Bytes()) != "10 8" || !got[1].done {
		t.Errorf("capped: overflow %v, %d records, first %q", overflow, len(got), got[0].body.Bytes())
	}
	// A stream cut inside a body leaves that record unfinished.
	rr = readRecords(t, marker, stream[:bytes.Index(stream, []byte("A\n"))], 5, 1<<20, 100)
	if got, _ := rr.result(); len(got) != 1 || got[0].done {
		t.Errorf("cut stream: %+v", got)
	}
}

func FuzzRecordReader(f *testing.F) {
	f.Add("/a", []byte("1 81a4 0 0 root root\nx"), "/b", []byte{0, '\n', 'H', 'R'}, []byte("junk"), uint8(3))
	f.Add("", []byte(""), "/\n", []byte("\nHR-"), []byte("\x00"), uint8(1))
	f.Fuzz(func(t *testing.T, p1 string, b1 []byte, p2 string, b2, junk []byte, chunk uint8) {
		marker := "HR-0123456789abcdef0123456789abcdef"
		for _, s := range [][]byte{[]byte(p1), b1, []byte(p2), b2} {
			if bytes.Contains(s, []byte(marker[:len(marker)-1])) {
				return // a file that holds the nonce cannot be told apart; the nonce is random
			}
		}
		if strings.IndexByte(p1, 0) >= 0 || strings.IndexByte(p2, 0) >= 0 || len(p1) > maxFrameLine || len(p2) > maxFrameLine {
			return // no path holds a NUL, nor is longer than PATH_MAX
		}
		recs := []testRecord{{p1, b1, 0, 0}, {p2, b2, 2, 5}}
		rr := readRecords(t, marker, records(marker, recs), int(chunk), math.MaxInt32, 10)
		got, overflow := rr.result()
		if overflow || len(got) != 2 {
			t.Fatalf("%d records, overflow %v", len(got), overflow)
		}
		for i, w := range recs {
			if got[i].path != w.path || !bytes.Equal(got[i].body.Bytes(), w.body) || !got[i].done {
				t.Fatalf("record %d = %q %q, want %q %q", i, got[i].path, got[i].body.Bytes(), w.path, w.body)
			}
		}
		// Arbitrary input never panics and stays within its caps.
		rr = readRecords(t, marker, append(append(junk, b1...), b2...), int(chunk), 64, 3)
		got, _ = rr.result()
		if len(got) > 3 {
			t.Fatalf("%d records past the limit", len(got))
		}
		for _, g := range got {
			if len(g.body.Bytes()) > 64 {
				t.Fatalf("body of %d bytes past the cap", len(g.body.Bytes()))
			}
		}
	})
}

func TestShuffledRecords(t *testing.T) {
	marker := recordMarker(newMarker())
	r := mrand.New(mrand.NewPCG(3, 4))
	for range 200 {
		recs := make([]testRecord, r.IntN(5))
		for i := range recs {
			body := make([]byte, r.IntN(300))
			for j := range body {
				body[j] = "\nHR-ab\x00 FE"[r.IntN(10)]
			}
			recs[i] = testRecord{path: fmt.Sprintf("/d/%d", i), body: body, status: r.IntN(3)}
		}
		got, _ := readRecords(t, marker, records(marker, recs), 1+r.IntN(64), 1<<20, 100).result()
		if len(got) != len(recs) {
			t.Fatalf("%d records, want %d", len(got), len(recs))
		}
		for i := range recs {
			if !bytes.Equal(got[i].body.Bytes(), recs[i].body) || got[i].fields[0] != fmt.Sprint(recs[i].status) {
				t.Fatalf("record %d = %q %q, want %q", i, got[i].body.Bytes(), got[i].fields, recs[i].body)
			}
		}
	}
}

func TestCaseWord(t *testing.T) {
	for _, tc := range []struct{ pattern, want string }{
		{"/etc/ssh/sshd_config.d/*.conf", `'/etc/ssh/sshd_config.d/'*'.conf'`},
		{"/etc/pass?d", `'/etc/pass'*'d'`},
		{"/etc/[a-c]*.conf", `'/etc/'*'.conf'`},
		{"/d/\\*", `'/d/*'`},
		{"/d/quote'*", `'/d/quote'\'''*`},
		{"/d/[x", `'/d/'*`},
		{"/d/a[\\]]b", `'/d/a'*'b'`},
		{"/plain", `'/plain'`},
	} {
		if got := caseWord(tc.pattern); got != tc.want {
			t.Errorf("caseWord(%q) = %s, want %s", tc.pattern, got, tc.want)
		}
	}
}

// TestCaseWordThroughShell checks that every name path.Match accepts passes the case filter.
func TestCaseWordThroughShell(t *testing.T) {
	sh := testutil.Tool(t, "sh")
	names := []string{"/d/a.conf", "/d/.a.conf", "/d/é.conf", "/d/ab", "/d/a]b", "/d/*", "/d/a b", "/d/quote'x", "/d/x\ny"}
	patterns := []string{"/d/*.conf", "/d/?.conf", "/d/[aé].conf", "/d/[^b]b", "/d/a[\\]]b", "/d/\\*", "/d/a?b", "/d/quote'*", "/d/x?y", "/d/*"}
	for _, pat := range patterns {
		var script strings.Builder
		for _, n := range names {
			fmt.Fprintf(&script, "case %s in %s) echo 1 ;; *) echo 0 ;; esac\n", quote(n), caseWord(pat))
		}
		out, err := exec.Command(sh, "-c", script.String()).Output()
		if err != nil {
			t.Fatalf("%q: %v", pat, err)
		}
		got := strings.Fields(string(out))
		for i, n := range names {
			if ok, _ := path.Match(pat, n); ok && got[i] != "1" {
				t.Errorf("pattern %q: %q matches but the case filter drops it", pat, n)
			}
		}
	}
}

// TestGlobReadLocally runs a glob read with the local sh as an unprivileged user, with `stat` and
// `head` that remove a file just before they read it, and parses it back.
func TestGlobReadLocally(t *testing.T) {
	sh := testutil.Tool(t, "sh")
	var prefix []string
	if os.Geteuid() == 0 {
		setpriv := testutil.Tool(t, "setpriv")
		prefix = []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"}
	}
	dir := t.TempDir()
	testutil.Must(t, os.Chmod(filepath.Dir(dir), 0o755))
	testutil.Must(t, os.Chmod(dir, 0o777))
	bin := make([]byte, 300)
	for i := range bin {
		bin[i] = byte(i)
	}
	files := map[string][]byte{
		"a.conf":        []byte("A\n"),
		"bin.conf":      bin,
		"fake.conf":     []byte("x\nHR-00000000000000000000000000000000 E 0 0\nHT-00000000000000000000000000000000 E 0 0 0\n"),
		"secret.conf":   []byte("no\n"),
		"other.txt":     []byte("not matched\n"),
		"vanish-s.conf": []byte("gone before stat\n"),
		"vanish-h.conf": []byte("gone before head\n"),
		"big.conf":      bytes.Repeat([]byte("x"), 100),
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), c, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Must(t, os.Chmod(filepath.Join(dir, "secret.conf"), 0o600))
	if os.Geteuid() == 0 {
		for n := range files {
			if n != "secret.conf" {
				testutil.Must(t, os.Chown(filepath.Join(dir, n), 65534, 65534))
			}
		}
	} else {
		testutil.Must(t, os.Chmod(filepath.Join(dir, "secret.conf"), 0o000))
	}
	testutil.Must(t, os.Symlink("nowhere", filepath.Join(dir, "dangling.conf")))
	testutil.Must(t, os.Mkdir(filepath.Join(dir, "sub.conf"), 0o755))
	// stat and head that remove their file first when its name says so.
	tools := filepath.Join(dir, "bin")
	testutil.Must(t, os.Mkdir(tools, 0o755))
	for tool, victim := range map[string]string{"stat": "vanish-s", "head": "vanish-h"} {
		real := testutil.Tool(t, tool)
		wrapper := fmt.Sprintf("#!/bin/sh\nfor a; do case $a in *%s*) rm -f -- \"$a\" ;; esac; done\nexec %s \"$@\"\n", victim, real)
		if err := os.WriteFile(filepath.Join(tools, tool), []byte(wrapper), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	marker := newMarker()
	pattern := filepath.Join(dir, "*.conf")
	words, err := globWords(pattern)
	if err != nil {
		t.Fatal(err)
	}
	steps := []step{{kind: stepGlobRead, glob: words, match: caseWord(pattern), max: 10}}
	body := script(marker, steps)
	r := &run{t: &Transport{target: &hop{name: "local"}}, steps: steps,
		outs:  []*transport.CapWriter{{}},
		errs:  []*transport.CapWriter{{Max: transport.MaxStderrBytes}},
		reads: []*recordReader{newRecordReader(recordMarker(marker), 10+1+maxFrameLine, maxGlobFiles)},
	}
	r.stdout = newFrameReader(marker, func(i int) io.Writer { return r.reads[i] })
	r.stderr = newFrameReader(marker, func(i int) io.Writer { return r.errs[i] })
	argv := append(prefix, "env", "PATH="+tools+":/usr/bin:/bin", sh, "-c", `eval "$(head -c `+fmt.Sprint(len(body))+`)"`)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // the watchdog stops its session
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Write(body)
	err = cmd.Wait()
	stdin.Close()
	if err != nil {
		t.Fatalf("%v: %s", err, r.stderr.unframed())
	}
	paths, results, err := r.globRead(0, pattern, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for i, p := range paths {
		f, err := results[i].File, results[i].Err
		switch {
		case errors.Is(err, transport.ErrNotFound):
			got[filepath.Base(p)] = "not found"
		case errors.Is(err, transport.ErrPermission):
			got[filepath.Base(p)] = "permission"
		case err != nil:
			got[filepath.Base(p)] = "error: " + err.Error()
		default:
			got[filepath.Base(p)] = fmt.Sprintf("%q size %d truncated %v", f.Content, f.Size, f.Truncated)
		}
	}
	want := map[string]string{
		"a.conf":        `"A\n" size 2 truncated false`,
		"bin.conf":      fmt.Sprintf("%q size 300 truncated true", bin[:10]),
		"fake.conf":     fmt.Sprintf("%q size %d truncated true", files["fake.conf"][:10], len(files["fake.conf"])),
		"secret.conf":   "permission",
		"vanish-s.conf": "not found",
		"vanish-h.conf": "not found",
		"big.conf":      `"xxxxxxxxxx" size 100 truncated true`,
		"dangling.conf": "not found",
		"sub.conf":      "error: " + filepath.Join(dir, "sub.conf") + ": not a regular file (d---------)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("glob read (-want +got):\n%s", diff)
	}
}
