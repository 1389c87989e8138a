package fetch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	getter "github.com/hashicorp/go-getter/v2"
)

// The getters below are the only ones a fetch client holds. Each accepts exactly its own scheme
// and nothing guessed; Fetch has already parsed and validated the source, so these checks are the
// second line.
var (
	_ getter.Getter = httpsGetter{}
	_ getter.Getter = (*fileGetter)(nil)
	_ getter.Getter = (*gitGetter)(nil)
)

// httpsGetter is go-getter's HttpGetter restricted to https and to single files: its directory
// mode (the X-Terraform-Get redirection protocol) is refused outright.
type httpsGetter struct{ *getter.HttpGetter }

func newHTTPSGetter(c *http.Client) httpsGetter {
	return httpsGetter{&getter.HttpGetter{
		Client:                c,
		Netrc:                 false, // no credentials from ~/.netrc sent to a host a source names
		XTerraformGetDisabled: true,
		DoNotCheckHeadFirst:   true, // no HEAD and no Range resume onto an existing file
		Header:                http.Header{"User-Agent": {userAgent()}},
	}}
}

func (g httpsGetter) Detect(req *getter.Request) (bool, error) {
	if req.Forced != "" {
		return false, nil
	}
	u, err := url.Parse(req.Src)
	return err == nil && u.Scheme == "https", nil
}

func (g httpsGetter) Get(context.Context, *getter.Request) error {
	return refusef("an https source must name an archive or a single file")
}

// guardTransport refuses any request that is not https (a redirect to plain http included) and
// fails a response body at the first byte past limit, where go-getter's MaxBytes would silently
// cut it short.
type guardTransport struct {
	base  http.RoundTripper
	limit int64
}

func (t *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		return nil, refusef("request to %s://%s%s refused: only https is accepted", req.URL.Scheme, req.URL.Host, req.URL.Path)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.limit {
		resp.Body.Close()
		return nil, refusef("the server announces %d bytes, over the download limit of %d", resp.ContentLength, t.limit)
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, left: t.limit}
	return resp, nil
}

type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errTooLarge
	}
	return n, err
}

var errTooLarge = refusef("the download is larger than the limits allow")

// guardedClient returns a copy of base (or of a default client) whose transport is wrapped in a
// guardTransport, and a function that closes the idle connections of a default transport.
func guardedClient(base *http.Client, limit int64) (*http.Client, func()) {
	done := func() {}
	var c http.Client
	if base != nil {
		c = *base
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		c.Transport, done = tr, tr.CloseIdleConnections
	}
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = &guardTransport{base: rt, limit: limit}
	return &c, done
}

// fileGetter copies local files and directories. go-getter's FileGetter symlinks a directory into
// place even when asked to copy, and copies a file of any size or type; this one copies only
// regular files and directories, with limits, and refuses everything else where it finds it.
type fileGetter struct {
	limits    limits
	fileLimit int64 // for GetFile: the per-file limit for a rule file, the stream limit for an archive
}

func (g *fileGetter) Detect(req *getter.Request) (bool, error) {
	if req.Forced != "" {
		return false, nil
	}
	u, err := url.Parse(req.Src)
	return err == nil && u.Scheme == "file", nil
}

func (g *fileGetter) Mode(_ context.Context, u *url.URL) (getter.Mode, error) {
	fi, err := os.Stat(u.Path)
	if err != nil {
		return getter.ModeInvalid, err
	}
	if fi.IsDir() {
		return getter.ModeDir, nil
	}
	return getter.ModeFile, nil
}

func (g *fileGetter) GetFile(ctx context.Context, req *getter.Request) error {
	src := req.URL().Path
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return refusef("%s is %s, not a regular file", src, describe(fi.Mode()))
	}
	if fi.Size() > g.fileLimit {
		return refusef("%s is %d bytes, over the limit of %d", src, fi.Size(), g.fileLimit)
	}
	return copyLimited(ctx, req.Dst, in, g.fileLimit, src)
}

func (g *fileGetter) Get(ctx context.Context, req *getter.Request) error {
	src := req.URL().Path
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return refusef("%s is %s; a local source must be a directory, a .toml file or a .tar.gz, .tgz or .tar archive",
			src, describe(fi.Mode()))
	}
	root, err := os.OpenRoot(src)
	if err != nil {
		return err
	}
	defer root.Close()
	var files, entries int
	var total int64
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		out := filepath.Join(req.Dst, filepath.FromSlash(p))
		entries++
		if entries > g.limits.maxEntries()+1 {
			return refusef("more than %d files and directories", g.limits.maxEntries())
		}
		switch t := d.Type(); {
		case t.IsDir():
			return os.MkdirAll(out, 0o755)
		case t.IsRegular():
			files++
			if files > g.limits.maxFiles {
				return refusef("too many files: more than %d", g.limits.maxFiles)
			}
			in, err := root.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
			if err != nil {
				return err
			}
			defer in.Close()
			fi, err := in.Stat()
			if err != nil {
				return err
			}
			if !fi.Mode().IsRegular() {
				return refusef("%s is %s; only regular files and directories are accepted", p, describe(fi.Mode()))
			}
			if fi.Size() > g.limits.maxFileBytes {
				return refusef("%s is %d bytes, over the per-file limit of %d", p, fi.Size(), g.limits.maxFileBytes)
			}
			if total += fi.Size(); total > g.limits.maxBytes {
				return refusef("files total more than the limit of %d bytes (at %s)", g.limits.maxBytes, p)
			}
			return copyLimited(ctx, out, in, g.limits.maxFileBytes, p)
		case t&fs.ModeSymlink != 0:
			target, _ := root.Readlink(p)
			return refusef("%s is a symlink (to %q); symlinks are not accepted", p, target)
		default:
			return refusef("%s is %s; only regular files and directories are accepted", p, describe(t))
		}
	})
}

