// Command image writes hardtrail's OCI image, without a container daemon: one layer holding
// the static binary and the shipped files, on an empty base, for each architecture, in an
// OCI image layout whose index.json names an index over them by the version.
//
//	go run ./deploy/image -o dist/oci -version V -revision R -bin amd64=dist/linux_amd64/hardtrail
//
// It runs from the repository's top directory. The layer's every entry is dated with
// -created (default $SOURCE_DATE_EPOCH), so the same inputs give the same image digests.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// UID and GID are the image's non-root user, hardtrail (65532, the "nonroot" ID of
// distroless images, so volume permissions carry over between such images).
const (
	UID = 65532
	GID = 65532
)

// shipped are the repository's files the image carries besides the binary.
var shipped = []struct{ src, dst string }{
	{"deploy/packaging/hardtrail.toml", "etc/hardtrail/hardtrail.toml"},
	{"deploy/hardtrail.toml", "usr/share/hardtrail/hardtrail.example.toml"},
	{"deploy/web-config.yml", "usr/share/hardtrail/web-config.yml"},
	{"deploy/prometheus/hardtrail.rules.yml", "usr/share/hardtrail/prometheus/hardtrail.rules.yml"},
	{"deploy/prometheus/prometheus.yml", "usr/share/hardtrail/prometheus/prometheus.yml"},
	{"deploy/grafana/hardtrail.json", "usr/share/hardtrail/grafana/hardtrail.json"},
	{"LICENSE", "usr/share/doc/hardtrail/LICENSE"},
}

type binFlag map[string]string

func (b binFlag) String() string { return fmt.Sprint(map[string]string(b)) }
func (b binFlag) Set(s string) error {
	arch, p, ok := strings.Cut(s, "=")
	if !ok || arch == "" || p == "" {
		return errors.New("want ARCH=PATH")
	}
	b[arch] = p
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	out := fs.String("o", "", "OCI image layout directory to write (replaced)")
	version := fs.String("version", "", "version label")
	revision := fs.String("revision", "", "revision label (git commit)")
	created := fs.Int64("created", sourceDate(), "creation time, seconds since the epoch")
	bins := binFlag{}
	fs.Var(bins, "bin", "ARCH=PATH of a static linux binary (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *version == "" || len(bins) == 0 {
		return errors.New("-o, -version and at least one -bin are required")
	}
	when := time.Unix(*created, 0).UTC()
	archs := make([]string, 0, len(bins))
	for a := range bins {
		archs = append(archs, a)
	}
	sort.Strings(archs)

	var idx v1.ImageIndex = empty.Index
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	for _, arch := range archs {
		img, err := image(arch, bins[arch], *version, *revision, when)
		if err != nil {
			return fmt.Errorf("%s: %w", arch, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	if err := os.RemoveAll(*out); err != nil {
		return err
	}
	// The layout's index.json names the multi-architecture index by the version, so that
	// OCI tools address it as oci:DIR:VERSION.
	p, err := layout.Write(*out, empty.Index)
	if err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": *version})); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	return nil
}

// image is the image of one architecture.
func image(arch, bin, version, revision string, when time.Time) (v1.Image, error) {
	layerTar, err := rootfs(bin, when)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: when}, CreatedBy: "hardtrail deploy/image", Comment: "hardtrail " + version},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: when}
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, GID),
		Entrypoint: []string{"/usr/bin/hardtrail", "agent"},
		Env: []string{
			"PATH=/usr/bin:/bin",
			"HARDTRAIL_CONFIG=/etc/hardtrail/hardtrail.toml",
			"HARDTRAIL_STORE=/var/lib/hardtrail/hardtrail.db",
		},
		WorkingDir:   "/var/lib/hardtrail",
		ExposedPorts: map[string]struct{}{"9527/tcp": {}},
		Volumes:      map[string]struct{}{"/var/lib/hardtrail": {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "hardtrail",
			"org.opencontainers.image.description": "Evidence that a hardening fix was made and still holds: the hardtrail agent",
			"org.opencontainers.image.version":     version,
			"org.opencontainers.image.revision":    revision,
			"org.opencontainers.image.created":     when.Format(time.RFC3339),
			"org.opencontainers.image.source":      "https://github.com/hardtrail/hardtrail",
			"org.opencontainers.image.licenses":    "Apache-2.0",
		},
	}
	return mutate.ConfigFile(img, cf)
}

// rootfs is the layer's tar: the binary, the shipped files, a passwd and group naming the
// user, its state directory (0700) and /tmp.
func rootfs(bin string, when time.Time) ([]byte, error) {
	files := map[string]entry{
		"etc/passwd": {data: []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nhardtrail:x:%d:%d:hardtrail agent:/var/lib/hardtrail:/sbin/nologin\n", UID, GID)), mode: 0o644},
		"etc/group":  {data: []byte(fmt.Sprintf("root:x:0:\nhardtrail:x:%d:\n", GID)), mode: 0o644},
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	files["usr/bin/hardtrail"] = entry{data: b, mode: 0o755}
	for _, f := range shipped {
		b, err := os.ReadFile(f.src)
		if err != nil {
			return nil, err
		}
		files[f.dst] = entry{data: b, mode: 0o644}
	}
	dirs := map[string]entry{
		"tmp":                 {mode: 0o1777},
		"var/lib/hardtrail":   {mode: 0o700, uid: UID, gid: GID},
		"etc/hardtrail":       {mode: 0o755},
		"usr/share/hardtrail": {mode: 0o755},
	}
	for p := range files {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := dirs[d]; !ok {
				dirs[d] = entry{mode: 0o755}
			}
		}
	}
	names := make([]string, 0, len(files)+len(dirs))
	for d := range dirs {
		names = append(names, d+"/")
	}
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		h := &tar.Header{Name: n, ModTime: when, Format: tar.FormatPAX, Uname: "", Gname: ""}
		if d, ok := strings.CutSuffix(n, "/"); ok {
			e := dirs[d]
			h.Typeflag, h.Mode, h.Uid, h.Gid = tar.TypeDir, e.mode, e.uid, e.gid
		} else {
			e := files[n]
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, e.mode, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(files[n].data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type entry struct {
	data     []byte
	mode     int64
	uid, gid int
}

// sourceDate is $SOURCE_DATE_EPOCH, or 0.
func sourceDate() int64 {
	n, _ := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
	return n
}
