package fetch_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hardtrail/hardtrail/internal/testutil"
	"github.com/hardtrail/hardtrail/rules/fetch"
)

// TestMain points TMPDIR at a directory of its own and fails the run if anything is left in it
// (go-getter likes temporary directories) or if goroutines leak.
func TestMain(m *testing.M) {
	tmp, err := os.MkdirTemp("", "fetch-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("TMPDIR", tmp)
	code := m.Run()
	if code == 0 {
		if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: left behind in TMPDIR: %v\n", ents)
			code = 1
		}
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
			code = 1
		}
	}
	os.RemoveAll(tmp)
	os.Exit(code)
}

// entry is one member of a test archive.
type entry struct {
	name string
	typ  byte // tar.TypeReg when zero
	body string
	link string
	mode int64
}

func tarball(t *testing.T, gz bool, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var zw *gzip.Writer
	tw := tar.NewWriter(&buf)
	if gz {
		zw = gzip.NewWriter(&buf)
		tw = tar.NewWriter(zw)
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

const rule = "[[rule]]\nid = \"ssh-no-root\"\n"

// goodPack is a pack as publishers ship it: rules in a directory, a README beside them.
func goodPack() []entry {
	return []entry{
		{name: "pack/", typ: tar.TypeDir, mode: 0o700},
		{name: "pack/README.md", body: "# pack\n"},
		{name: "pack/ssh.toml", body: rule, mode: 0o4777},
		{name: "pack/net/", typ: tar.TypeDir},
		{name: "pack/net/ports.toml", body: rule},
	}
}

// env is a loopback https server and a git repository for the tests to fetch from.
type env struct {
	srv   *httptest.Server
	files map[string][]byte
	lints atomic.Int32
}

func newEnv(t *testing.T) *env {
	e := &env{files: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b, ok := e.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Write(b)
	})
	// A server that dies half-way through the body it announced.
	mux.HandleFunc("/cut.tar.gz", func(w http.ResponseWriter, r *http.Request) {
		b := e.files["/good.tar.gz"]
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	// A body sent chunked, so no Content-Length warns the client of its size.
	mux.HandleFunc("/chunked.toml", func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		w.Write(e.files["/big.toml"])
	})
	// A server that never answers.
	mux.HandleFunc("/hang.toml", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	mux.HandleFunc("/to-http.toml", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+r.Host+"/one.toml", http.StatusFound)
	})
	e.srv = httptest.NewTLSServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// serve publishes b at path and returns its https source with the right checksum.
func (e *env) serve(path string, b []byte) string {
	e.files[path] = b
	return e.srv.URL + path + "?checksum=sha256:" + sum(b)
}

func (e *env) options() fetch.Options {
	return fetch.Options{
		HTTPClient: e.srv.Client(),
		Lint: func(ctx context.Context, dir string) error {
			e.lints.Add(1)
			return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				if bytes.Contains(b, []byte("LINT-REJECT")) {
					return fmt.Errorf("%s:1:1: unknown key LINT-REJECT", d.Name())
				}
				return nil
			})
		},
	}
}

// gitRepo commits files (and symlinks, as "->target" bodies) to a new repository and returns its
// path and the commit ID.
func gitRepo(t *testing.T, files map[string]string) (string, string) {
	t.Helper()
	git := testutil.Tool(t, "git")
	dir := t.TempDir()
	testutil.Run(t, git, "init", "-q", dir)
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(body, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Run(t, git, "-C", dir, "add", "-A")
	testutil.Run(t, git, "-C", dir, "-c", "user.name=test", "-c", "user.email=test@example.invalid",
		"commit", "-q", "-m", "pack")
	return dir, strings.TrimSpace(testutil.Run(t, git, "-C", dir, "rev-parse", "HEAD"))
}

// listing is the tree under dir: "path mode" lines, sorted.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, fmt.Sprintf("%s %v", filepath.ToSlash(rel), fi.Mode()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// assertOnly fails unless dir holds exactly the named entries: no staging directory, no stray pack.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, names) {
		t.Fatalf("%s holds %q, want %q", dir, got, names)
	}
}