// copyLimited copies in to a new file dst, refusing more than limit bytes (the file may grow
// after it was measured).
func copyLimited(ctx context.Context, dst string, in io.Reader, limit int64, name string) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	n, err := getter.Copy(ctx, out, io.LimitReader(in, limit+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > limit {
		err = refusef("%s grew past the limit of %d bytes while it was copied", name, limit)
	}
	return err
}

// gitGetter fetches exactly one commit. go-getter's GitGetter clones the whole history, checks
// out whatever the ref names, and then runs "git submodule update --init --recursive", which
// fetches every URL the fetched repository's .gitmodules names. This one runs, in a scratch
// directory beside the destination:
//
//	git init --bare; git fetch --depth=1 URL COMMIT; git archive COMMIT[:SUBDIR]
//
// and extracts the archive through the same checks as any downloaded archive: symlinks and
// submodules never reach the disk as such, and the tree is bounded before it is written.
type gitGetter struct {
	git    string // the git program
	subdir string // the directory of the commit to take, or "" for its root
	limits limits
	logger *slog.Logger
}

func (g *gitGetter) Detect(req *getter.Request) (bool, error) { return req.Forced == "git", nil }

func (g *gitGetter) Mode(context.Context, *url.URL) (getter.Mode, error) { return getter.ModeDir, nil }

func (g *gitGetter) GetFile(context.Context, *getter.Request) error {
	return refusef("a git source names a commit (a directory), not a file")
}

func (g *gitGetter) Get(ctx context.Context, req *getter.Request) error {
	u := *req.URL()
	ref := u.Query().Get("ref")
	if !commitRe().MatchString(ref) {
		return refusef("ref %q is not a full commit ID: pin a commit", ref)
	}
	if u.Scheme != "https" && u.Scheme != "file" {
		return refusef("git over %q is not accepted", u.Scheme)
	}
	u.RawQuery = ""
	scratch, err := os.MkdirTemp(filepath.Dir(req.Dst), ".git-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	gitDir := filepath.Join(scratch, "repo.git")
	env := append(os.Environ(),
		"GIT_TERMINAL_PROMPT=0",        // fail instead of asking for a password
		"GIT_ALLOW_PROTOCOL="+u.Scheme, // also bounds where redirects may lead
		"LC_ALL=C",
	)
	if _, err := g.run(ctx, env, nil, "init", "-q", "--bare", gitDir); err != nil {
		return err
	}
	if _, err := g.run(ctx, env, nil, "--git-dir", gitDir, "fetch", "-q", "--no-tags", "--no-recurse-submodules",
		"--depth=1", "--", u.String(), ref); err != nil {
		return fmt.Errorf("fetch commit %s (the server must hold it and allow fetching a commit by its ID): %w", ref, err)
	}
	out, err := g.run(ctx, env, nil, "--git-dir", gitDir, "rev-parse", "--verify", ref+"^{commit}")
	if err != nil {
		return refusef("%s is not a commit: %v", ref, err)
	}
	if got := strings.TrimSpace(string(out)); got != ref {
		return refusef("ref %s resolved to %s", ref, got)
	}
	treeish := ref
	if g.subdir != "" {
		treeish += ":" + g.subdir
		out, err := g.run(ctx, env, nil, "--git-dir", gitDir, "cat-file", "-t", treeish)
		if err != nil || strings.TrimSpace(string(out)) != "tree" {
			return refusef("subdirectory %q is not a directory in commit %s", g.subdir, ref)
		}
	}
	tarPath := filepath.Join(scratch, "tree.tar")
	f, err := os.OpenFile(tarPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	w := &capWriter{w: f, left: g.limits.maxStream()}
	_, err = g.run(ctx, env, w, "--git-dir", gitDir, "archive", "--format=tar", treeish)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if w.over {
		return refusef("the commit's tree is larger than the limits allow")
	}
	if err == nil {
		err = w.err
	}
	if err != nil {
		return err
	}
	return extractArchive(tarPath, "tar", req.Dst, g.limits)
}

// run runs git with args; its output goes to stdout when given, else it is returned.
func (g *gitGetter) run(ctx context.Context, env []string, stdout io.Writer, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, g.git, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var out, stderr bytes.Buffer
	cmd.Stdout = &out
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Stderr = &capWriter{w: &stderr, left: 8 << 10}
	g.logger.Debug("running git", "args", args)
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("git %s: %w", gitVerb(args), ctxErr)
		}
		return nil, fmt.Errorf("git %s: %w: %s", gitVerb(args), err, strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}

// gitVerb is the subcommand in args, for messages.
func gitVerb(args []string) string {
	for i := 0; i < len(args); i++ {
		if args[i] == "--git-dir" {
			i++
			continue
		}
		return args[i]
	}
	return "git"
}

// capWriter keeps the first left bytes and discards the rest, noting that it did: an error from a
// command's output writer could leave the command blocked on a full pipe.
type capWriter struct {
	w    io.Writer
	left int64
	over bool
	err  error
}

func (c *capWriter) Write(p []byte) (int, error) {
	if c.err != nil || c.over {
		return len(p), nil
	}
	n := len(p)
	if int64(n) > c.left {
		p, c.over = p[:c.left], true
	}
	c.left -= int64(len(p))
	if _, err := c.w.Write(p); err != nil {
		c.err = err
	}
	return n, nil
}
