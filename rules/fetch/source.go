package fetch

import (
	"encoding/hex"
	"io/fs"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"unicode"

	getter "github.com/hashicorp/go-getter/v2"
)

// acceptedForms is appended to every refusal of a source's form, so the message says what to write.
const acceptedForms = "accepted sources: https://HOST/PATH.tar.gz (or .tgz, .tar, .toml)?checksum=sha256:HEX, " +
	"git::https://HOST/REPO?ref=COMMIT, git::file:///PATH?ref=COMMIT, file:///PATH, or an absolute path; " +
	"archives and git sources may select a directory with //SUBDIR before the ?"

// kind is the transport a source is fetched with.
type kind int

const (
	kindHTTPS kind = iota + 1
	kindGit
	kindFile
)

// shape is what a source names.
type shape int

const (
	shapeDir     shape = iota + 1 // a directory (a git commit, or a local directory)
	shapeFile                     // one rule file
	shapeArchive                  // a tar archive, compressed or not
)

// Archive formats accepted, by file name suffix, and the go-getter decompressor key of each.
var archiveSuffixes = []struct{ suffix, format string }{
	{".tar.gz", "tar.gz"},
	{".tgz", "tar.gz"},
	{".tar", "tar"},
}

// Suffixes of archives that go-getter could unpack but that packs may not use: refusing them by
// name gives a clear message instead of treating the file as a directory or a rule file.
var refusedArchiveSuffixes = []string{
	".zip", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst", ".tzst", ".bz2", ".xz", ".zst", ".gz",
}

var (
	// forcedRe is go-getter's own "GETTER::URL" syntax.
	forcedRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([A-Za-z0-9]+)::(.+)$`) })
	schemeRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`) })
	commitRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(?:[0-9a-f]{40}|[0-9a-f]{64})$`) })
	// subdirElemRe limits //SUBDIR elements to plain names, with no globbing or escaping.
	subdirElemRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_+@-][A-Za-z0-9._+@-]*$`) })
)

// source is a parsed, validated fetch source.
type source struct {
	kind     kind
	shape    shape
	url      *url.URL // without //SUBDIR; for https with the server's own query parameters
	path     string   // kindFile: the local path
	format   string   // shapeArchive: "tar.gz" or "tar"
	name     string   // shapeFile: the rule file's name
	checksum []byte   // SHA-256, or nil when none was given
	ref      string   // kindGit: the commit ID, lower-case hex
	subdir   string   // the //SUBDIR selected from an archive or a git commit, or ""
}

// IsRemote reports whether source is written as a fetch source (a URL such as https://... or
// file://..., or a forced getter such as git::...) rather than as a plain local path. It looks at the
// form only: a plain path is read in place by the caller; anything else goes through Fetch, which
// refuses the forms it does not accept with a message that lists the ones it does.
func IsRemote(source string) bool {
	return forcedRe().MatchString(source) || schemeRe().MatchString(source)
}

// CheckSource returns nil if Fetch would accept the form of source, or an error saying what is
// wrong and which forms are accepted. It does no I/O.
func CheckSource(source string) error {
	_, err := parseSource(source)
	return err
}

// Pinned reports whether source names fixed content: a file or an archive with a SHA-256
// checksum, or a git commit. Every https and git source Fetch accepts is pinned; a file source
// is pinned only with ?checksum. A pack fetched once from a pinned source can be kept and
// used again without fetching it. A source Fetch would refuse is not pinned.
func Pinned(source string) bool {
	src, err := parseSource(source)
	return err == nil && (src.kind == kindGit || src.checksum != nil)
}

