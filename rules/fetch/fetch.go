// Package fetch downloads rule packs from allow-listed sources and installs them only after every file is checked.
//
// A rule pack fetched from elsewhere is hostile input. Fetch accepts only explicit sources (no
// guessing of shorthands), downloads through a go-getter client that holds only its own https, git
// and file getters, and requires a SHA-256 for anything over https and a full commit ID for git.
// It unpacks into a temporary directory beside the destination, refuses archive entries that are
// links, devices, absolute or escaping paths, walks the result with Lstat (nothing but directories
// and regular *.toml files, plus README, LICENSE, COPYING and NOTICE), enforces size and count
// limits, runs the caller's linter, and only then renames the directory into place. On any failure
// the destination is left as it was and the temporary directory is removed. A git source is fetched
// as that one commit and exported with git archive, so the fetched repository's submodules are never
// contacted and its tree meets the same checks as a downloaded archive. README, LICENSE, COPYING and
// NOTICE are accepted beside the rules because publishers ship them and nothing loads or runs them.
//
// Accepted sources:
//
//	https://HOST/PATH.tar.gz?checksum=sha256:HEX   (also .tgz and .tar; other query parameters,
//	                                                such as a presigned URL's, go to the server)
//	https://HOST/PATH/NAME.toml?checksum=sha256:HEX a single rule file
//	git::https://HOST/REPO?ref=COMMIT               a commit: 40 hex digits (64 for SHA-256 repositories)
//	git::file:///PATH?ref=COMMIT
//	file:///PATH                                    a directory, a .toml file or an archive;
//	/PATH                                           ?checksum=sha256:HEX is optional for files
//
// Archives and git sources may select a directory with //SUBDIR before the query
// (https://HOST/pack.tar.gz//rules?checksum=..., git::https://HOST/REPO//packs/cis?ref=...): only
// that directory is installed and has to follow the pack's rules. The destination is always a
// directory; a single rule file is installed inside it under its own name.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	getter "github.com/hashicorp/go-getter/v2"

	"github.com/hardtrail/hardtrail/internal/buildinfo"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxBytes     = 8 << 20
	DefaultMaxFileBytes = 1 << 20
	DefaultMaxFiles     = 500
	DefaultTimeout      = 2 * time.Minute
)

// ErrRefused is wrapped by every error that refuses a source for its form or its content (as
// opposed to failing to reach or read it): errors.Is(err, ErrRefused).
var ErrRefused = errors.New("refused")

