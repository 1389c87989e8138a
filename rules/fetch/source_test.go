package fetch

import (
	"bytes"
	"errors"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"testing"

	getter "github.com/hashicorp/go-getter/v2"
)

const (
	hex64  = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	commit = "0123456789abcdef0123456789abcdef01234567"
)

// sourceCases are the inputs of the golden table testdata/fetch/sources.golden: every accepted
// form, and every refusal with its message.
var sourceCases = []string{
	// https
	"https://example.com/packs/cis.tar.gz?checksum=sha256:" + hex64,
	"https://example.com/packs/cis.tgz?checksum=SHA256:" + strings.ToUpper(hex64),
	"https://example.com/packs/cis.tar?checksum=sha256:" + hex64,
	"https://example.com/packs/cis.tar.gz//rules/ssh?checksum=sha256:" + hex64,
	"https://bucket.s3.example.com/cis.tar.gz?X-Amz-Expires=300&X-Amz-Signature=5ec7e7&checksum=sha256:" + hex64,
	"https://example.com/rules/one.toml?checksum=sha256:" + hex64,
	"HTTPS://Example.COM/p.tar.gz?checksum=sha256:" + hex64,
	"https://example.com/packs/?checksum=sha256:" + hex64,
	"https://example.com/packs/cis",
	"https://example.com/packs/cis.tar.gz",
	"https://example.com/packs/cis.tar.gz?checksum=" + hex64,
	"https://example.com/packs/cis.tar.gz?checksum=sha256:abc",
	"https://example.com/packs/cis.tar.gz?checksum=md5:d41d8cd98f00b204e9800998ecf8427e",
	"https://example.com/packs/cis.tar.gz?checksum=file:https://example.com/SHA256SUMS",
	"https://example.com/packs/cis.tar.gz?checksum=sha256:" + hex64 + "&checksum=sha256:" + hex64,
	"https://example.com/packs/cis.tar.gz?archive=zip&checksum=sha256:" + hex64,
	"https://example.com/packs/cis.toml?filename=../x.toml&checksum=sha256:" + hex64,
	"https://user:secret@example.com/cis.tar.gz?checksum=sha256:" + hex64,
	"https://example.com/cis.tar.gz?checksum=sha256:" + hex64 + "#top",
	"https:///cis.tar.gz?checksum=sha256:" + hex64,
	"https:example.com/cis.tar.gz",
	"https://example.com/one.toml//sub?checksum=sha256:" + hex64,
	"https://example.com/cis.tar.gz//.git?checksum=sha256:" + hex64,
	"https://example.com/cis.tar.gz//a/*/b?checksum=sha256:" + hex64,
	"https://example.com/cis.tar.gz//a/../b?checksum=sha256:" + hex64,
	"https://example.com/cis.zip?checksum=sha256:" + hex64,
	"https://example.com/cis.tar.xz?checksum=sha256:" + hex64,
	"https://example.com/cis.TOML?checksum=sha256:" + hex64,
	"https://example.com/.hidden.toml?checksum=sha256:" + hex64,
	// other schemes and getters
	"http://example.com/cis.tar.gz?checksum=sha256:" + hex64,
	"ftp://example.com/cis.tar.gz",
	"s3::https://s3.amazonaws.com/bucket/cis.tar.gz",
	"gcs::https://www.googleapis.com/storage/v1/bucket/cis.tar.gz",
	"hg::https://example.com/repo",
	"GIT::https://example.com/repo.git?ref=" + commit,
	"smb://server/share/rules",
	"ssh://git@example.com/repo.git",
	// git
	"git::https://example.com/org/packs.git?ref=" + commit,
	"git::https://example.com/org/packs.git//cis/linux?ref=" + strings.ToUpper(commit),
	"git::https://example.com/org/packs.git?ref=" + commit + commit[:24],
	"git::file:///srv/git/packs?ref=" + commit,
	"git::file:///srv/git/../git/packs//cis?ref=" + commit,
	"git::https://example.com/org/packs.git",
	"git::https://example.com/org/packs.git?ref=main",
	"git::https://example.com/org/packs.git?ref=v1.2.0",
	"git::https://example.com/org/packs.git?ref=" + commit[:12],
	"git::https://example.com/org/packs.git?ref=" + commit + "&ref=" + commit,
	"git::https://example.com/org/packs.git?ref=" + commit + "&depth=1",
	"git::https://example.com/org/packs.git?ref=" + commit + "&sshkey=AAAA",
	"git::ssh://git@example.com/org/packs.git?ref=" + commit,
	"git::git@example.com:org/packs.git?ref=" + commit,
	"git::http://example.com/org/packs.git?ref=" + commit,
	"git::file://server/srv/git/packs?ref=" + commit,
	// file
	"file:///srv/rules",
	"file:///srv/rules//cis",
	"file:///srv/with%20space/rules",
	"file:///srv/pack.tar.gz?checksum=sha256:" + hex64,
	"file:///srv/pack.tgz//rules",
	"file:///srv/one.toml",
	"file:///srv/rules?checksum=sha256:" + hex64,
	"file:///srv/rules?ref=" + commit,
	"file://srv/rules",
	"file:relative/rules",
	"file:/srv/rules",
	"/srv/rules",
	"/srv/../srv/rules/./cis/",
	"/srv/with space/a?b",
	"/srv/pack.tar.gz",
	"/srv/pack.zip",
	"/srv/.pack.toml",
	// neither
	"",
	"rules/packs",
	"./rules",
	"../rules",
	"github.com/org/packs",
	"git@github.com:org/packs.git",
	"https://example.com/cis.tar.gz?checksum=sha256:" + hex64 + "\n",
}

