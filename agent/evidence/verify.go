package evidence

import (
	"archive/tar"
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/diff"
)

// Failure is a bundle that was read but does not verify: Path names the first file (or
// archive entry) that fails, as it appears in the archive.
type Failure struct {
	Path string
	Msg  string
}

func (f *Failure) Error() string { return f.Path + ": " + f.Msg }

// CorruptError is input that cannot be read as a bundle at all: not gzip, a truncated or
// damaged archive, limits exceeded by the stream as a whole.
type CorruptError struct{ Err error }

func (e *CorruptError) Error() string { return "cannot read the bundle: " + e.Err.Error() }
func (e *CorruptError) Unwrap() error { return e.Err }

// Limits bound what Verify reads, so that a hostile archive cannot exhaust memory.
type Limits struct {
	MaxEntries  int   // archive entries, files and directories
	MaxFileSize int64 // bytes of one file
	MaxTotal    int64 // bytes of all files
}

// DefaultLimits are generous for real bundles (artifacts are capped by the collector).
var DefaultLimits = Limits{MaxEntries: 100_000, MaxFileSize: 256 << 20, MaxTotal: 1 << 30}

// maxTrailer bounds the padding read after the end of the tar archive.
const maxTrailer = 1 << 20

// Verified describes a bundle that verified.
type Verified struct {
	Manifest *Manifest
	Files    int   // files in the archive, manifest and signature included
	Bytes    int64 // their total size
	Targets  []string
	// Signed is true when the bundle has a signature; SignatureChecked when it was verified
	// against the public key given.
	Signed           bool
	SignatureChecked bool
	// Signer is the fingerprint of the key that signed the bundle: the key given when the
	// signature was checked, else what the manifest says.
	Signer string
	// Operators are the operator signatures of links and incident records (format 2), each
	// verified over what it signed; whether the key is allowed is the caller's to check.
	Operators []OperatorSignature
	// Sealed is what the attestation and timestamp beside the manifest say, when present.
	Sealed *Sealed
}

// Verify reads a bundle from r and checks it entirely in memory (nothing is written anywhere):
//   - the archive's structure: only regular files and directories, relative clean names
//     without "..", every entry under one top directory named like an incident, no
//     duplicate names, no special mode bits, within limits;
//   - the signature of manifest.json, when pub is not nil (the bundle must be signed by it);
//   - every file against the manifest's SHA-256 and size, with no file missing or unlisted;
//   - the manifest's artifacts against the files, and each diff: every diff/TARGET/ARTIFACT.diff
//     applied to before/ gives after/, and diff/combined.diff applied to the whole of before/
//     gives after/ exactly, but for binary artifacts, which are listed by hash;
//   - the attestation and timestamp beside the manifest, when present (see WithTSARoots).
//
// It returns a *Failure naming the first file that fails, or a *CorruptError for input that
// is not a readable bundle.
func Verify(r io.Reader, pub ed25519.PublicKey, lim Limits, opts ...Option) (*Verified, error) {
	top, files, err := readArchive(r, lim)
	if err != nil {
		return nil, err
	}
	fail := func(p, format string, args ...any) error {
		return &Failure{Path: top + "/" + p, Msg: fmt.Sprintf(format, args...)}
	}
	raw, ok := files[ManifestName]
	if !ok {
		return nil, fail(ManifestName, "missing: this is not a hardtrail evidence bundle, or its manifest was removed")
	}
	sig, signed := files[SignatureName]
	if signed && len(sig) != ed25519.SignatureSize {
		return nil, fail(SignatureName, "%d bytes, not an ed25519 signature (%d bytes)", len(sig), ed25519.SignatureSize)
	}
	v := &Verified{Signed: signed}
	if pub != nil {
		fp := Fingerprint(pub)
		if !signed {
			return nil, fail(SignatureName, "missing: the bundle is not signed, so it cannot be checked against key %s", fp)
		}
		if !ed25519.Verify(pub, raw, sig) {
			return nil, fail(ManifestName, "signature does not verify with key %s: the manifest or its signature was altered, or another key signed it", fp)
		}
		v.SignatureChecked, v.Signer = true, fp
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fail(ManifestName, "not a valid manifest: %v", err)
	}
	if dec.More() {
		return nil, fail(ManifestName, "not a valid manifest: data after the JSON document")
	}
	switch {
	case m.Format != Format && m.Format != FormatV1:
		return nil, fail(ManifestName, "format %q, want %q (or %q)", m.Format, Format, FormatV1)
	case m.Incident != top:
		return nil, fail(ManifestName, "is for incident %q, but the bundle's directory is %s", m.Incident, top)
	case m.SignedBy != "" && !signed:
		return nil, fail(SignatureName, "missing, but the manifest says %s signed the bundle", m.SignedBy)
	case v.SignatureChecked && m.SignedBy != v.Signer:
		return nil, fail(ManifestName, "names signer %q, but key %s signed it", m.SignedBy, v.Signer)
	}
	if !v.SignatureChecked {
		v.Signer = m.SignedBy
	}
	v.Manifest = &m
	if err := checkFiles(&m, files, fail); err != nil {
		return nil, err
	}
	if err := checkArtifacts(&m, files, fail); err != nil {
		return nil, err
	}
	if m.Format == Format {
		if err := checkV2(&m, files, v, fail); err != nil {
			return nil, err
		}
	}
	if v.Sealed, err = checkSealed(files, pub, opts, fail); err != nil {
		return nil, err
	}
	for _, c := range files {
		v.Files++
		v.Bytes += int64(len(c))
	}
	for _, t := range m.Targets {
		v.Targets = append(v.Targets, t.Target)
	}
	return v, nil
}

