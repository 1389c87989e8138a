package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hardtrail/hardtrail/internal/testutil"
	"github.com/hardtrail/hardtrail/rules"
)

// packServer is a loopback https server of rule packs whose certificate the binary trusts
// through SSL_CERT_FILE.
type packServer struct {
	srv      *httptest.Server
	files    map[string][]byte
	requests atomic.Int32
	env      []string
}

func newPackServer(t *testing.T) *packServer {
	p := &packServer{files: map[string][]byte{}}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		b, ok := p.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(p.srv.Close)
	cert := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	p.env = []string{"SSL_CERT_FILE=" + cert, "SSL_CERT_DIR=" + filepath.Dir(cert)}
	return p
}

// serve publishes b at path and returns its source, pinned by its checksum.
func (p *packServer) serve(path string, b []byte) string {
	p.files[path] = b
	sum := sha256.Sum256(b)
	return p.srv.URL + path + "?checksum=sha256:" + hex.EncodeToString(sum[:])
}

// tarGz packs the named files of testdata/check under their own names.
func tarGz(t *testing.T, names ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		b := must(os.ReadFile(ruleFile(n)))
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// gitPack commits the named files of testdata/check to a new repository and returns its path
// and the commit ID.
func gitPack(t *testing.T, names ...string) (string, string) {
	t.Helper()
	git := testutil.Tool(t, "git")
	dir := t.TempDir()
	testutil.Run(t, git, "init", "-q", dir)
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), must(os.ReadFile(ruleFile(n))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Run(t, git, "-C", dir, "add", "-A")
	testutil.Run(t, git, "-C", dir, "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-q", "-m", "pack")
	return dir, strings.TrimSpace(testutil.Run(t, git, "-C", dir, "rev-parse", "HEAD"))
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func setDigest(t *testing.T, names ...string) string {
	t.Helper()
	var paths []string
	for _, n := range names {
		paths = append(paths, ruleFile(n))
	}
	s, err := rules.Load(paths...)
	if err != nil {
		t.Fatal(err)
	}
	return s.Digest()
}

func TestRulesFetch(t *testing.T) {
	p := newPackServer(t)
	good := p.serve("/pack.tar.gz", tarGz(t, "app.toml", "audit.toml", "README.md"))
	bad := p.serve("/bad.tar.gz", tarGz(t, "app.toml", "bad-probe-key.toml"))
	waivers := p.serve("/waivers.toml", must(os.ReadFile(ruleFile("waivers.toml"))))
	repo, commit := gitPack(t, "app.toml", "audit.toml")
	dir := t.TempDir()
	digest := setDigest(t, "app.toml", "audit.toml")

	for _, tc := range []struct {
		name, source, out string
	}{
		{"https", good, "installed %s: 3 rules, 0 waivers in 2 files (digest " + digest + ")\n  app.toml\n  audit.toml\n"},
		{"git", "git::file://" + repo + "?ref=" + commit, "installed %s: 3 rules, 0 waivers in 2 files (digest " + digest + ")\n  app.toml\n  audit.toml\n"},
		{"waivers", waivers, "installed %s: 0 rules, 2 waivers in 1 file (digest " + must(rules.Merge()).Digest() + ")\n" +
			"  2 waivers are for rules from other sources (checked when the pack is loaded with them; the digest leaves them out)\n  waivers.toml\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(dir, tc.name)
			out, errOut, code := htDir(t, p.env, "", "rules", "fetch", tc.source, dst)
			if want := fmt.Sprintf(tc.out, dst); code != 0 || out != want {
				t.Errorf("exit %d\n%s\nwant:\n%s\nstderr: %s", code, out, want, errOut)
			}
		})
	}
	if got := mustHT(t, "rules", "lint", filepath.Join(dir, "https"), filepath.Join(dir, "waivers")); !strings.HasPrefix(got, "ok: 3 rules, 2 waivers in 3 files") {
		t.Errorf("lint of the fetched packs: %s", got)
	}

	// A pack that does not lint is not installed, and nothing is left beside the destination.
	before := entries(t, dir)
	out, errOut, code := htDir(t, p.env, "", "rules", "fetch", bad, filepath.Join(dir, "bad"))
	want := `the rule pack does not lint: bad-probe-key.toml:8:1: rule "app-mode": rule.file.mode: unknown key (check its spelling and the table it is in)`
	if code != 2 || out != "" || !strings.Contains(errOut, want) {
		t.Errorf("bad pack: exit %d, stderr %q lacks %q", code, errOut, want)
	}
	if after := entries(t, dir); !slices.Equal(before, after) {
		t.Errorf("a refused pack changed %s: %q, then %q", dir, before, after)
	}
	// Refused sources: no checksum, a branch instead of a commit, a mismatching checksum.
	for _, tc := range []struct{ source, err string }{
		{p.srv.URL + "/pack.tar.gz", "https sources need ?checksum=sha256:HEX"},
		{"git::file://" + repo + "?ref=master", "is not a full commit ID"},
		{good[:len(good)-1] + map[bool]string{true: "1", false: "0"}[good[len(good)-1] == '0'], "checksum mismatch"},
	} {
		if _, errOut, code := htDir(t, p.env, "", "rules", "fetch", tc.source, filepath.Join(dir, "refused")); code != 2 || !strings.Contains(errOut, tc.err) {
			t.Errorf("%s: exit %d, stderr %q lacks %q", tc.source, code, errOut, tc.err)
		}
	}
	if after := entries(t, dir); !slices.Equal(before, after) {
		t.Errorf("refused sources changed %s: %q", dir, after)
	}
}

// check --rules with remote sources: fetched into the cache beside the store, a pinned source
// used again without the network, waivers from one source over rules of another, and a bad
// pack refused with nothing left in the cache.
func TestCheckRemoteRules(t *testing.T) {
	p := newPackServer(t)
	good := p.serve("/pack.tar.gz", tarGz(t, "app.toml", "audit.toml"))
	waivers := p.serve("/waivers.toml", must(os.ReadFile(ruleFile("waivers.toml"))))
	e := newAppEnv(t, "secure = yes\ndebug = on\n", "")
	cache := e.store + ".rules-cache"
	key := func(source string) string {
		s := sha256.Sum256([]byte(source))
		return hex.EncodeToString(s[:])
	}

	doc, code := checkJSON(t, p.env, "--config", e.config, "check", "--rules", good)
	if code != 1 || doc.Reports[0].RulesDigest != setDigest(t, "app.toml", "audit.toml") || doc.Reports[0].Summary.Fail != 1 || doc.Reports[0].Summary.Error != 1 {
		t.Fatalf("remote pack: exit %d, %+v", code, doc.Reports)
	}
	if got := entries(t, filepath.Join(cache, key(good))); !slices.Equal(got, []string{"app.toml", "audit.toml"}) {
		t.Errorf("cache entry: %q", got)
	}
	// Waivers fetched from a second source apply to the rules of the first.
	n := p.requests.Load()
	doc, code = checkJSON(t, p.env, "--config", e.config, "check", "--rules", good, "--rules", waivers)
	if code != 0 || doc.Reports[0].Summary.Waived != 2 {
		t.Errorf("remote waivers: exit %d, %s", code, doc.Reports[0].Summary)
	}
	if got := p.requests.Load() - n; got != 1 {
		t.Errorf("%d requests; want 1 (the cached pack is pinned by its checksum)", got)
	}
	// Offline: both pinned sources come from the cache.
	p.srv.Close()
	if _, errOut, code := htDir(t, p.env, "", "--config", e.config, "check", "--rules", good, "--rules", waivers); code != 0 {
		t.Errorf("offline with a warm cache: exit %d: %s", code, errOut)
	}
	if got := entries(t, cache); !slices.Equal(got, sortedStrings(key(good), key(waivers))) {
		t.Errorf("cache: %q", got)
	}

	// A bad pack: exit 2, exact position, and the cache holds what it held.
	p2 := newPackServer(t)
	bad := p2.serve("/bad.tar.gz", tarGz(t, "bad-syntax.toml"))
	_, errOut, code := htDir(t, p2.env, "", "--config", e.config, "check", "--rules", bad)
	want := `the rule pack does not lint: bad-syntax.toml:3:22: rule "app-secure-2": rule.title: strings cannot contain newlines`
	if code != 2 || !strings.Contains(errOut, want) {
		t.Errorf("bad pack: exit %d, stderr %q lacks %q", code, errOut, want)
	}
	if got := entries(t, cache); !slices.Equal(got, sortedStrings(key(good), key(waivers))) {
		t.Errorf("a bad pack left %q in the cache", got)
	}

	// A git commit.
	repo, commit := gitPack(t, "app.toml")
	doc, code = checkJSON(t, nil, "--config", e.config, "check", "--rules", "git::file://"+repo+"?ref="+commit)
	if code != 1 || len(doc.Reports[0].Results) != 2 {
		t.Errorf("git pack: exit %d, %+v", code, doc.Reports)
	}

	// A file:// directory is not pinned: each run fetches it again and sees its changes.
	local := t.TempDir()
	testutil.Must(t, os.WriteFile(filepath.Join(local, "app.toml"), must(os.ReadFile(ruleFile("app.toml"))), 0o644))
	src := "file://" + local
	if doc, _ = checkJSON(t, nil, "--config", e.config, "check", "--rules", src); len(doc.Reports[0].Results) != 2 {
		t.Errorf("file source: %d results", len(doc.Reports[0].Results))
	}
	testutil.Must(t, os.WriteFile(filepath.Join(local, "audit.toml"), must(os.ReadFile(ruleFile("audit.toml"))), 0o644))
	if doc, _ = checkJSON(t, nil, "--config", e.config, "check", "--rules", src); len(doc.Reports[0].Results) != 3 {
		t.Errorf("file source after a change: %d results, want 3", len(doc.Reports[0].Results))
	}
}

func sortedStrings(s ...string) []string {
	slices.Sort(s)
	return s
}

// Two runs with a cold cache at once: the lock on the cache lets one fetch, and the other
// uses what it installed.
func TestCheckRemoteRulesConcurrent(t *testing.T) {
	p := newPackServer(t)
	good := p.serve("/pack.tar.gz", tarGz(t, "app.toml"))
	e := newAppEnv(t, "secure = yes\n", "")
	mustHT(t, "--config", e.config, "snapshot")
	codes := make(chan string, 2)
	for range 2 {
		go func() {
			out, errOut, code, err := htExec(p.env, "", "--config", e.config, "check", "--snapshot", "local", "--rules", good)
			codes <- fmt.Sprintf("exit %d %s%s%v", code, out, errOut, err)
		}()
	}
	for range 2 {
		if got := <-codes; !strings.HasPrefix(got, "exit 0 ") {
			t.Errorf("concurrent check: %s", got)
		}
	}
	if n := p.requests.Load(); n != 1 {
		t.Errorf("%d downloads of one pinned pack, want 1", n)
	}
}