func TestFetchInstallsGoodPacks(t *testing.T) {
	e := newEnv(t)
	archive := tarball(t, true, goodPack()...)
	one := []byte(rule)
	repo, commit := gitRepo(t, map[string]string{
		"main.go":              "package main\n",
		"packs/cis/ssh.toml":   rule,
		"packs/cis/README":     "cis\n",
		"packs/cis/net/p.toml": rule,
	})
	local := t.TempDir()
	for name, body := range map[string]string{"ssh.toml": rule, "LICENSE": "MIT\n", "sub/x.toml": rule} {
		testutil.Must(t, os.MkdirAll(filepath.Join(local, filepath.Dir(name)), 0o755))
		testutil.Must(t, os.WriteFile(filepath.Join(local, name), []byte(body), 0o600))
	}
	localTar := filepath.Join(t.TempDir(), "pack.tgz")
	testutil.Must(t, os.WriteFile(localTar, archive, 0o644))
	localOne := filepath.Join(t.TempDir(), "one.toml")
	testutil.Must(t, os.WriteFile(localOne, one, 0o644))

	const (
		packFiles = "README.md -rw-r--r--|net drwxr-xr-x|net/ports.toml -rw-r--r--|ssh.toml -rw-r--r--"
		cisFiles  = "README -rw-r--r--|net drwxr-xr-x|net/p.toml -rw-r--r--|ssh.toml -rw-r--r--"
	)
	cases := []struct{ name, source, want string }{
		{"https archive", e.serve("/good.tar.gz", archive),
			"pack drwxr-xr-x|pack/" + strings.ReplaceAll(packFiles, "|", "|pack/")},
		{"https archive subdir", strings.Replace(e.serve("/good.tar.gz", archive), "?", "//pack?", 1), packFiles},
		{"https single file", e.serve("/rules/one.toml", one), "one.toml -rw-r--r--"},
		{"git commit subdir", "git::file://" + repo + "//packs/cis?ref=" + commit, cisFiles},
		{"git commit subdir upper-case ref", "git::file://" + repo + "//packs/cis?ref=" + strings.ToUpper(commit), cisFiles},
		{"local directory", "file://" + local, "LICENSE -rw-r--r--|ssh.toml -rw-r--r--|sub drwxr-xr-x|sub/x.toml -rw-r--r--"},
		{"local absolute path", local + "/sub", "x.toml -rw-r--r--"},
		{"local archive with checksum", "file://" + localTar + "//pack?checksum=sha256:" + sum(archive), packFiles},
		{"local single file", localOne, "one.toml -rw-r--r--"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "pack")
			before := e.lints.Load()
			if err := fetch.Fetch(t.Context(), tc.source, dst, e.options()); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(listing(t, dst), "|"); got != tc.want {
				t.Errorf("installed:\n%s\nwant:\n%s", strings.ReplaceAll(got, "|", "\n"), strings.ReplaceAll(tc.want, "|", "\n"))
			}
			if e.lints.Load() != before+1 {
				t.Errorf("Lint ran %d times, want once", e.lints.Load()-before)
			}
			assertOnly(t, parent, "pack")
		})
	}
}

func TestFetchReplacesExistingPack(t *testing.T) {
	e := newEnv(t)
	parent := t.TempDir()
	dst := filepath.Join(parent, "pack")
	first := e.serve("/first.tar.gz", tarball(t, true, entry{name: "old.toml", body: rule}))
	second := e.serve("/second.tar.gz", tarball(t, true, entry{name: "new.toml", body: rule}))
	bad := e.serve("/bad.tar.gz", tarball(t, true, entry{name: "new.toml", body: "LINT-REJECT"}))
	opt := e.options()

	if err := fetch.Fetch(t.Context(), first, dst, opt); err != nil {
		t.Fatal(err)
	}
	if err := fetch.Fetch(t.Context(), second, dst, opt); err != nil {
		t.Fatal(err)
	}
	if got := listing(t, dst); !slices.Equal(got, []string{"new.toml -rw-r--r--"}) {
		t.Fatalf("after replacement: %q", got)
	}
	assertOnly(t, parent, "pack")

	// A pack that fails leaves the installed one as it was.
	err := fetch.Fetch(t.Context(), bad, dst, opt)
	if !errors.Is(err, fetch.ErrRefused) || !strings.Contains(err.Error(), "does not lint") {
		t.Fatalf("Fetch = %v, want a lint refusal", err)
	}
	if got := listing(t, dst); !slices.Equal(got, []string{"new.toml -rw-r--r--"}) {
		t.Fatalf("after a failed fetch: %q", got)
	}
	assertOnly(t, parent, "pack")
}