// readArchive reads the archive into memory with the structural checks, and returns the top
// directory and the files by path under it. When r can seek (a file), a first pass checks the
// structure, the limits and that there is a manifest while holding nothing but the manifest, so
// that an archive that is not a bundle is refused in bounded memory; only then are the files
// read, in a second pass that checks everything again.
func readArchive(r io.Reader, lim Limits) (string, map[string][]byte, error) {
	if rs, ok := r.(io.ReadSeeker); ok {
		if start, err := rs.Seek(0, io.SeekCurrent); err == nil {
			top, files, err := walkArchive(rs, lim, false)
			if err != nil {
				return "", nil, err
			}
			if _, ok := files[ManifestName]; !ok {
				return "", nil, &Failure{Path: top + "/" + ManifestName, Msg: "missing: this is not a hardtrail evidence bundle, or its manifest was removed"}
			}
			if _, err := rs.Seek(start, io.SeekStart); err != nil {
				return "", nil, &CorruptError{fmt.Errorf("rewind for the second pass: %w", err)}
			}
		}
	}
	return walkArchive(r, lim, true)
}

// walkArchive reads the archive with the structural checks. It holds the content of every
// file when all is set, else only the manifest's and its signature's.
func walkArchive(r io.Reader, lim Limits, all bool) (string, map[string][]byte, error) {
	br := bufio.NewReader(r)
	zr, err := gzip.NewReader(br)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return "", nil, &CorruptError{errors.New("the file is empty")}
		}
		return "", nil, &CorruptError{fmt.Errorf("not a gzip file (%v)", err)}
	}
	zr.Multistream(false)
	tr := tar.NewReader(zr)
	top := ""
	files := map[string][]byte{}
	kinds := map[string]bool{} // every name seen: true for directories
	var total int64
	entries := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		// With GODEBUG=tarinsecurepath=0 the reader flags names that checkEntryName refuses
		// below anyway, naming the entry.
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && h != nil) {
			return "", nil, &CorruptError{fmt.Errorf("damaged or truncated tar archive after %d entries: %w", entries, err)}
		}
		entries++
		name := h.Name
		if entries > lim.MaxEntries {
			return "", nil, &Failure{Path: name, Msg: fmt.Sprintf("the archive has more than %d entries", lim.MaxEntries)}
		}
		isDir := false
		switch h.Typeflag {
		case tar.TypeReg:
		case tar.TypeDir:
			isDir = true
		case tar.TypeSymlink, tar.TypeLink:
			return "", nil, &Failure{Path: name, Msg: fmt.Sprintf("a link (to %q): a bundle holds only regular files and directories", h.Linkname)}
		default:
			return "", nil, &Failure{Path: name, Msg: fmt.Sprintf("entry type %s: a bundle holds only regular files and directories", typeName(h.Typeflag))}
		}
		clean, err := checkEntryName(name, isDir)
		if err != nil {
			return "", nil, &Failure{Path: name, Msg: err.Error()}
		}
		first, rest, _ := strings.Cut(clean, "/")
		switch {
		case top == "":
			if err := store.CheckIncidentID(first); err != nil {
				return "", nil, &Failure{Path: name, Msg: "the bundle's top directory must be named by its incident: " + err.Error()}
			}
			top = first
		case first != top:
			return "", nil, &Failure{Path: name, Msg: fmt.Sprintf("outside the bundle's top directory %s/", top)}
		}
		if !isDir && rest == "" {
			return "", nil, &Failure{Path: name, Msg: fmt.Sprintf("a file where the bundle's top directory %s/ should be", top)}
		}
		if h.Mode&^0o777 != 0 {
			return "", nil, &Failure{Path: name, Msg: fmt.Sprintf("mode %o has special bits (setuid, setgid or sticky)", h.Mode)}
		}
		if _, dup := kinds[clean]; dup {
			return "", nil, &Failure{Path: name, Msg: "appears twice in the archive"}
		}
		kinds[clean] = isDir
		if isDir {
			if h.Size != 0 {
				return "", nil, &Failure{Path: name, Msg: "a directory with content"}
			}
			continue
		}
		if h.Size < 0 || h.Size > lim.MaxFileSize {
			return "", nil, &Failure{Path: name, Msg: fmt.Sprintf("%d bytes, more than the limit of %d for one file", h.Size, lim.MaxFileSize)}
		}
		if total += h.Size; total > lim.MaxTotal {
			return "", nil, &Failure{Path: name, Msg: fmt.Sprintf("the files add up to more than the limit of %d bytes", lim.MaxTotal)}
		}
		if !all && rest != ManifestName && rest != SignatureName {
			if n, err := io.Copy(io.Discard, tr); err != nil || n != h.Size {
				return "", nil, &CorruptError{fmt.Errorf("%s: truncated: %w", name, cmp.Or(err, io.ErrUnexpectedEOF))}
			}
			files[rest] = nil
			continue
		}
		data := make([]byte, h.Size)
		if _, err := io.ReadFull(tr, data); err != nil {
			return "", nil, &CorruptError{fmt.Errorf("%s: truncated: %w", name, err)}
		}
		files[rest] = data
	}
	// The rest of the gzip member is tar padding; reading it checks the gzip checksum.
	n, err := io.Copy(zeroChecker{}, io.LimitReader(zr, maxTrailer+1))
	switch {
	case err != nil:
		return "", nil, &CorruptError{fmt.Errorf("after the tar archive: %w", err)}
	case n > maxTrailer:
		return "", nil, &CorruptError{fmt.Errorf("more than %d bytes of padding after the tar archive", maxTrailer)}
	}
	if _, err := br.ReadByte(); err == nil {
		return "", nil, &CorruptError{errors.New("data after the end of the gzip stream")}
	}
	if top == "" {
		return "", nil, &CorruptError{errors.New("the archive is empty")}
	}
	// A file must not stand where another entry needs a directory.
	for name := range kinds {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if isDir, ok := kinds[d]; ok && !isDir {
				return "", nil, &Failure{Path: d, Msg: "a file, but " + name + " is inside it"}
			}
		}
	}
	return top, files, nil
}