// Options configure a Fetch. Zero values take the defaults.
type Options struct {
	// MaxBytes bounds the files of the pack together (default 8 MiB). An archive may be larger than
	// this by its tar framing.
	MaxBytes int64
	// MaxFileBytes bounds any one file (default 1 MiB).
	MaxFileBytes int64
	// MaxFiles bounds the number of files (default 500); directories may number about twice that.
	MaxFiles int
	// Timeout bounds the whole fetch, lint included (default 2 minutes). For git sources the
	// transfer itself is bounded only by time: the limits apply to the commit's tree.
	Timeout time.Duration

	// Lint is required. It is given the checked pack's directory (a temporary path beside the
	// destination, so its messages read best with paths relative to dir) and must return an error
	// if the pack is not fit to install, for example when the rules do not load.
	Lint func(ctx context.Context, dir string) error

	// HTTPClient is used for https sources (nil: a client with the system's roots and the proxy
	// from the environment). Its transport is wrapped so that only https requests leave, redirects
	// included, and so that a response body past the limits is an error.
	HTTPClient *http.Client

	// Logger receives progress at debug level and the installed pack at info level (nil: discard).
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Lint == nil {
		return o, errors.New("fetch: Options.Lint is required")
	}
	if o.MaxBytes < 0 || o.MaxFileBytes < 0 || o.MaxFiles < 0 || o.Timeout < 0 {
		return o, errors.New("fetch: negative limit in Options")
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxFiles == 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

func (o Options) limits() limits {
	return limits{maxBytes: o.MaxBytes, maxFileBytes: o.MaxFileBytes, maxFiles: o.MaxFiles}
}

// Fetch downloads the rule pack that source names (see the package documentation for the accepted
// forms), checks every file, runs opt.Lint on it, and installs it as the directory dst.
//
// dst's parent directory must exist. The pack is fetched into a new temporary directory in that
// parent and renamed into place. If dst already exists it must be a directory that itself looks
// like a rule pack (directories and accepted file names only, no links), so that a mistyped
// destination such as /etc is refused rather than replaced; it is replaced by renaming it aside,
// renaming the new pack in and removing the old one, so between the two renames dst is briefly
// absent, and if the second rename fails the old pack is renamed back. Two fetches to the same dst
// must not run at once.
//
// On any error nothing is left at dst (an existing pack stays as it was) and the temporary
// directory is removed.
func Fetch(ctx context.Context, source, dst string, opt Options) error {
	src, err := parseSource(source)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", redactRaw(source), err)
	}
	if opt, err = opt.withDefaults(); err != nil {
		return err
	}
	if err := fetch(ctx, src, dst, opt); err != nil {
		return fmt.Errorf("fetch %s: %w", src, err)
	}
	return nil
}

func fetch(ctx context.Context, src *source, dst string, opt Options) (err error) {
	dst, err = filepath.Abs(dst)
	if err != nil {
		return err
	}
	parent, base := filepath.Dir(dst), filepath.Base(dst)
	if dst == parent {
		return fmt.Errorf("destination %s is not a directory that can be replaced", dst)
	}
	if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
		return fmt.Errorf("destination's parent %s must be an existing directory", parent)
	}
	if err := checkReplaceable(dst); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	staging, err := os.MkdirTemp(parent, "."+base+".fetch-")
	if err != nil {
		return err
	}
	keepStaging := false
	defer func() {
		if !keepStaging {
			if rerr := os.RemoveAll(staging); rerr != nil && err == nil {
				err = rerr
			}
		}
	}()

	opt.Logger.Debug("fetching rule pack", "source", src.String(), "dst", dst)
	root, err := download(ctx, src, staging, opt)
	if err != nil {
		return err
	}
	st, err := treeCheck{limits: opt.limits(), normalise: true}.run(root)
	if err != nil {
		return err
	}
	if st.rules == 0 {
		return refusef("no rule files (*.toml) in the pack")
	}
	if err := syncTree(root); err != nil {
		return err
	}
	if err := opt.Lint(ctx, root); err != nil {
		return &refusal{msg: "the rule pack does not lint", err: err}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	keepStaging, err = install(root, dst, staging)
	if err != nil {
		return err
	}
	opt.Logger.Info("installed rule pack", "source", src.String(), "dst", dst, "files", st.files, "bytes", st.bytes)
	return nil
}

// checkReplaceable refuses a destination that exists but is not a directory that looks like a
// rule pack.
func checkReplaceable(dst string) error {
	fi, err := os.Lstat(dst)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("destination %s exists and is %s, not a directory", dst, describe(fi.Mode()))
	}
	unbounded := limits{maxBytes: 1 << 62, maxFileBytes: 1 << 62, maxFiles: 1 << 30}
	if _, err := (treeCheck{limits: unbounded}).run(dst); err != nil {
		return fmt.Errorf("destination %s exists and does not look like a rule pack, so it is not replaced (%w); "+
			"remove it or choose another directory", dst, err)
	}
	return nil
}

// download fetches src into staging and returns the directory that is to become the pack.
func download(ctx context.Context, src *source, staging string, opt Options) (string, error) {
	l := opt.limits()
	client, done, err := newClient(src, opt)
	if err != nil {
		return "", err
	}
	defer done()
	pack := filepath.Join(staging, "pack")
	get := func(dst string, mode getter.Mode) error {
		req := &getter.Request{Src: src.getterSrc(), Dst: dst, GetMode: mode, Umask: 0o022, DisableSymlinks: true}
		if _, err := client.Get(ctx, req); err != nil {
			return downloadErr(err)
		}
		return nil
	}

	switch src.shape {
	case shapeFile:
		if err := os.Mkdir(pack, 0o755); err != nil {
			return "", err
		}
		file := filepath.Join(pack, src.name)
		if err := get(file, getter.ModeFile); err != nil {
			return "", err
		}
		return pack, verifySum(file, src.checksum)
	case shapeArchive:
		archive := filepath.Join(staging, "download")
		if err := get(archive, getter.ModeFile); err != nil {
			return "", err
		}
		if err := verifySum(archive, src.checksum); err != nil {
			return "", err
		}
		if err := extractArchive(archive, src.format, pack, l); err != nil {
			return "", err
		}
		if err := os.Remove(archive); err != nil {
			return "", err
		}
		return selectSubdir(pack, src.subdir)
	default:
		return pack, get(pack, getter.ModeDir)
	}
}

