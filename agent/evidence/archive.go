package evidence

import (
	"archive/tar"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/hardtrail/hardtrail/internal/atomicfile"
)

// ManifestBytes returns manifest.json as written into the bundle, naming the signer when key
// is not nil.
func (b *Bundle) ManifestBytes(key ed25519.PrivateKey) []byte {
	m := b.Manifest
	m.SignedBy = ""
	if key != nil {
		m.SignedBy = Fingerprint(key.Public().(ed25519.PublicKey))
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic("evidence: manifest: " + err.Error()) // plain data
	}
	return append(data, '\n')
}

// Write writes the bundle to w as a .tar.gz, signed with key when it is not nil. The archive
// is deterministic: entries sorted by name, directories before what they hold, every entry
// dated with the newest after snapshot's time, owned by uid and gid 0 without names, mode 0755
// for directories and 0644 for files; the same bundle and key give the same bytes.
func (b *Bundle) Write(w io.Writer, key ed25519.PrivateKey) error {
	top := b.Manifest.Incident
	files := map[string][]byte{ManifestName: b.ManifestBytes(key)}
	if key != nil {
		files[SignatureName] = ed25519.Sign(key, files[ManifestName])
	}
	for p, c := range b.files {
		files[p] = c
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	type entry struct {
		name string
		data []byte
		dir  bool
	}
	entries := []entry{{name: top + "/", dir: true}}
	for _, d := range dirsOf(paths) {
		entries = append(entries, entry{name: top + "/" + d + "/", dir: true})
	}
	for _, p := range paths {
		entries = append(entries, entry{name: top + "/" + p, data: files[p]})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, ModTime: b.mtime, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e.data))}
		if e.dir {
			h.Mode, h.Typeflag, h.Size = 0o755, tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("bundle entry %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return fmt.Errorf("bundle entry %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// WriteFile writes the bundle to name atomically (with atomicfile): name holds either what it
// held before or the whole bundle, and the temporary files of killed exports are removed. The file's mode is
// 0600, as it holds configuration. It returns the hex SHA-256 of the archive.
func (b *Bundle) WriteFile(name string, key ed25519.PrivateKey) (sum string, err error) {
	dir := filepath.Dir(name)
	if st, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("write bundle %s: directory %s does not exist", name, dir)
		}
		return "", fmt.Errorf("write bundle %s: %w", name, err)
	} else if !st.IsDir() {
		return "", fmt.Errorf("write bundle %s: %s is not a directory", name, dir)
	}
	if st, err := os.Stat(name); err == nil && !st.Mode().IsRegular() {
		return "", fmt.Errorf("write bundle %s: it exists and is not a regular file", name)
	}
	h := sha256.New()
	err = atomicfile.Write(name, 0o600, func(w io.Writer) error {
		return b.Write(io.MultiWriter(w, h), key)
	})
	if err != nil {
		return "", fmt.Errorf("write bundle %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
