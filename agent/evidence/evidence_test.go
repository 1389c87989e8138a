package evidence

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/internal/buildinfo"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"github.com/hardtrail/hardtrail/rules"
)

const incidentID = "INC-2026-0007"

// artifact is one artifact of a synthetic snapshot: content, or unavailable with a reason.
type artifact struct {
	content     string
	unavailable string
	exit        int
	stderr      string
}

func save(t testing.TB, st *store.Store, target string, at time.Time, note string, arts map[string]artifact) string {
	t.Helper()
	m, contents := manifest(target, at, note, arts)
	s, err := st.Save(t.Context(), m, contents)
	if err != nil {
		t.Fatal(err)
	}
	return s.ID
}

// hold records a capture equal to the target's newest snapshot at at.
func hold(t testing.TB, st *store.Store, target string, at time.Time, arts map[string]artifact) {
	t.Helper()
	m, contents := manifest(target, at, "", arts)
	s, err := st.SaveOrHold(t.Context(), m, contents, store.HoldPolicy{MaxAge: 24 * time.Hour, MaxGap: time.Hour})
	if err != nil || !s.Held {
		t.Fatalf("hold: %+v %v", s, err)
	}
}

func manifest(target string, at time.Time, note string, arts map[string]artifact) (*store.Manifest, [][]byte) {
	var contents [][]byte
	m := &store.Manifest{Target: target, Started: at.Add(-2 * time.Second), TakenAt: at, Transport: "local", Hostname: target + ".example",
		Profiles: []string{"linux"}, ToolVersion: "test", Note: note}
	for name, a := range arts {
		e := store.ArtifactEntry{Name: name, Source: name, Unavailable: a.unavailable, ExitCode: &a.exit, Stderr: a.stderr}
		if a.exit != 0 || a.stderr != "" {
			e.Command = []string{"systemctl", "list-units"}
		}
		m.Artifacts = append(m.Artifacts, e)
		contents = append(contents, []byte(a.content))
	}
	return m, contents
}