// zeroChecker accepts only zero bytes: tar pads its end with them.
type zeroChecker struct{}

func (zeroChecker) Write(p []byte) (int, error) {
	for _, c := range p {
		if c != 0 {
			return 0, errors.New("data after the end of the tar archive")
		}
	}
	return len(p), nil
}

func typeName(t byte) string {
	switch t {
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "FIFO"
	case tar.TypeXGlobalHeader:
		return "global PAX header"
	case tar.TypeGNUSparse:
		return "GNU sparse file"
	}
	return fmt.Sprintf("%q", t)
}

// checkEntryName returns the entry's name without a directory's trailing slash, or why it is
// refused.
func checkEntryName(name string, isDir bool) (string, error) {
	clean := name
	if isDir {
		clean = strings.TrimSuffix(name, "/")
	}
	switch {
	case name == "":
		return "", errors.New("an entry without a name")
	case strings.HasPrefix(name, "/"):
		return "", errors.New("an absolute path: a bundle holds only relative paths")
	case strings.ContainsRune(name, '\\'):
		return "", errors.New("a backslash in the name")
	}
	for _, c := range strings.Split(clean, "/") {
		if c == ".." {
			return "", errors.New("a path with \"..\": it would leave the directory it is extracted in")
		}
	}
	if !fs.ValidPath(clean) || clean == "." {
		return "", errors.New("not a clean relative path (empty, \".\" or repeated slashes)")
	}
	for _, c := range clean {
		if c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("a control character %q in the name", c)
		}
	}
	return clean, nil
}

