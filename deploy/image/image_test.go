package main

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// `make image` writes an OCI layout whose image runs: its config names the non-root user, the
// agent as entry point and the version labels, and its binary, unpacked and run inside a user
// namespace the test makes, prints the stamped version.
func TestMakeImage(t *testing.T) {
	mk := testutil.Tool(t, "make")
	unshare := testutil.Tool(t, "unshare")
	chroot := testutil.Tool(t, "chroot")
	dist := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mk, "-C", "../..", "image", "ARCHES=amd64", "DIST="+dist,
		"PKG_VERSION=1.2.3", "REVISION=0123456789abcdef")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	idx := versionIndex(t, filepath.Join(dist, "oci"), "1.2.3")
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Platform == nil || im.Manifests[0].Platform.Architecture != "amd64" || im.Manifests[0].Platform.OS != "linux" {
		t.Fatalf("index manifests: %+v, want one linux/amd64 image", im.Manifests)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("user %q, want the non-root 65532:65532", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/usr/bin/hardtrail", "agent"}) {
		t.Errorf("entry point %q, want hardtrail agent", c.Entrypoint)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.version":  "1.2.3",
		"org.opencontainers.image.revision": "0123456789abcdef",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.title":    "hardtrail",
	} {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if !slices.Contains(c.Env, "HARDTRAIL_STORE=/var/lib/hardtrail/hardtrail.db") {
		t.Errorf("env %q has no store", c.Env)
	}

	root := t.TempDir()
	modes := extract(t, img, root)
	for p, want := range map[string]int64{
		"usr/bin/hardtrail":            0o755,
		"var/lib/hardtrail/":           0o700,
		"etc/hardtrail/hardtrail.toml": 0o644,
		"etc/passwd":                   0o644,
		"tmp/":                         0o1777,
	} {
		if got, ok := modes[p]; !ok || got != want {
			t.Errorf("layer entry %s: mode %o (present %v), want %o", p, got, ok, want)
		}
	}
	// The binary runs in the image's file tree, as root of a user namespace (no privilege on
	// the host) and as the image's user.
	out, err := exec.Command(unshare, "--user", "--map-root-user", chroot, root, "/usr/bin/hardtrail", "version").CombinedOutput()
	if err != nil {
		t.Fatalf("hardtrail version in the unpacked image: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "1.2.3") || !strings.Contains(string(out), "0123456789abcdef") {
		t.Errorf("hardtrail version in the image:\n%s\nwant version 1.2.3 and revision 0123456789abcdef", out)
	}
}

// The same inputs give the same image digest.
func TestImageReproducible(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hardtrail")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho not a real binary\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	t.Chdir(filepath.Join(wd, "../.."))
	digest := func() string {
		out := filepath.Join(t.TempDir(), "oci")
		if err := run([]string{"-o", out, "-version", "9.9.9", "-revision", "r", "-created", "1700000000", "-bin", "amd64=" + bin, "-bin", "arm64=" + bin}); err != nil {
			t.Fatal(err)
		}
		d, err := versionIndex(t, out, "9.9.9").Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	if a, b := digest(), digest(); a != b {
		t.Errorf("two builds of the same inputs: %s and %s", a, b)
	}
}

// versionIndex is the image index that the layout's index.json names by version.
func versionIndex(t *testing.T, dir, version string) v1.ImageIndex {
	t.Helper()
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != version {
		t.Fatalf("index.json: %+v, want one index named %s", m.Manifests, version)
	}
	idx, err := top.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// extract unpacks the image's file tree into dir and returns every entry's mode, directories
// named with a trailing slash.
func extract(t *testing.T, img v1.Image, dir string) map[string]int64 {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	modes := map[string]int64{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if h.Typeflag == tar.TypeDir {
			name += "/"
		}
		modes[name] = h.Mode
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return modes
}