// TestParseSource compares every case's result with testdata/fetch/sources.golden: the canonical
// and display forms of accepted sources, the message of refused ones.
func TestParseSource(t *testing.T) {
	var out bytes.Buffer
	out.WriteString("# go test ./rules/fetch -run TestParseSource -update rewrites this file\n")
	for _, in := range sourceCases {
		out.WriteString("\n" + strings.ReplaceAll(in, "\n", `\n`) + "\n")
		src, err := parseSource(in)
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Errorf("%q: error %v does not match ErrRefused", in, err)
			}
			out.WriteString("\trefused: " + err.Error() + "\n")
			continue
		}
		out.WriteString("\tcanonical: " + src.canonical() + "\n")
		if d := src.String(); d != src.canonical() {
			out.WriteString("\tdisplay:   " + d + "\n")
		}
		if g := src.getterSrc(); g != src.canonical() {
			out.WriteString("\tgo-getter: " + g + "\n")
		}
	}
	golden := filepath.Join("..", "..", "testdata", "fetch", "sources.golden")
	testutil.Golden(t, golden, out.Bytes())
}

func TestIsRemote(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"/etc/hardtrail/rules", false},
		{"rules", false},
		{"./rules/ssh.toml", false},
		{"github.com/org/packs", false},
		{"https://example.com/p.tar.gz", true},
		{"http://example.com/p.tar.gz", true},
		{"file:///srv/rules", true},
		{"git::https://example.com/repo.git", true},
		{"s3::https://s3.amazonaws.com/b/p", true},
		{"C:\\rules", false},
		{"", false},
	} {
		if got := IsRemote(tc.in); got != tc.want {
			t.Errorf("IsRemote(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// FuzzParseSource checks that parsing never panics, refuses only with ErrRefused, and that what it
// accepts keeps its promises: a checksum over https, a full commit for git, a plain subdirectory,
// a canonical form that parses back to itself, and no //SUBDIR left for go-getter to act on.
func FuzzParseSource(f *testing.F) {
	for _, s := range sourceCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, err := parseSource(s)
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("%q: error %v does not match ErrRefused", s, err)
			}
			return
		}
		if !IsRemote(s) && !strings.HasPrefix(s, "/") {
			t.Errorf("%q accepted but IsRemote is false", s)
		}
		switch src.kind {
		case kindHTTPS:
			if len(src.checksum) != 32 || src.shape == shapeDir {
				t.Errorf("%q: https accepted with checksum %x, shape %d", s, src.checksum, src.shape)
			}
		case kindGit:
			if !commitRe().MatchString(src.ref) || src.shape != shapeDir {
				t.Errorf("%q: git accepted with ref %q", s, src.ref)
			}
		case kindFile:
			if !path.IsAbs(src.path) || path.Clean(src.path) != src.path {
				t.Errorf("%q: file path %q not absolute and clean", s, src.path)
			}
		default:
			t.Fatalf("%q: kind %d", s, src.kind)
		}
		if src.subdir != "" && (!fs.ValidPath(src.subdir) || strings.Contains(src.subdir, "..")) {
			t.Errorf("%q: subdir %q", s, src.subdir)
		}
		if src.shape == shapeFile && (src.name == "" || strings.Contains(src.name, "/")) {
			t.Errorf("%q: file name %q", s, src.name)
		}
		g := strings.TrimPrefix(src.getterSrc(), "git::")
		if _, sub := getter.SourceDirSubdir(g); sub != "" {
			t.Errorf("%q: go-getter would see subdirectory %q in %q", s, sub, g)
		}
		again, err := parseSource(src.canonical())
		if err != nil {
			t.Fatalf("%q: canonical form %q refused: %v", s, src.canonical(), err)
		}
		if again.canonical() != src.canonical() || again.getterSrc() != src.getterSrc() {
			t.Errorf("%q: canonical %q parses to %q", s, src.canonical(), again.canonical())
		}
	})
}

func TestPinned(t *testing.T) {
	const sum = "?checksum=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const commit = "?ref=0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"https://example.com/p.tar.gz" + sum, true},
		{"https://example.com/p.tar.gz", false}, // refused: no checksum
		{"git::https://example.com/repo.git" + commit, true},
		{"git::file:///srv/repo" + commit, true},
		{"git::https://example.com/repo.git?ref=main", false}, // refused: not a commit
		{"file:///srv/p.tar.gz" + sum, true},
		{"file:///srv/p.tar.gz", false},
		{"file:///srv/rules", false},
		{"/srv/rules.toml", false},
		{"s3::https://s3.amazonaws.com/b/p.tar.gz" + sum, false},
	} {
		if got := Pinned(tc.in); got != tc.want {
			t.Errorf("Pinned(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