func tag(t testing.TB, st *store.Store, snap, phase, by, note string, at time.Time) {
	t.Helper()
	if _, err := st.Tag(t.Context(), store.Link{Incident: incidentID, Phase: phase, Snapshot: snap, By: by, Note: note, At: at}); err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// synthetic builds a store with a fixed incident: web1 remediated and then partly reverted,
// db1 with a before snapshot only.
func synthetic(t testing.TB) (*store.Store, *rules.Set) {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	set, err := rules.Load("../../testdata/evidence/rules")
	if err != nil {
		t.Fatal(err)
	}
	osr := artifact{content: "ID=debian\nVERSION_ID=\"12\"\n"}
	listening := artifact{unavailable: "not installed: ss"}
	failed := artifact{exit: 1, stderr: "Failed to connect to bus: No such file or directory\n"}
	machine := artifact{content: "4c4c4544004b3010804fb4c04f4e3232\n"}
	open := func(r store.Record) {
		t.Helper()
		if _, err := st.AddRecord(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	open(store.Record{Incident: incidentID, Kind: store.KindOpen, Title: "root login and passwords over SSH", Severity: "high",
		Ticket: "https://tickets.example/SEC-7", Category: "weak-ssh-config", By: "alice", At: t0.Add(-time.Hour)})
	before := save(t, st, "web1", t0, "", map[string]artifact{
		"services/active":   failed,
		"system/machine-id": machine,
		"sshd/effective":    {content: "port 22\npermitrootlogin yes\npasswordauthentication yes\nx11forwarding yes\n"},
		"sshd/config/etc/ssh/sshd_config.d/50-hardening.conf": {content: "PermitRootLogin yes\n"},
		"sshd/config/etc/ssh/sshd_config.d/40-legacy.conf":    {content: "Ciphers aes128-cbc\n"},
		"sshd/config/etc/ssh/local overrides/dns.conf":        {content: "UseDNS yes\n"},
		"firewall/iptables":  {content: "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"},
		"firmware/blob":      {content: "\x00\x01old"},
		"packages/installed": {unavailable: "not installed: dpkg-query"},
		"net/listening":      listening,
		"system/os-release":  osr,
		"system/motd":        {content: "welcome"},
	})
	tag(t, st, before, store.Before, "alice", "reported: root login | passwords allowed", t0.Add(time.Minute))
	db := save(t, st, "db1", t0.Add(5*time.Minute), "", map[string]artifact{
		"sshd/effective": {content: "port 22\npermitrootlogin yes\n"},
	})
	tag(t, st, db, store.Before, "alice", "", t0.Add(6*time.Minute))
	t1 := t0.Add(90 * time.Minute)
	afterArts := map[string]artifact{
		"services/active":   failed,
		"system/machine-id": machine,
		"sshd/effective":    {content: "port 22\npermitrootlogin no\npasswordauthentication no\nx11forwarding yes\n"},
		"sshd/config/etc/ssh/sshd_config.d/50-hardening.conf": {content: "PermitRootLogin no\nPasswordAuthentication no\n"},
		"sshd/config/etc/ssh/sshd_config.d/60-empty.conf":     {},
		"sshd/config/etc/ssh/local overrides/dns.conf":        {content: "UseDNS no\n"},
		"sshd/config/etc/ssh/local overrides/empty file.conf": {},
		"firewall/iptables":  {content: "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 23 -j DROP\nCOMMIT\n"},
		"firmware/blob":      {content: "\x00\x01new"},
		"packages/installed": {content: "openssh-server\t1:9.2p1-2+deb12u3\tamd64\tii\n"},
		"net/listening":      listening,
		"system/os-release":  osr,
		"system/motd":        {content: "welcome back"},
	}
	after := save(t, st, "web1", t1, "after change CHG-12", afterArts)
	tag(t, st, after, store.After, "bob", "hardened per CHG-12", t1.Add(2*time.Minute))
	open(store.Record{Incident: incidentID, Kind: store.KindNote, Text: "root cause: the image's sshd_config allowed root and passwords", By: "bob", At: t1.Add(3 * time.Minute)})
	hold(t, st, "web1", t1.Add(10*time.Minute), afterArts)
	hold(t, st, "web1", t1.Add(25*time.Minute), afterArts)
	reverted := map[string]artifact{}
	for k, v := range afterArts {
		reverted[k] = v
	}
	reverted["sshd/effective"] = artifact{content: "port 22\npermitrootlogin yes\npasswordauthentication no\nx11forwarding yes\n"}
	rev := save(t, st, "web1", t1.Add(time.Hour), "", reverted)
	for _, e := range []store.StatusEvent{
		{Incident: incidentID, Target: "web1", Status: "verified", Cause: "proven", Snapshot: after, At: t1.Add(5 * time.Minute)},
		{Incident: incidentID, Target: "web1", Status: "regressed", Cause: "hardened change reverted in [sshd/effective]", Snapshot: rev, At: t1.Add(time.Hour + 5*time.Second)},
	} {
		if _, err := st.RecordStatus(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	save(t, st, "web1", t1.Add(time.Hour+41*time.Second), "", afterArts)
	save(t, st, "web1", t0.Add(24*time.Hour), "nightly", map[string]artifact{
		"services/active":   failed,
		"system/machine-id": machine,
		"sshd/effective":    {content: "port 22\npermitrootlogin no\npasswordauthentication yes\nx11forwarding yes\n"},
		"sshd/config/etc/ssh/sshd_config.d/50-hardening.conf": {content: "PermitRootLogin no\nPasswordAuthentication no\nX11Forwarding no\n"},
		"sshd/config/etc/ssh/sshd_config.d/60-empty.conf":     {},
		"firewall/iptables":  {content: "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 23 -j DROP\nCOMMIT\n"},
		"firmware/blob":      {content: "\x00\x01new"},
		"packages/installed": {content: "openssh-server\t1:9.2p1-2+deb12u3\tamd64\tii\n"},
		"net/listening":      listening,
		"system/os-release":  osr,
		"system/motd":        {content: "welcome back"},
	})
	return st, set
}

func build(t testing.TB) *Bundle {
	t.Helper()
	st, set := synthetic(t)
	b, err := Build(t.Context(), st, incidentID, set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "evidence", "golden", name)
	testutil.Golden(t, path, got)
}

func TestReportGolden(t *testing.T) {
	defer func(v string) { buildinfo.Version = v }(buildinfo.Version)
	buildinfo.Version = "1.0.0-test"
	b := build(t)
	report, _ := b.File(ReportName)
	golden(t, "report.md", report)
	golden(t, "manifest.json", b.ManifestBytes(nil))
	golden(t, "combined.diff", b.files[CombinedDiff])
	junit, _ := b.File(ResultsJUnit)
	golden(t, "results.junit.xml", junit)
}

// The manifest says what the store holds: spot checks independent of the golden files.
func TestBuildContent(t *testing.T) {
	b := build(t)
	m := b.Manifest
	if m.Status != "regressed" || len(m.Targets) != 2 || m.Targets[0].Target != "db1" || m.Targets[0].Exported || !m.Targets[1].Exported {
		t.Fatalf("status %s, targets %+v", m.Status, m.Targets)
	}
	if want := t0.Add(24 * time.Hour); !m.AsOf.Equal(want) {
		t.Errorf("as of %s, want the newest snapshot's time %s", m.AsOf, want)
	}
	if !b.mtime.Equal(t0.Add(90 * time.Minute)) {
		t.Errorf("mtime %s, want the after snapshot's time", b.mtime)
	}
	if strings.Join(m.Rules, ",") != "inc7-sshd-no-passwords,inc7-sshd-no-root,inc7-sshd-port" {
		t.Errorf("linked rules %v", m.Rules)
	}
	web := m.Targets[1]
	changes := map[string]Artifact{}
	for _, a := range web.Artifacts {
		changes[a.Name] = a
	}
	for name, want := range map[string]string{
		"sshd/effective":     Modified,
		"firmware/blob":      Binary,
		"packages/installed": NotCaptured,
		"net/listening":      Unchanged,
		"system/os-release":  Unchanged,
		"sshd/config/etc/ssh/sshd_config.d/40-legacy.conf": Removed,
		"sshd/config/etc/ssh/sshd_config.d/60-empty.conf":  Added,
		"system/motd": Modified,
	} {
		if got := changes[name].Change; got != want {
			t.Errorf("%s: change %q, want %q", name, got, want)
		}
	}
	if a := changes["sshd/effective"]; a.State != "regressed" || len(a.Reverted) != 2 || a.Reverted[0] != "line 3 is back: passwordauthentication yes" {
		t.Errorf("sshd/effective against newest: %+v", a)
	}
	for p, want := range map[string]bool{
		"before/web1/packages/installed": false, // unavailable: not written, not empty
		"after/web1/packages/installed":  true,
		"before/web1/net/listening":      false,
		"before/web1/firmware/blob":      true,
		"diff/web1/firmware/blob.diff":   false, // binary: by hash only
		"diff/web1/sshd/effective.diff":  true,
		"before/db1/sshd/effective":      false, // db1 has no after snapshot
	} {
		if _, ok := b.File(p); ok != want {
			t.Errorf("file %s present = %v, want %v", p, ok, want)
		}
	}
	if c, _ := b.File("after/web1/firmware/blob"); string(c) != "\x00\x01new" {
		t.Errorf("binary artifact not written as is: %q", c)
	}
	if a := changes["packages/installed"]; a.Before == nil || a.Before.Unavailable != "not installed: dpkg-query" {
		t.Errorf("unavailable artifact without its reason: %+v", a)
	}
	var outcomes []string
	for _, r := range web.Results.Rules {
		outcomes = append(outcomes, r.Rule+"="+string(r.Before)+"/"+string(r.After)+"/"+string(r.Newest))
	}
	if got := strings.Join(outcomes, " "); got != "inc7-sshd-no-passwords=fail/pass/fail inc7-sshd-no-root=fail/pass/pass inc7-sshd-port=pass/pass/pass" {
		t.Errorf("rule outcomes: %s", got)
	}
	res, _ := b.File(ResultsJSON)
	for _, want := range []string{`"format": "hardtrail-results/1"`, `"target": "web1:before"`, `"target": "web1:newest"`, `"target": "db1:before"`} {
		if !bytes.Contains(res, []byte(want)) {
			t.Errorf("results.json lacks %s", want)
		}
	}
	if bytes.Contains(res, []byte("other-x11")) {
		t.Error("results.json holds a rule not linked to the incident")
	}
}

// The same evidence gives the same bytes, built and written twice.
func TestDeterministic(t *testing.T) {
	st, set := synthetic(t)
	_, key, _ := ed25519.GenerateKey(nil)
	var outs [][]byte
	for range 2 {
		b, err := Build(t.Context(), st, incidentID, set)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := b.Write(&buf, key); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, buf.Bytes())
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Fatal("two exports of the same evidence differ")
	}
	// Every entry: uid/gid 0, no owner names, the after snapshot's time, 0644 or 0755.
	entries := testutil.ReadTarGz(t, outs[0])
	for _, e := range entries {
		h := e.H
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(t0.Add(90*time.Minute)) {
			t.Errorf("%s: uid %d gid %d %q %q time %s", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime)
		}
		if (h.Typeflag == tar.TypeDir) != (h.Mode == 0o755) || (h.Typeflag == tar.TypeReg) != (h.Mode == 0o644) {
			t.Errorf("%s: type %c mode %o", h.Name, h.Typeflag, h.Mode)
		}
	}
	for i := 1; i < len(entries); i++ {
		if entries[i-1].H.Name >= entries[i].H.Name {
			t.Errorf("entries out of order: %s before %s", entries[i-1].H.Name, entries[i].H.Name)
		}
	}
}

type entry = testutil.TarEntry

func mutate(t testing.TB, archive []byte, f func([]entry) []entry) []byte {
	return testutil.WriteTarGz(t, f(testutil.ReadTarGz(t, archive)))
}

func signedBundle(t testing.TB) ([]byte, ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, key, _ := ed25519.GenerateKey(nil)
	var buf bytes.Buffer
	if err := build(t).Write(&buf, key); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), pub, key
}

func TestVerifyGood(t *testing.T) {
	archive, pub, _ := signedBundle(t)
	v, err := Verify(bytes.NewReader(archive), pub, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Signed || !v.SignatureChecked || v.Signer != Fingerprint(pub) || strings.Join(v.Targets, ",") != "db1,web1" || v.Manifest.Incident != incidentID {
		t.Errorf("verified: %+v", v)
	}
	if v.Files != len(v.Manifest.Files)+2 {
		t.Errorf("%d files, manifest lists %d", v.Files, len(v.Manifest.Files))
	}
	v, err = Verify(bytes.NewReader(archive), nil, DefaultLimits)
	if err != nil || v.SignatureChecked || !v.Signed || v.Signer != Fingerprint(pub) {
		t.Errorf("without a key: %+v, %v", v, err)
	}
	// An unsigned bundle verifies without a key, and fails with one.
	var buf bytes.Buffer
	build(t).Write(&buf, nil)
	if v, err := Verify(bytes.NewReader(buf.Bytes()), nil, DefaultLimits); err != nil || v.Signed {
		t.Errorf("unsigned: %+v, %v", v, err)
	}
	wantFailure(t, buf.Bytes(), pub, incidentID+"/manifest.json.sig", "the bundle is not signed")
}

func wantFailure(t *testing.T, archive []byte, pub ed25519.PublicKey, path, msg string) {
	t.Helper()
	_, err := Verify(bytes.NewReader(archive), pub, DefaultLimits)
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("want a failure of %s, got %v", path, err)
	}
	if f.Path != path || !strings.Contains(f.Msg, msg) {
		t.Errorf("failure %q, want %s: ...%s...", err, path, msg)
	}
}

func flip(name string, at func(data []byte) int) func([]entry) []entry {
	return func(es []entry) []entry {
		for i := range es {
			if es[i].H.Name == name {
				d := bytes.Clone(es[i].Data)
				d[at(d)] ^= 0x01
				es[i].Data = d
			}
		}
		return es
	}
}

func middle(d []byte) int { return len(d) / 2 }

func TestVerifyTampered(t *testing.T) {
	archive, pub, _ := signedBundle(t)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	id := incidentID + "/"
	for _, tc := range []struct {
		name  string
		f     func([]entry) []entry
		nokey bool
		path  string
		msg   string
	}{
		{name: "artifact byte", f: flip(id+"after/web1/sshd/effective", middle), path: id + "after/web1/sshd/effective", msg: "sha256 mismatch"},
		{name: "diff byte", f: flip(id+"diff/web1/sshd/effective.diff", middle), path: id + "diff/web1/sshd/effective.diff", msg: "sha256 mismatch"},
		{name: "combined diff byte", f: flip(id+"diff/combined.diff", middle), path: id + "diff/combined.diff", msg: "sha256 mismatch"},
		{name: "report byte", f: flip(id+"report.md", middle), path: id + "report.md", msg: "sha256 mismatch"},
		{name: "binary artifact byte", f: flip(id+"before/web1/firmware/blob", middle), path: id + "before/web1/firmware/blob", msg: "sha256 mismatch"},
		{name: "manifest byte", f: flip(id+"manifest.json", middle), path: id + "manifest.json", msg: "signature does not verify"},
		{name: "signature byte", f: flip(id+"manifest.json.sig", middle), path: id + "manifest.json", msg: "signature does not verify"},
		{name: "manifest byte, no key: JSON broken", nokey: true, f: flip(id+"manifest.json", func([]byte) int { return 0 }), path: id + "manifest.json", msg: "not a valid manifest"},
		{name: "file removed", f: func(es []entry) []entry {
			return remove(es, id+"before/web1/system/motd")
		}, path: id + "before/web1/system/motd", msg: "listed in the manifest but missing"},
		{name: "file added", f: func(es []entry) []entry {
			return append(es, entry{H: &tar.Header{Name: id + "after/web1/backdoor", Typeflag: tar.TypeReg, Mode: 0o644}, Data: []byte("x")})
		}, path: id + "after/web1/backdoor", msg: "not listed in the manifest"},
		{name: "file grown", f: func(es []entry) []entry {
			for i := range es {
				if es[i].H.Name == id+"results.json" {
					es[i].Data = append(es[i].Data, ' ')
				}
			}
			return es
		}, path: id + "results.json", msg: "size mismatch"},
		{name: "signature removed", f: func(es []entry) []entry { return remove(es, id+"manifest.json.sig") }, path: id + "manifest.json.sig", msg: "not signed"},
		{name: "signature removed, no key", nokey: true, f: func(es []entry) []entry { return remove(es, id+"manifest.json.sig") }, path: id + "manifest.json.sig", msg: "the manifest says SHA256:"},
		{name: "signature truncated", f: func(es []entry) []entry {
			for i := range es {
				if es[i].H.Name == id+"manifest.json.sig" {
					es[i].Data = es[i].Data[:10]
				}
			}
			return es
		}, path: id + "manifest.json.sig", msg: "not an ed25519 signature"},
		{name: "re-signed by another key", f: func(es []entry) []entry {
			var m []byte
			for _, e := range es {
				if e.H.Name == id+"manifest.json" {
					m = e.Data
				}
			}
			for i := range es {
				if es[i].H.Name == id+"manifest.json.sig" {
					es[i].Data = ed25519.Sign(otherKey, m)
				}
			}
			return es
		}, path: id + "manifest.json", msg: "signature does not verify with key " + Fingerprint(pub)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := pub
			if tc.nokey {
				key = nil
			}
			wantFailure(t, mutate(t, archive, tc.f), key, tc.path, tc.msg)
		})
	}
}

func remove(es []entry, name string) []entry {
	var out []entry
	for _, e := range es {
		if e.H.Name != name {
			out = append(out, e)
		}
	}
	return out
}

// A bundle whose hashes are consistent but whose diffs lie: made by a faulty or hostile
// exporter that recomputed the manifest. The diff replay catches it.
func TestVerifyDiffReplay(t *testing.T) {
	b := build(t)
	for _, tc := range []struct {
		name, path, msg string
		f               func(b *Bundle)
	}{
		{"combined diff drops a file", CombinedDiff, "does not give after/", func(b *Bundle) {
			b.files[CombinedDiff] = cutSegment(b.files[CombinedDiff], 0)
		}},
		{"combined diff with extra text", CombinedDiff, "not part of its change", func(b *Bundle) {
			b.files[CombinedDiff] = append(bytes.Clone(b.files[CombinedDiff]), "rm -rf /\n"...)
		}},
		{"artifact diff for the wrong file", "diff/web1/system/motd.diff", "want the diff of web1/system/motd alone", func(b *Bundle) {
			b.files["diff/web1/system/motd.diff"] = b.files["diff/web1/sshd/effective.diff"]
		}},
		{"after file edited, diffs not", CombinedDiff, "differs from after/web1/sshd/effective", func(b *Bundle) {
			b.files["after/web1/sshd/effective"] = []byte("port 22\npermitrootlogin no\npasswordauthentication no\nx11forwarding no\n")
			for i := range b.Manifest.Targets[1].Artifacts {
				a := &b.Manifest.Targets[1].Artifacts[i]
				if a.Name == "sshd/effective" {
					a.After = &Version{SHA256: store.Hash(b.files["after/web1/sshd/effective"]), Size: int64(len(b.files["after/web1/sshd/effective"]))}
					a.Diff = ""
				}
			}
			delete(b.files, "diff/web1/sshd/effective.diff")
		}},
		{"text artifact claimed binary", "before/web1/system/motd", "binary flag is wrong", func(b *Bundle) {
			for i := range b.Manifest.Targets[1].Artifacts {
				a := &b.Manifest.Targets[1].Artifacts[i]
				if a.Name == "system/motd" {
					a.Before.Binary, a.After.Binary = true, true
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *b
			c.files = map[string][]byte{}
			for p, d := range b.files {
				c.files[p] = d
			}
			c.Manifest.Targets = append([]Target(nil), b.Manifest.Targets...)
			c.Manifest.Targets[1].Artifacts = append([]Artifact(nil), b.Manifest.Targets[1].Artifacts...)
			for i := range c.Manifest.Targets[1].Artifacts {
				a := &c.Manifest.Targets[1].Artifacts[i]
				if a.Before != nil {
					v := *a.Before
					a.Before = &v
				}
				if a.After != nil {
					v := *a.After
					a.After = &v
				}
			}
			tc.f(&c)
			c.Manifest.Files = fileList(c.files)
			var buf bytes.Buffer
			if err := c.Write(&buf, nil); err != nil {
				t.Fatal(err)
			}
			wantFailure(t, buf.Bytes(), nil, incidentID+"/"+tc.path, tc.msg)
		})
	}
}

// cutSegment removes the n-th file from a bundle diff.
func cutSegment(d []byte, n int) []byte {
	segs, _ := splitDiff(d)
	var out []byte
	rest := d
	for i := range segs {
		end := len(rest)
		if j := bytes.Index(rest, []byte("\n"+gitHeader)); j >= 0 {
			end = j + 1
		}
		if i != n {
			out = append(out, rest[:end]...)
		}
		rest = rest[end:]
	}
	return out
}

// GNU patch applies the combined diff inside before/ and gives after/, names with spaces and
// empty files included; binary artifacts, listed by hash, are the only files left different.
func TestGNUPatchAppliesCombinedDiff(t *testing.T) {
	patch := testutil.Tool(t, "patch")
	b := build(t)
	dir := t.TempDir()
	for p, c := range b.files {
		if r, ok := strings.CutPrefix(p, BeforeDir+"/"); ok {
			f := filepath.Join(dir, filepath.FromSlash(r))
			testutil.Must(t, os.MkdirAll(filepath.Dir(f), 0o755))
			testutil.Must(t, os.WriteFile(f, c, 0o644))
		}
	}
	cmd := exec.Command(patch, "-p1", "--batch", "--no-backup-if-mismatch")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(b.files[CombinedDiff])
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("patch: %v\n%s", err, out)
	}
	got := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			got[filepath.ToSlash(rel)], _ = os.ReadFile(p)
		}
		return nil
	})
	want := map[string][]byte{}
	for p, c := range b.files {
		if r, ok := strings.CutPrefix(p, AfterDir+"/"); ok {
			want[r] = c
		}
	}
	if _, ok := want["web1/sshd/config/etc/ssh/local overrides/empty file.conf"]; !ok {
		t.Fatal("the fixture lacks its empty file with a space in its name")
	}
	const blob = "web1/firmware/blob"
	if bytes.Equal(got[blob], want[blob]) {
		t.Error("the binary artifact was patched")
	}
	delete(got, blob)
	delete(want, blob)
	if p, why := treeDiff(got, want); p != "" {
		t.Errorf("after patch -p1: %s %s", p, why)
	}
}
