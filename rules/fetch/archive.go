package fetch

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode"

	getter "github.com/hashicorp/go-getter/v2"
)

// extractArchive unpacks a tar archive (format "tar" or "tar.gz") into dst, which must not exist.
// It reads the whole archive first and refuses it unless every entry is a regular file or a
// directory with a plain relative name, within limits; only then does go-getter's decompressor
// (with its own limits as a backstop) write anything. The scan comes first because go-getter's
// untar turns symlink, hard-link and device entries into empty regular files and writes absolute
// names under dst without a word: a walk of the result alone could not see them.
func extractArchive(archive, format, dst string, l limits) error {
	if err := scanArchive(archive, format, l); err != nil {
		return err
	}
	d, ok := getter.LimitedDecompressors(l.maxEntries()+2, l.maxBytes)[format]
	if !ok {
		return fmt.Errorf("archive format %q has no decompressor", format)
	}
	if err := d.Decompress(dst, archive, true, 0o022); err != nil {
		return fmt.Errorf("extract archive: %w", err)
	}
	return nil
}

// scanArchive reads a tar archive to its end and refuses it at the first entry that is not a
// regular file or a directory, whose name is absolute, escapes with "..", or repeats an earlier
// entry, or that breaks a limit.
func scanArchive(archive, format string, l limits) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = &capReader{r: f, left: l.maxStream()}
	if format == "tar.gz" {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return refusef("not a gzip archive: %v", err)
		}
		defer zr.Close()
		r = &capReader{r: zr, left: l.maxStream()}
	}
	return scanTar(r, l)
}

// scanTar checks the entries of an uncompressed tar stream; see scanArchive.
func scanTar(r io.Reader, l limits) error {
	tr := tar.NewReader(r)
	seen := map[string]bool{}
	var entries, files int
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if entries == 0 {
				return refusef("the archive is empty")
			}
			return nil
		}
		if err != nil {
			return archiveErr(err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue // metadata for the whole archive (git archive records the commit here)
		}
		entries++
		if entries > l.maxEntries() {
			return refusef("the archive has more than %d entries", l.maxEntries())
		}
		if err := checkEntryName(h.Name); err != nil {
			return err
		}
		key := path.Clean(h.Name)
		if seen[key] {
			return refusef("archive entry %q appears twice", h.Name)
		}
		seen[key] = true
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		case tar.TypeSymlink:
			return refusef("archive entry %q is a symlink (to %q); symlinks are not accepted", h.Name, h.Linkname)
		case tar.TypeLink:
			return refusef("archive entry %q is a hard link (to %q); hard links are not accepted", h.Name, h.Linkname)
		case tar.TypeChar, tar.TypeBlock:
			return refusef("archive entry %q is a device; only regular files and directories are accepted", h.Name)
		case tar.TypeFifo:
			return refusef("archive entry %q is a named pipe; only regular files and directories are accepted", h.Name)
		default:
			return refusef("archive entry %q has type %q; only regular files and directories are accepted", h.Name, h.Typeflag)
		}
		files++
		if files > l.maxFiles {
			return refusef("too many files: the archive holds more than %d", l.maxFiles)
		}
		if h.Size > l.maxFileBytes {
			return refusef("archive entry %q is %d bytes, over the per-file limit of %d", h.Name, h.Size, l.maxFileBytes)
		}
		total += h.Size
		if total > l.maxBytes {
			return refusef("the archive's files total more than the limit of %d bytes (at %q)", l.maxBytes, h.Name)
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return archiveErr(err)
		}
	}
}

// checkEntryName refuses absolute names and names with a ".." element anywhere, even where the
// name would clean to something inside the pack: an archive that tries is hostile.
func checkEntryName(name string) error {
	switch {
	case name == "":
		return refusef("archive entry with an empty name")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return refusef("archive entry %q has control characters in its name", name)
	case strings.HasPrefix(name, "/"):
		return refusef("archive entry %q is an absolute path; entries must be relative", name)
	case strings.Contains(name, `\`):
		return refusef("archive entry %q has a backslash in its name", name)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return refusef("archive entry %q escapes the pack directory (path traversal)", name)
		}
	}
	return nil
}

// archiveErr keeps a limit refusal as it is and names anything else as a damaged archive.
func archiveErr(err error) error {
	if errors.Is(err, ErrRefused) {
		return err
	}
	return refusef("damaged archive: %v", err)
}

// capReader fails once more than left bytes have been read: an archive that decompresses past
// every limit is refused rather than read to its end.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, errStreamTooLong
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, errStreamTooLong
	}
	return n, err
}

var errStreamTooLong = refusef("the archive is larger than the limits allow")

// selectSubdir returns the directory sub (slash-separated) inside root, refusing it unless each
// element of the path is a real directory, not a symlink.
func selectSubdir(root, sub string) (string, error) {
	if sub == "" {
		return root, nil
	}
	p := root
	for _, el := range strings.Split(sub, "/") {
		p = filepath.Join(p, el)
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			return "", refusef("subdirectory %q not found in the source", sub)
		}
		if err != nil {
			return "", err
		}
		if !fi.IsDir() {
			return "", refusef("subdirectory %q: %s is %s", sub, el, describe(fi.Mode()))
		}
	}
	return p, nil
}