// checkFiles compares the files with the manifest's list, in path order, so that the first
// difference is named.
func checkFiles(m *Manifest, files map[string][]byte, fail func(string, string, ...any) error) error {
	listed := map[string]File{}
	for _, f := range m.Files {
		if _, err := checkEntryName(f.Path, false); err != nil || outsideManifest(f.Path) {
			return fail(ManifestName, "lists file %q, which cannot be in a bundle", f.Path)
		}
		if _, dup := listed[f.Path]; dup {
			return fail(ManifestName, "lists file %s twice", f.Path)
		}
		listed[f.Path] = f
	}
	paths := make([]string, 0, len(files)+len(listed))
	for p := range files {
		if !outsideManifest(p) {
			paths = append(paths, p)
		}
	}
	for p := range listed {
		if _, ok := files[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		c, have := files[p]
		f, ok := listed[p]
		switch {
		case !ok:
			return fail(p, "not listed in the manifest: it was added to the bundle")
		case !have:
			return fail(p, "listed in the manifest but missing from the bundle")
		case int64(len(c)) != f.Size:
			return fail(p, "size mismatch: the manifest says %d bytes, the file has %d", f.Size, len(c))
		}
		if h := store.Hash(c); h != f.SHA256 {
			return fail(p, "sha256 mismatch: the manifest says %s, the file hashes to %s", f.SHA256, h)
		}
	}
	for _, p := range []string{ReportName, ResultsJSON, ResultsJUnit, CombinedDiff} {
		if _, ok := files[p]; !ok {
			return fail(p, "missing: every bundle has it")
		}
	}
	return nil
}

// checkArtifacts checks the manifest's artifacts against the files, each artifact's diff, and
// the combined diff.
func checkArtifacts(m *Manifest, files map[string][]byte, fail func(string, string, ...any) error) error {
	before, after := map[string][]byte{}, map[string][]byte{}
	for p, c := range files {
		if r, ok := strings.CutPrefix(p, BeforeDir+"/"); ok {
			before[r] = c
		} else if r, ok := strings.CutPrefix(p, AfterDir+"/"); ok {
			after[r] = c
		}
	}
	claimed := map[string]bool{} // files the manifest's artifacts account for
	binary := map[string]bool{}  // paths that the diffs leave alone
	diffs := map[string]bool{DiffDir + "/combined.diff": true}
	seenTargets := map[string]bool{}
	for _, t := range m.Targets {
		if seenTargets[t.Target] || !store.ValidTarget(t.Target) {
			return fail(ManifestName, "target %q is invalid or listed twice", t.Target)
		}
		seenTargets[t.Target] = true
		if !t.Exported && len(t.Artifacts) > 0 {
			return fail(ManifestName, "target %s is not exported but lists artifacts", t.Target)
		}
		prev := ""
		for _, a := range t.Artifacts {
			if err := checkName(a.Name); err != nil || a.Name <= prev {
				return fail(ManifestName, "target %s: artifact %q is invalid or out of order", t.Target, a.Name)
			}
			prev = a.Name
			p := t.Target + "/" + a.Name
			for _, side := range []struct {
				dir  string
				v    *Version
				tree map[string][]byte
			}{{BeforeDir, a.Before, before}, {AfterDir, a.After, after}} {
				c, have := side.tree[p]
				avail := side.v.captured()
				switch {
				case avail && !have:
					return fail(side.dir+"/"+p, "missing: the manifest lists the artifact as captured")
				case !avail && have:
					return fail(side.dir+"/"+p, "present, but the manifest lists the artifact as absent or not captured")
				case avail && (store.Hash(c) != side.v.SHA256 || int64(len(c)) != side.v.Size):
					return fail(side.dir+"/"+p, "does not match the artifact's hash and size in the manifest")
				case avail && side.v.Binary != diff.IsBinary(c):
					return fail(side.dir+"/"+p, "the manifest's binary flag is wrong for this content")
				}
				if have {
					claimed[side.dir+"/"+p] = true
				}
			}
			isBinary := a.Before != nil && a.Before.Binary || a.After != nil && a.After.Binary
			if isBinary {
				binary[p] = true
			}
			if a.Diff == "" {
				continue
			}
			if a.Diff != DiffDir+"/"+p+".diff" || isBinary {
				return fail(ManifestName, "target %s: artifact %s: diff %q is not where a bundle puts it", t.Target, a.Name, a.Diff)
			}
			diffs[a.Diff] = true
			d, ok := files[a.Diff]
			if !ok {
				return fail(a.Diff, "missing: the manifest lists it as the artifact's diff")
			}
			tree := map[string][]byte{}
			if c, ok := before[p]; ok {
				tree[p] = c
			}
			segs, err := splitDiff(d)
			if err == nil && (len(segs) != 1 || segs[0].path != p) {
				err = fmt.Errorf("want the diff of %s alone", p)
			}
			if err == nil {
				err = applyDiff(d, tree)
			}
			if err != nil {
				return fail(a.Diff, "%v", err)
			}
			if q, why := treeDiff(tree, onlyPath(after, p)); q != "" {
				return fail(a.Diff, "applied to %s/%s, it does not give %s/%s: %s", BeforeDir, p, AfterDir, p, why)
			}
		}
	}
	for p := range files {
		switch {
		case strings.HasPrefix(p, BeforeDir+"/") || strings.HasPrefix(p, AfterDir+"/"):
			if !claimed[p] {
				return fail(p, "not an artifact of any target in the manifest")
			}
		case strings.HasPrefix(p, DiffDir+"/"):
			if !diffs[p] {
				return fail(p, "not a diff of any artifact in the manifest")
			}
		}
	}
	// The combined diff turns before/ into after/, binary artifacts aside.
	tree := map[string][]byte{}
	for p, c := range before {
		tree[p] = c
	}
	if err := applyDiff(files[CombinedDiff], tree); err != nil {
		return fail(CombinedDiff, "does not apply to %s/: %v", BeforeDir, err)
	}
	want := map[string][]byte{}
	for p, c := range after {
		want[p] = c
	}
	for p := range binary {
		delete(tree, p)
		delete(want, p)
	}
	if q, why := treeDiff(tree, want); q != "" {
		return fail(CombinedDiff, "applied to %s/, it does not give %s/: %s %s", BeforeDir, AfterDir, q, why)
	}
	return nil
}

func onlyPath(tree map[string][]byte, p string) map[string][]byte {
	out := map[string][]byte{}
	if c, ok := tree[p]; ok {
		out[p] = c
	}
	return out
}
