package fetch

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	getter "github.com/hashicorp/go-getter/v2"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

func tarOf(t testing.TB, hs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hs {
		body := strings.Repeat("#", int(h.Size))
		if h.Typeflag != tar.TypeReg {
			h.Size, body = 0, ""
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzScanTar feeds arbitrary bytes to the archive scan. Whatever it accepts is then extracted by
// go-getter, and the result must hold only directories and regular files, all inside the
// extraction directory.
func FuzzScanTar(f *testing.F) {
	reg := func(name string, size int64) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Size: size, Mode: 0o644}
	}
	f.Add(tarOf(f, &tar.Header{Name: "pack/", Typeflag: tar.TypeDir, Mode: 0o755}, reg("pack/a.toml", 10)))
	f.Add(tarOf(f, reg("../evil.toml", 3)))
	f.Add(tarOf(f, reg("/etc/evil.toml", 3)))
	f.Add(tarOf(f, reg("a.toml", 3), &tar.Header{Name: "b.toml", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}))
	f.Add(tarOf(f, reg("a.toml", 3), &tar.Header{Name: "b.toml", Typeflag: tar.TypeLink, Linkname: "a.toml"}))
	f.Add(tarOf(f, reg("a", 3), reg("a/b.toml", 3)))
	f.Add(tarOf(f, &tar.Header{Name: "x", Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "c"}}, reg("a.toml", 1)))
	l := limits{maxBytes: 1 << 16, maxFileBytes: 1 << 14, maxFiles: 20}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := scanTar(bytes.NewReader(b), l); err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("scan error %v does not match ErrRefused", err)
			}
			return
		}
		dir := t.TempDir()
		archive := filepath.Join(dir, "a.tar")
		if err := os.WriteFile(archive, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out")
		_ = extractArchive(archive, "tar", out, l) // may fail (a file where a directory must go); must stay safe
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != dir && p != archive && p != out && !strings.HasPrefix(p, out+string(filepath.Separator)) {
				t.Errorf("extraction wrote %s outside %s", p, out)
			}
			if t := d.Type(); !t.IsDir() && !t.IsRegular() {
				return errors.New(p + " is " + describe(t))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestClientAllowList hands sources straight to the go-getter client, past the parser: nothing but
// https, git and file may be taken up, and nothing may be written.
func TestClientAllowList(t *testing.T) {
	testutil.Tool(t, "git")
	src, err := parseSource("git::https://127.0.0.1:1/repo.git?ref=" + commit)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := Options{Lint: func(context.Context, string) error { return nil }}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	opt.Logger = slog.New(slog.DiscardHandler)
	client, done, err := newClient(src, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	for _, s := range []string{
		"s3::https://127.0.0.1:1/bucket/pack.tar.gz",
		"gcs::https://127.0.0.1:1/bucket/pack.tar.gz",
		"hg::https://127.0.0.1:1/repo",
		"smb://127.0.0.1/share/pack",
		"http://127.0.0.1:1/pack.toml",
		"github.com/org/packs",
		"ssh://git@127.0.0.1:1/repo.git",
		"git::ssh://git@127.0.0.1:1/repo.git?ref=" + commit,
		"git::https://127.0.0.1:1/repo.git?ref=main",
	} {
		for _, mode := range []getter.Mode{getter.ModeFile, getter.ModeDir} {
			dir := t.TempDir()
			_, err := client.Get(t.Context(), &getter.Request{Src: s, Dst: filepath.Join(dir, "x"), GetMode: mode})
			if err == nil {
				t.Errorf("client.Get(%q, mode %d) succeeded", s, mode)
				continue
			}
			if !strings.Contains(err.Error(), "error downloading") && !errors.Is(err, ErrRefused) {
				t.Errorf("client.Get(%q, mode %d) = %v; want no getter to take it, or a refusal", s, mode, err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) > 0 {
				t.Errorf("client.Get(%q) wrote %v", s, ents)
			}
		}
	}
}

// BenchmarkExtract sets the scan this package runs before extraction beside go-getter's
// extraction itself, on a pack of 200 rule files of 4 KiB: the ratio is what the scan adds.
func BenchmarkExtract(b *testing.B) {
	var hs []*tar.Header
	for i := range 200 {
		name := "pack/d" + string(rune('a'+i%10)) + "/r" + string(rune('a'+i/26)) + string(rune('a'+i%26)) + ".toml"
		hs = append(hs, &tar.Header{Name: name, Typeflag: tar.TypeReg, Size: 4096, Mode: 0o644})
	}
	dir := b.TempDir()
	archive := filepath.Join(dir, "pack.tar")
	if err := os.WriteFile(archive, tarOf(b, hs...), 0o600); err != nil {
		b.Fatal(err)
	}
	l := limits{maxBytes: DefaultMaxBytes, maxFileBytes: DefaultMaxFileBytes, maxFiles: DefaultMaxFiles}
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			if err := scanArchive(archive, "tar", l); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go-getter-extract", func(b *testing.B) {
		out := filepath.Join(dir, "out")
		d := getter.LimitedDecompressors(l.maxEntries()+2, l.maxBytes)["tar"]
		for b.Loop() {
			if err := d.Decompress(out, archive, true, 0o022); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := os.RemoveAll(out); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}