// parseSource validates a source string and splits it into its parts. It is strict on purpose: no
// detector guesses, no getter other than https, git and file, a checksum for anything over https,
// a full commit ID for git.
func parseSource(s string) (*source, error) {
	if s == "" {
		return nil, refusef("empty source; %s", acceptedForms)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return nil, refusef("source contains control characters")
	}
	forced, rest := "", s
	if m := forcedRe().FindStringSubmatch(s); m != nil {
		forced, rest = m[1], m[2]
		if forced != "git" {
			return nil, refusef("getter %q is not allowed (only https, git and file are); %s", forced, acceptedForms)
		}
	}
	if forced == "" && strings.HasPrefix(rest, "/") {
		return parsePath(rest)
	}
	base, sub := getter.SourceDirSubdir(rest)
	u, err := url.Parse(base)
	if err != nil {
		return nil, refusef("not a valid URL: %v; %s", err, acceptedForms)
	}
	switch {
	case u.Scheme == "":
		return nil, refusef("neither an absolute path nor a URL; relative paths and shorthands such as "+
			"github.com/ORG/REPO are not guessed; %s", acceptedForms)
	case u.Opaque != "" || !schemeRe().MatchString(base):
		return nil, refusef("URL has no // after %q; %s", u.Scheme+":", acceptedForms)
	case u.Fragment != "" || strings.Contains(base, "#"):
		return nil, refusef("URL fragments (#...) are not accepted")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, refusef("bad query string: %v", err)
	}
	src := &source{}
	if sub != "" {
		if src.subdir, err = parseSubdir(sub); err != nil {
			return nil, err
		}
	}
	if forced == "git" {
		if u.Scheme != "https" && u.Scheme != "file" {
			return nil, refusef("git sources must use https:// or file://, not %q; %s", u.Scheme, acceptedForms)
		}
		if err := checkNoUser(u); err != nil {
			return nil, err
		}
		return src.parseGit(u, q)
	}
	switch u.Scheme {
	case "https", "file":
	case "http":
		return nil, refusef("plain http is not accepted: use https with ?checksum=sha256:HEX")
	default:
		return nil, refusef("scheme %q is not allowed (only https, git and file are); %s", u.Scheme, acceptedForms)
	}
	if err := checkNoUser(u); err != nil {
		return nil, err
	}
	if u.Scheme == "https" {
		return src.parseHTTPS(u, q)
	}
	return src.parseFileURL(u, q)
}

func checkNoUser(u *url.URL) error {
	if u.User != nil {
		return refusef("credentials in the URL are not accepted; use a credential helper or a presigned https URL")
	}
	return nil
}

// parsePath takes an absolute local path literally: no query, no escapes, no //SUBDIR.
func parsePath(p string) (*source, error) {
	src := &source{kind: kindFile, path: path.Clean(p)}
	if err := src.classify(src.path); err != nil {
		return nil, err
	}
	src.url = &url.URL{Scheme: "file", Path: src.path}
	return src, nil
}

func (src *source) parseHTTPS(u *url.URL, q url.Values) (*source, error) {
	src.kind = kindHTTPS
	if u.Host == "" {
		return nil, refusef("https URL has no host")
	}
	for _, k := range []string{"archive", "filename"} {
		if q.Has(k) {
			return nil, refusef("query parameter %q is not accepted: the path's suffix says what the source is", k)
		}
	}
	if err := src.classify(u.Path); err != nil {
		return nil, err
	}
	if src.shape == shapeDir {
		return nil, refusef("an https source must name a .tar.gz, .tgz or .tar archive or a single .toml file, not %q", u.Path)
	}
	sum, err := parseChecksum(q)
	if err != nil {
		return nil, err
	}
	if sum == nil {
		return nil, refusef("https sources need ?checksum=sha256:HEX (the SHA-256 of the file the URL names)")
	}
	src.checksum = sum
	q.Del("checksum")
	src.url = &url.URL{Scheme: "https", Host: u.Host, Path: u.Path, RawPath: u.RawPath, RawQuery: q.Encode()}
	return src, src.checkSubdirUse()
}

func (src *source) parseFileURL(u *url.URL, q url.Values) (*source, error) {
	src.kind = kindFile
	if u.Host != "" {
		return nil, refusef("file URLs name a local path: write file:///PATH (three slashes), not host %q", u.Host)
	}
	if !strings.HasPrefix(u.Path, "/") {
		return nil, refusef("file URL path must be absolute")
	}
	for k := range q {
		if k != "checksum" {
			return nil, refusef("query parameter %q is not accepted on file sources (only checksum is)", k)
		}
	}
	src.path = path.Clean(u.Path)
	if err := src.classify(src.path); err != nil {
		return nil, err
	}
	sum, err := parseChecksum(q)
	if err != nil {
		return nil, err
	}
	if sum != nil && src.shape == shapeDir {
		return nil, refusef("a checksum applies to a file or an archive, not to a directory")
	}
	src.checksum = sum
	if src.shape == shapeDir && src.subdir != "" {
		// A directory's //SUBDIR is just a longer path.
		src.path, src.subdir = path.Join(src.path, src.subdir), ""
	}
	src.url = &url.URL{Scheme: "file", Path: src.path}
	return src, src.checkSubdirUse()
}

