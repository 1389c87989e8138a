package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"testing"
)

// TarEntry is one entry of a gzipped tar archive: tests take evidence bundles apart with
// ReadTarGz, change them, and put them back together with WriteTarGz.
type TarEntry struct {
	H    *tar.Header
	Data []byte
}

// ReadTarGz returns every entry of a gzipped tar archive, in order.
func ReadTarGz(t testing.TB, archive []byte) []TarEntry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []TarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, TarEntry{h, data})
	}
}

// WriteTarGz builds a gzipped tar archive of es; a regular file's size is its data's, and the
// data of other entries is dropped.
func WriteTarGz(t testing.TB, es []TarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range es {
		h := *e.H
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue // links, directories and devices carry no body
		}
		if _, err := tw.Write(e.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