// newClient returns a go-getter client for src that holds only the allow-listed getters and no
// decompressors, and a function to call when the client is no longer needed.
func newClient(src *source, opt Options) (*getter.Client, func(), error) {
	l := opt.limits()
	fileLimit := l.maxFileBytes
	if src.shape == shapeArchive {
		fileLimit = l.maxStream()
	}
	git := &gitGetter{subdir: src.subdir, limits: l, logger: opt.Logger}
	if src.kind == kindGit {
		p, err := exec.LookPath("git")
		if err != nil {
			return nil, nil, fmt.Errorf("git sources need the git program: %w", err)
		}
		git.git = p
	}
	httpClient, done := guardedClient(opt.HTTPClient, fileLimit)
	return &getter.Client{
		Getters: []getter.Getter{
			newHTTPSGetter(httpClient),
			&fileGetter{limits: l, fileLimit: fileLimit},
			git,
		},
		Decompressors:   map[string]getter.Decompressor{}, // archives are unpacked after a scan
		DisableSymlinks: true,
	}, done, nil
}

// downloadErr rewrites go-getter's errors where they would mislead or leak: a checksum mismatch
// names expected and actual sums, and an HTTP error loses the URL (its query may be a presigned
// URL's signature).
func downloadErr(err error) error {
	var ce *getter.ChecksumError
	if errors.As(err, &ce) {
		return refusef("checksum mismatch: expected sha256:%x, got sha256:%x", ce.Expected, ce.Actual)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// verifySum checks a downloaded file's SHA-256 itself, whatever go-getter did.
func verifySum(file string, want []byte) error {
	if want == nil {
		return nil
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := h.Sum(nil); string(got) != string(want) {
		return refusef("checksum mismatch: expected sha256:%s, got sha256:%s", hex.EncodeToString(want), hex.EncodeToString(got))
	}
	return nil
}

// install renames root to dst, first renaming an existing dst into staging (which the caller
// removes). keep is true when the old pack could not be restored and staging must be kept.
func install(root, dst, staging string) (keep bool, err error) {
	parent := filepath.Dir(dst)
	if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(root, dst); err != nil {
			return false, err
		}
		syncDir(parent)
		return false, nil
	}
	if err := checkReplaceable(dst); err != nil { // again: it may have changed during the fetch
		return false, err
	}
	old := filepath.Join(staging, "previous")
	if err := os.Rename(dst, old); err != nil {
		return false, fmt.Errorf("move the existing pack aside: %w", err)
	}
	if err := os.Rename(root, dst); err != nil {
		if rerr := os.Rename(old, dst); rerr != nil {
			return true, fmt.Errorf("install: %w; restoring the previous pack also failed (%v): it is at %s", err, rerr, old)
		}
		return false, fmt.Errorf("install: %w", err)
	}
	syncDir(parent)
	return false, nil
}

// syncDir flushes a directory's entries. The pack is in place by then, so a failure only weakens
// durability across a crash and is not reported as a failed fetch.
func syncDir(dir string) { _ = syncPath(dir) }

func userAgent() string { return "hardtrail/" + buildinfo.Version }

// refusal is an error that refuses a source; it matches ErrRefused and wraps an optional cause.
type refusal struct {
	msg string
	err error
}

func (r *refusal) Error() string {
	if r.err != nil {
		return r.msg + ": " + r.err.Error()
	}
	return r.msg
}

func (r *refusal) Is(target error) bool { return target == ErrRefused }
func (r *refusal) Unwrap() error        { return r.err }

func refusef(format string, args ...any) error {
	return &refusal{msg: fmt.Sprintf(format, args...)}
}