func (src *source) parseGit(u *url.URL, q url.Values) (*source, error) {
	src.kind, src.shape = kindGit, shapeDir
	if u.Scheme == "https" && u.Host == "" {
		return nil, refusef("git https URL has no host")
	}
	if u.Scheme == "file" {
		if u.Host != "" {
			return nil, refusef("git file URLs name a local path: write git::file:///PATH, not host %q", u.Host)
		}
		if !strings.HasPrefix(u.Path, "/") {
			return nil, refusef("git file URL path must be absolute")
		}
	}
	for k := range q {
		if k != "ref" {
			return nil, refusef("query parameter %q is not accepted on git sources (only ref is)", k)
		}
	}
	refs := q["ref"]
	switch {
	case len(refs) == 0 || refs[0] == "":
		return nil, refusef("git sources need ?ref=COMMIT: pin a commit (its full 40-hex ID)")
	case len(refs) > 1:
		return nil, refusef("more than one ref given")
	}
	ref := strings.ToLower(refs[0])
	if !commitRe().MatchString(ref) {
		return nil, refusef("ref %q is not a full commit ID: pin a commit (40 hex digits; branch and tag names move)", refs[0])
	}
	src.ref = ref
	p := u.Path
	if u.Scheme == "file" {
		p = path.Clean(p)
	}
	src.url = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: p}
	return src, nil
}

// classify sets shape, format and name from the suffix of the path a source names.
func (src *source) classify(p string) error {
	lower := strings.ToLower(p)
	for _, a := range archiveSuffixes {
		if strings.HasSuffix(lower, a.suffix) {
			src.shape, src.format = shapeArchive, a.format
			return nil
		}
	}
	for _, suf := range refusedArchiveSuffixes {
		if strings.HasSuffix(lower, suf) {
			return refusef("archive format %q is not accepted; publish the pack as .tar.gz", suf)
		}
	}
	if strings.HasSuffix(p, ".toml") {
		src.shape, src.name = shapeFile, path.Base(p)
		if err := checkName(src.name, false); err != nil {
			return err
		}
		return nil
	}
	src.shape = shapeDir
	return nil
}

func (src *source) checkSubdirUse() error {
	if src.subdir != "" && src.shape == shapeFile {
		return refusef("//SUBDIR applies to archives and git sources, not to a single file")
	}
	return nil
}

func parseSubdir(sub string) (string, error) {
	sub = strings.TrimSuffix(sub, "/")
	if !fs.ValidPath(sub) || sub == "." {
		return "", refusef("subdirectory %q is not a plain relative path", sub)
	}
	for _, el := range strings.Split(sub, "/") {
		if !subdirElemRe().MatchString(el) {
			return "", refusef("subdirectory %q: element %q may hold only letters, digits and ._+@- "+
				"and may not start with a dot", sub, el)
		}
	}
	return sub, nil
}

// parseChecksum returns the SHA-256 named by ?checksum=sha256:HEX, or nil when absent.
func parseChecksum(q url.Values) ([]byte, error) {
	vs := q["checksum"]
	switch len(vs) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, refusef("more than one checksum given")
	}
	typ, val, ok := strings.Cut(vs[0], ":")
	if !ok || strings.ToLower(typ) != "sha256" {
		return nil, refusef("checksum must be written sha256:HEX (other types and checksum files are not accepted)")
	}
	sum, err := hex.DecodeString(val)
	if err != nil || len(sum) != 32 {
		return nil, refusef("checksum sha256:%s is not 64 hex digits", val)
	}
	return sum, nil
}

// getterSrc is the source as go-getter is given it: explicit getter and scheme, no //SUBDIR (this
// package selects subdirectories itself), the checksum for go-getter to verify as well.
func (src *source) getterSrc() string {
	u := *src.url
	switch src.kind {
	case kindGit:
		u.RawQuery = url.Values{"ref": {src.ref}}.Encode()
		return "git::" + u.String()
	default:
		if src.checksum != nil {
			q := u.Query()
			q.Set("checksum", "sha256:"+hex.EncodeToString(src.checksum))
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
}

// canonical is the source in the form parseSource accepts, with every part spelt out.
func (src *source) canonical() string {
	return src.render(true)
}

// String is the source for messages and logs: the https server's own query parameters (such as the
// signature of a presigned URL) are left out.
func (src *source) String() string {
	return src.render(false)
}

func (src *source) render(full bool) string {
	u := *src.url
	var query []string
	if enc := u.Query().Encode(); full && enc != "" {
		query = append(query, enc) // the https server's own parameters
	}
	prefix := ""
	switch {
	case src.kind == kindGit:
		prefix = "git::"
		query = append(query, "ref="+src.ref)
	case src.checksum != nil:
		query = append(query, "checksum=sha256:"+hex.EncodeToString(src.checksum))
	}
	u.RawQuery = ""
	s := prefix + u.String()
	if src.subdir != "" {
		s += "//" + src.subdir
	}
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// redactRaw shortens a source that did not parse for an error message: the query string may hold a
// presigned URL's signature.
func redactRaw(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		return s[:i] + "?..."
	}
	return s
}
