package evidence

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

func TestGenerateKey(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "signing")
	pub, err := GenerateKey(prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{prefix: 0o600, prefix + ".pub": 0o644} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v, want %v", p, err, st.Mode(), mode)
		}
	}
	priv, err := LoadPrivateKey(prefix)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadPublicKey(prefix + ".pub")
	if err != nil || !loaded.Equal(pub) || !pub.Equal(priv.Public()) {
		t.Fatalf("public key %v, err %v", loaded, err)
	}
	if fp := Fingerprint(pub); !strings.HasPrefix(fp, "SHA256:") || len(fp) != len("SHA256:")+43 {
		t.Errorf("fingerprint %q", fp)
	}
	// Never overwrite, either file; nothing left behind when refusing.
	before, _ := os.ReadFile(prefix)
	if _, err := GenerateKey(prefix, nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("overwrite: %v", err)
	}
	if after, _ := os.ReadFile(prefix); !bytes.Equal(before, after) {
		t.Error("private key overwritten")
	}
	other := filepath.Join(dir, "other")
	testutil.Must(t, os.WriteFile(other+".pub", []byte("keep me"), 0o644))
	if _, err := GenerateKey(other, nil); err == nil || !strings.Contains(err.Error(), "other.pub already exists") {
		t.Errorf("existing .pub: %v", err)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Error("private key written although the public key file exists")
	}
	if _, err := GenerateKey(filepath.Join(dir, "missing", "k"), nil); err == nil {
		t.Error("key written into a missing directory")
	}
}

func TestLoadKeyErrors(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "k")
	if _, err := GenerateKey(prefix, nil); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(dir, "loose")
	data, _ := os.ReadFile(prefix)
	testutil.Must(t, os.WriteFile(loose, data, 0o644))
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPubDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		testutil.Must(t, os.WriteFile(p, data, 0o600))
		return p
	}
	ecKey := write("ec", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))
	ecPub := write("ec.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPubDER}))
	pubAsPriv := write("swapped", func() []byte { b, _ := os.ReadFile(prefix + ".pub"); return b }())
	garbage := write("garbage", []byte("not a key\n"))
	trailing := write("trailing", append(data, "extra"...))
	for _, tc := range []struct {
		name string
		load func() error
		err  string
	}{
		{"readable by others", func() error { _, err := LoadPrivateKey(loose); return err }, "readable by others (mode 0644)"},
		{"ecdsa private", func() error { _, err := LoadPrivateKey(ecKey); return err }, "not an ed25519 key"},
		{"ecdsa public", func() error { _, err := LoadPublicKey(ecPub); return err }, "not an ed25519 key"},
		{"public as private", func() error { _, err := LoadPrivateKey(pubAsPriv); return err }, `PEM block "PUBLIC KEY", want "PRIVATE KEY"`},
		{"private as public", func() error { _, err := LoadPublicKey(prefix); return err }, `want "PUBLIC KEY"`},
		{"garbage", func() error { _, err := LoadPublicKey(garbage); return err }, "no PEM block"},
		{"data after the key", func() error { _, err := LoadPrivateKey(trailing); return err }, "data after the PEM block"},
		{"missing", func() error { _, err := LoadPublicKey(filepath.Join(dir, "nope")); return err }, "no such file"},
		{"directory", func() error { _, err := LoadPublicKey(dir); return err }, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.load(); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("got %v, want ...%s...", err, tc.err)
			}
		})
	}
}

// An auditor without hardtrail checks the signature and the fingerprint with OpenSSL.
func TestOpenSSLVerifiesSignature(t *testing.T) {
	openssl := testutil.Tool(t, "openssl")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "k")
	pub, err := GenerateKey(prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := LoadPrivateKey(prefix)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := build(t).Write(&buf, key); err != nil {
		t.Fatal(err)
	}
	for _, e := range testutil.ReadTarGz(t, buf.Bytes()) {
		switch strings.TrimPrefix(e.H.Name, incidentID+"/") {
		case ManifestName, SignatureName:
			testutil.Must(t, os.WriteFile(filepath.Join(dir, filepath.Base(e.H.Name)), e.Data, 0o600))
		}
	}
	manifest, sig := filepath.Join(dir, ManifestName), filepath.Join(dir, SignatureName)
	out, err := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", prefix+".pub", "-rawin", "-in", manifest, "-sigfile", sig).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Signature Verified Successfully") {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	// Altered by one byte, OpenSSL refuses it too.
	m, _ := os.ReadFile(manifest)
	m[len(m)/2] ^= 1
	testutil.Must(t, os.WriteFile(manifest, m, 0o600))
	if out, err := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", prefix+".pub", "-rawin", "-in", manifest, "-sigfile", sig).CombinedOutput(); err == nil {
		t.Errorf("openssl verified an altered manifest:\n%s", out)
	}
	// The fingerprint, as the documentation says to compute it.
	der, err := exec.Command(openssl, "pkey", "-pubin", "-in", prefix+".pub", "-outform", "DER").Output()
	if err != nil {
		t.Fatal(err)
	}
	dgst := exec.Command(openssl, "dgst", "-sha256", "-binary")
	dgst.Stdin = bytes.NewReader(der)
	sum, err := dgst.Output()
	if err != nil {
		t.Fatal(err)
	}
	b64 := exec.Command(openssl, "base64", "-A")
	b64.Stdin = bytes.NewReader(sum)
	enc, err := b64.Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "SHA256:" + strings.TrimRight(strings.TrimSpace(string(enc)), "="); Fingerprint(pub) != want {
		t.Errorf("fingerprint %s, openssl gives %s", Fingerprint(pub), want)
	}
}

// A run that stopped after writing the private key is completed by the next: it writes the
// public key of that private key. A truncated private key is refused, never overwritten.
func TestGenerateKeyCompletesInterruptedPair(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "k")
	pub, err := GenerateKey(prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(prefix + ".pub")
	again, err := GenerateKey(prefix, nil)
	if err != nil || !again.Equal(pub) {
		t.Fatalf("completing the pair: %v (same key %v)", err, again.Equal(pub))
	}
	if got, err := LoadPublicKey(prefix + ".pub"); err != nil || !got.Equal(pub) {
		t.Fatalf("written public key: %v", err)
	}
	half := filepath.Join(dir, "half")
	whole, _ := os.ReadFile(prefix)
	os.WriteFile(half, whole[:len(whole)/2], 0o600)
	if _, err := GenerateKey(half, nil); err == nil || !strings.Contains(err.Error(), "not a whole key") {
		t.Errorf("truncated key: %v", err)
	}
	if b, _ := os.ReadFile(half); len(b) != len(whole)/2 {
		t.Error("truncated key overwritten")
	}
}

// A run killed after linking the public key into place, before removing its temporary name,
// leaves the pair whole and the name behind. The next run refuses to overwrite the pair, and
// removes the name all the same.
func TestGenerateKeyRemovesTempOfKilledRun(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "k")
	if _, err := GenerateKey(prefix, nil); err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(dir, fmt.Sprintf(".k.pub.tmp-%d-0123abcd", dead.Process.Pid))
	if err := os.Link(prefix+".pub", left); err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKey(prefix, nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second run over a whole pair: %v", err)
	}
	if _, err := os.Lstat(left); err == nil {
		t.Errorf("%s is still there after the next run", left)
	}
}