func TestFetchKeepsDestinationThatIsNotAPack(t *testing.T) {
	e := newEnv(t)
	src := e.serve("/good.tar.gz", tarball(t, true, goodPack()...))
	for _, tc := range []struct {
		name  string
		setup func(dst string) error
		want  string
	}{
		{"directory with other files", func(dst string) error {
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, "passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
		}, "passwd: a rule pack holds only"},
		{"regular file", func(dst string) error { return os.WriteFile(dst, nil, 0o644) }, "is a regular file, not a directory"},
		{"symlink", func(dst string) error { return os.Symlink("/etc", dst) }, "is a symlink, not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "pack")
			if err := tc.setup(dst); err != nil {
				t.Fatal(err)
			}
			before := listing(t, parent)
			err := fetch.Fetch(t.Context(), src, dst, e.options())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Fetch = %v, want an error containing %q", err, tc.want)
			}
			if after := listing(t, parent); !slices.Equal(before, after) {
				t.Fatalf("destination changed:\n%q\nto\n%q", before, after)
			}
		})
	}
}

func TestFetchRefuses(t *testing.T) {
	e := newEnv(t)
	good := tarball(t, true, goodPack()...)
	goodSrc := e.serve("/good.tar.gz", good)
	e.files["/big.toml"] = bytes.Repeat([]byte("#"), 5000)
	bigSum := sum(e.files["/big.toml"])
	one := []byte(rule)
	oneSum := sum(one)
	e.files["/one.toml"] = one
	repo, commit := gitRepo(t, map[string]string{
		"rules/ssh.toml":  rule,
		"rules/link.toml": "->/etc/passwd",
		"other/x.toml":    rule,
		"other/y.toml":    rule,
		"other/z.toml":    rule,
		"lint/bad.toml":   "LINT-REJECT",
	})
	symlinkDir := t.TempDir()
	testutil.Must(t, os.WriteFile(filepath.Join(symlinkDir, "ok.toml"), one, 0o644))
	testutil.Must(t, os.Symlink("/etc/shadow", filepath.Join(symlinkDir, "shadow.toml")))
	scriptDir := t.TempDir()
	testutil.Must(t, os.WriteFile(filepath.Join(scriptDir, "ok.toml"), one, 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(scriptDir, "install.sh"), []byte("#!/bin/sh\n"), 0o755))
	docsOnly := t.TempDir()
	testutil.Must(t, os.WriteFile(filepath.Join(docsOnly, "README"), one, 0o644))
	fifoDir := t.TempDir()
	testutil.Must(t, os.WriteFile(filepath.Join(fifoDir, "ok.toml"), one, 0o644))
	if err := syscall.Mkfifo(filepath.Join(fifoDir, "pipe.toml"), 0o644); err != nil {
		t.Fatal(err)
	}
	bigDir := t.TempDir()
	testutil.Must(t, os.WriteFile(filepath.Join(bigDir, "big.toml"), e.files["/big.toml"], 0o644))

	many := func(n, size int) []entry {
		var es []entry
		for i := range n {
			es = append(es, entry{name: fmt.Sprintf("r%03d.toml", i), body: strings.Repeat("#", size)})
		}
		return es
	}
	limit := func(maxBytes, maxFileBytes int64, maxFiles int) func(*fetch.Options) {
		return func(o *fetch.Options) { o.MaxBytes, o.MaxFileBytes, o.MaxFiles = maxBytes, maxFileBytes, maxFiles }
	}
	const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

	cases := []struct {
		name    string
		source  string
		opt     func(*fetch.Options)
		want    []string
		refusal bool // errors.Is(err, ErrRefused); false for failures to reach or read the source
	}{
		// The source's form.
		{name: "missing checksum", source: e.srv.URL + "/good.tar.gz",
			want: []string{"https sources need ?checksum=sha256:HEX"}, refusal: true},
		{name: "wrong checksum", source: e.srv.URL + "/good.tar.gz?checksum=sha256:" + zeros,
			want: []string{"checksum mismatch: expected sha256:" + zeros + ", got sha256:" + sum(good)}, refusal: true},
		{name: "md5 checksum", source: e.srv.URL + "/good.tar.gz?checksum=md5:00000000000000000000000000000000",
			want: []string{"checksum must be written sha256:HEX"}, refusal: true},
		{name: "checksum file", source: e.srv.URL + "/good.tar.gz?checksum=file:" + e.srv.URL + "/SHA256SUMS",
			want: []string{"checksum must be written sha256:HEX"}, refusal: true},
		{name: "plain http", source: "http://127.0.0.1:1/one.toml?checksum=sha256:" + oneSum,
			want: []string{"plain http is not accepted"}, refusal: true},
		{name: "s3 getter", source: "s3::https://127.0.0.1:1/bucket/pack.tar.gz?checksum=sha256:" + zeros,
			want: []string{`getter "s3" is not allowed`, "accepted sources:"}, refusal: true},
		{name: "hg getter", source: "hg::https://127.0.0.1:1/repo", want: []string{`getter "hg" is not allowed`}, refusal: true},
		{name: "ftp scheme", source: "ftp://127.0.0.1:1/pack.tar.gz", want: []string{`scheme "ftp" is not allowed`}, refusal: true},
		{name: "smb scheme", source: "smb://127.0.0.1/share/pack", want: []string{`scheme "smb" is not allowed`}, refusal: true},
		{name: "git over ssh", source: "git::ssh://127.0.0.1:1/repo?ref=" + commit,
			want: []string{"git sources must use https:// or file://"}, refusal: true},
		{name: "shorthand not guessed", source: "github.com/hardtrail/packs",
			want: []string{"shorthands such as github.com/ORG/REPO are not guessed", "accepted sources:"}, refusal: true},
		{name: "relative path", source: "rules/packs", want: []string{"neither an absolute path nor a URL"}, refusal: true},
		{name: "git branch", source: "git::file://" + repo + "?ref=main", want: []string{`ref "main" is not a full commit ID: pin a commit`}, refusal: true},
		{name: "git short commit", source: "git::file://" + repo + "?ref=" + commit[:7], want: []string{"pin a commit"}, refusal: true},
		{name: "git no ref", source: "git::file://" + repo, want: []string{"git sources need ?ref=COMMIT: pin a commit"}, refusal: true},
		{name: "git commit not in repository", source: "git::file://" + repo + "?ref=" + strings.Repeat("ab", 20),
			want: []string{"fetch commit abab", "not our ref"}},
		{name: "zip archive", source: e.srv.URL + "/pack.zip?checksum=sha256:" + zeros, want: []string{`archive format ".zip" is not accepted`}, refusal: true},
		{name: "archive magic parameter", source: e.srv.URL + "/one.toml?archive=tar.gz&checksum=sha256:" + oneSum,
			want: []string{`query parameter "archive" is not accepted`}, refusal: true},
		{name: "subdir traversal", source: "git::file://" + repo + "//../x?ref=" + commit, want: []string{`subdirectory "../x" is not a plain relative path`}, refusal: true},

		// The archive's entries.
		{name: "path traversal entry", source: e.serve("/dotdot.tar.gz", tarball(t, true, entry{name: "ok.toml", body: rule}, entry{name: "../evil.toml", body: rule})),
			want: []string{`archive entry "../evil.toml" escapes the pack directory`}, refusal: true},
		{name: "inner traversal entry", source: e.serve("/dotdot2.tar.gz", tarball(t, true, entry{name: "a/../../evil.toml", body: rule})),
			want: []string{`archive entry "a/../../evil.toml" escapes`}, refusal: true},
		{name: "absolute entry", source: e.serve("/abs.tar.gz", tarball(t, true, entry{name: "/etc/cron.d/evil.toml", body: rule})),
			want: []string{`archive entry "/etc/cron.d/evil.toml" is an absolute path`}, refusal: true},
		{name: "symlink entry", source: e.serve("/symlink.tar.gz", tarball(t, true, entry{name: "ok.toml", body: rule}, entry{name: "passwd.toml", typ: tar.TypeSymlink, link: "/etc/passwd"})),
			want: []string{`archive entry "passwd.toml" is a symlink (to "/etc/passwd")`}, refusal: true},
		{name: "hard link entry", source: e.serve("/hardlink.tar", tarball(t, false, entry{name: "ok.toml", body: rule}, entry{name: "again.toml", typ: tar.TypeLink, link: "ok.toml"})),
			want: []string{`archive entry "again.toml" is a hard link (to "ok.toml")`}, refusal: true},
		{name: "device entry", source: e.serve("/dev.tgz", tarball(t, true, entry{name: "null.toml", typ: tar.TypeChar})),
			want: []string{`archive entry "null.toml" is a device`}, refusal: true},
		{name: "duplicate entry", source: e.serve("/dup.tar.gz", tarball(t, true, entry{name: "a.toml", body: rule}, entry{name: "./a.toml", body: "LINT-REJECT"})),
			want: []string{`archive entry "./a.toml" appears twice`}, refusal: true},
		{name: "not gzip", source: e.serve("/plain.tar.gz", tarball(t, false, goodPack()...)), want: []string{"not a gzip archive"}, refusal: true},
		{name: "empty archive", source: e.serve("/empty.tar.gz", tarball(t, true)), want: []string{"the archive is empty"}, refusal: true},
		{name: "subdir missing", source: strings.Replace(goodSrc, "?", "//rules?", 1), want: []string{`subdirectory "rules" not found`}, refusal: true},

		// Symlinks elsewhere.
		{name: "symlink committed in git", source: "git::file://" + repo + "//rules?ref=" + commit,
			want: []string{`archive entry "link.toml" is a symlink (to "/etc/passwd")`}, refusal: true},
		{name: "symlink in git outside subdir", source: "git::file://" + repo + "?ref=" + commit,
			want: []string{`archive entry "rules/link.toml" is a symlink`}, refusal: true},
		{name: "symlink in local directory", source: symlinkDir, want: []string{`shadow.toml is a symlink (to "/etc/shadow")`}, refusal: true},
		{name: "named pipe in local directory", source: fifoDir, want: []string{"pipe.toml is a named pipe"}, refusal: true},

		// What the pack holds.
		{name: "script in pack", source: scriptDir, want: []string{"install.sh: a rule pack holds only *.toml rule files"}, refusal: true},
		{name: "hidden file", source: e.serve("/hidden.tar.gz", tarball(t, true, entry{name: "ok.toml", body: rule}, entry{name: ".x.toml", body: rule})),
			want: []string{".x.toml: hidden files and directories are not accepted"}, refusal: true},
		{name: "no rules", source: docsOnly, want: []string{"no rule files (*.toml) in the pack"}, refusal: true},
		{name: "rules do not lint", source: "git::file://" + repo + "//lint?ref=" + commit,
			want: []string{"the rule pack does not lint: bad.toml:1:1: unknown key LINT-REJECT"}, refusal: true},

		// Limits.
		{name: "oversized file", source: e.serve("/oversized.tar.gz", tarball(t, true, many(1, 200)...)), opt: limit(0, 100, 0),
			want: []string{`archive entry "r000.toml" is 200 bytes, over the per-file limit of 100`}, refusal: true},
		{name: "too many files", source: e.serve("/many.tar.gz", tarball(t, true, many(4, 10)...)), opt: limit(0, 0, 3),
			want: []string{"too many files: the archive holds more than 3"}, refusal: true},
		{name: "total too big", source: e.serve("/total.tar.gz", tarball(t, true, many(3, 150)...)), opt: limit(300, 0, 0),
			want: []string{`the archive's files total more than the limit of 300 bytes (at "r002.toml")`}, refusal: true},
		{name: "too many files in git", source: "git::file://" + repo + "//other?ref=" + commit, opt: limit(0, 0, 2),
			want: []string{"too many files: the archive holds more than 2"}, refusal: true},
		{name: "oversized local file", source: bigDir, opt: limit(0, 1000, 0),
			want: []string{"big.toml is 5000 bytes, over the per-file limit of 1000"}, refusal: true},
		{name: "oversized local single file", source: bigDir + "/big.toml", opt: limit(0, 1000, 0),
			want: []string{"big.toml is 5000 bytes, over the limit of 1000"}, refusal: true},

		// The download itself.
		{name: "body larger than announced limit", source: e.srv.URL + "/big.toml?checksum=sha256:" + bigSum, opt: limit(0, 1000, 0),
			want: []string{"the server announces 5000 bytes, over the download limit of 1000"}, refusal: true},
		{name: "chunked body past the limit", source: e.srv.URL + "/chunked.toml?checksum=sha256:" + bigSum, opt: limit(0, 1000, 0),
			want: []string{"the download is larger than the limits allow"}, refusal: true},
		{name: "redirect to plain http", source: e.srv.URL + "/to-http.toml?checksum=sha256:" + oneSum,
			want: []string{"request to http://", "refused: only https is accepted"}, refusal: true},
		{name: "server closes mid-way", source: strings.Replace(goodSrc, "/good.tar.gz", "/cut.tar.gz", 1),
			want: []string{"unexpected EOF"}},
		{name: "server never answers", source: e.srv.URL + "/hang.toml?checksum=sha256:" + oneSum,
			opt: func(o *fetch.Options) { o.Timeout = 300 * time.Millisecond }, want: []string{"context deadline exceeded"}},
		{name: "not found", source: e.srv.URL + "/missing.toml?checksum=sha256:" + oneSum, want: []string{"bad response code: 404"}},
		{name: "local file missing", source: "/nonexistent/pack.toml", want: []string{"no such file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "pack")
			opt := e.options()
			if tc.opt != nil {
				tc.opt(&opt)
			}
			err := fetch.Fetch(t.Context(), tc.source, dst, opt)
			if err == nil {
				t.Fatalf("Fetch(%s) succeeded", tc.source)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if errors.Is(err, fetch.ErrRefused) != tc.refusal {
				t.Errorf("errors.Is(err, ErrRefused) = %v, want %v", !tc.refusal, tc.refusal)
			}
			assertOnly(t, parent)
		})
	}
}

// TestFetchGitIgnoresSubmodules commits a submodule whose URL points at a loopback listener: the
// fetch must never connect to it (go-getter's GitGetter would, for any URL the repository names).
func TestFetchGitIgnoresSubmodules(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-done }()

	repo, _ := gitRepo(t, map[string]string{
		".gitmodules":    fmt.Sprintf("[submodule \"m\"]\n\tpath = rules/m\n\turl = https://%s/evil.git\n", ln.Addr()),
		"rules/ssh.toml": rule,
	})
	git := testutil.Tool(t, "git")
	testutil.Run(t, git, "-C", repo, "update-index", "--add", "--cacheinfo", "160000,"+strings.Repeat("ab", 20)+",rules/m")
	testutil.Run(t, git, "-C", repo, "-c", "user.name=test", "-c", "user.email=test@example.invalid",
		"commit", "-q", "-m", "submodule")
	commit := strings.TrimSpace(testutil.Run(t, git, "-C", repo, "rev-parse", "HEAD"))

	dst := filepath.Join(t.TempDir(), "pack")
	if err := fetch.Fetch(t.Context(), "git::file://"+repo+"//rules?ref="+commit, dst, e.options()); err != nil {
		t.Fatal(err)
	}
	if got, want := listing(t, dst), []string{"m drwxr-xr-x", "ssh.toml -rw-r--r--"}; !slices.Equal(got, want) {
		t.Errorf("installed %q, want %q", got, want)
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the submodule's URL was contacted %d times", n)
	}
}
