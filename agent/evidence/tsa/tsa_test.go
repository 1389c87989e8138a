package tsa_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/evidence/tsa"
	"github.com/hardtrail/hardtrail/agent/evidence/tsa/tsatest"
)

func pool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tsa.LoadCA(data, file)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRequestOpenSSL asks a real openssl TSA for a token, verifies it, and has openssl verify
// it too; then alters the data, the token and the trust anchor, and both must refuse.
func TestRequestOpenSSL(t *testing.T) {
	srv := tsatest.Start(t)
	data := []byte(`{"format":"hardtrail-evidence/2"}` + "\n")
	digest := sha256.Sum256(data)
	before := time.Now().Add(-2 * time.Second)
	resp, tok, err := tsa.Request(t.Context(), nil, srv.URL, digest[:], pool(t, srv.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Trusted || !bytes.Equal(tok.Digest, digest[:]) || tok.Serial == nil {
		t.Fatalf("token %+v", tok)
	}
	if tok.Time.Before(before) || tok.Time.After(time.Now().Add(2*time.Second)) {
		t.Errorf("token time %v, want about now", tok.Time)
	}
	if !strings.Contains(tok.Signer, "hardtrail test TSA") || tok.Policy.String() != "1.3.6.1.4.1.55555.1" {
		t.Errorf("signer %q policy %v", tok.Signer, tok.Policy)
	}
	if out, err := srv.OpenSSLVerify(t, resp, data); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("openssl ts -verify refused our token: %v\n%s", err, out)
	}

	// Another digest: both refuse.
	other := append(bytes.Clone(data), ' ')
	od := sha256.Sum256(other)
	if _, err := tsa.Verify(resp, od[:], nil); !errors.Is(err, tsa.ErrImprint) {
		t.Errorf("other digest: %v, want ErrImprint", err)
	}
	if out, err := srv.OpenSSLVerify(t, resp, other); err == nil {
		t.Errorf("openssl accepted the token for other data:\n%s", out)
	}

	// Without a CA: checked, not trusted.
	if tok, err := tsa.Verify(resp, digest[:], nil); err != nil || tok.Trusted {
		t.Errorf("without CA: %+v, %v", tok, err)
	}

	// Another CA: untrusted.
	if _, err := tsa.Verify(resp, digest[:], pool(t, tsatest.Start(t).CAFile)); !errors.Is(err, tsa.ErrUntrusted) {
		t.Errorf("other CA: %v, want ErrUntrusted", err)
	}

	// An altered signature (the last bytes of the response), and an altered TSTInfo (its
	// imprint, re-pointed at the altered data's digest): both refuse.
	bad := bytes.Clone(resp)
	bad[len(bad)-5] ^= 0x40
	if _, err := tsa.Verify(bad, digest[:], pool(t, srv.CAFile)); !errors.Is(err, tsa.ErrSignature) {
		t.Errorf("altered signature: %v, want ErrSignature", err)
	}
	if out, err := srv.OpenSSLVerify(t, bad, data); err == nil {
		t.Errorf("openssl accepted an altered signature:\n%s", out)
	}
	i := bytes.Index(resp, digest[:])
	if i < 0 {
		t.Fatal("the imprint is not in the response")
	}
	forged := bytes.Clone(resp)
	copy(forged[i:], od[:])
	if _, err := tsa.Verify(forged, od[:], pool(t, srv.CAFile)); !errors.Is(err, tsa.ErrSignature) {
		t.Errorf("forged imprint: %v, want ErrSignature", err)
	}
	if out, err := srv.OpenSSLVerify(t, forged, other); err == nil {
		t.Errorf("openssl accepted a forged imprint:\n%s", out)
	}
	if srv.Requests() != 1 {
		t.Errorf("%d requests, want 1", srv.Requests())
	}
}

// TestRequestDER has openssl read the request we build.
func TestRequestDER(t *testing.T) {
	srv := tsatest.Start(t)
	digest := sha256.Sum256([]byte("x"))
	der, nonce, err := tsa.NewRequest(digest[:])
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "q.tsq")
	os.WriteFile(f, der, 0o600)
	out, err := exec.Command(srv.OpenSSL, "ts", "-query", "-in", f, "-text").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl cannot read the request: %v\n%s", err, out)
	}
	for _, want := range []string{"Version: 1", "Hash Algorithm: sha256", "Certificate required: yes",
		strings.ToLower(nonce.Text(16))} {
		if !strings.Contains(strings.ToLower(string(out)), strings.ToLower(want)) {
			t.Errorf("openssl's view lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := tsa.NewRequest(digest[:20]); err == nil {
		t.Error("a 20-byte digest was accepted")
	}
}

// TestRequestRefused covers a TSA that rejects, one that replays an old answer, and one that
// answers something else.
func TestRequestRefused(t *testing.T) {
	real := tsatest.Start(t)
	digest := sha256.Sum256([]byte("y"))
	old, _, err := tsa.Request(t.Context(), nil, real.URL, digest[:], nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ct   string
		body []byte
		want error
	}{
		{"rejected", "application/timestamp-reply", []byte{0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02}, tsa.ErrRejected},
		{"replayed", "application/timestamp-reply", old, tsa.ErrMalformed},
		{"html", "text/html", []byte("<html>"), tsa.ErrMalformed},
		{"garbage", "application/timestamp-reply", []byte("garbage"), tsa.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ct)
				w.Write(tc.body)
			}))
			defer srv.Close()
			_, _, err := tsa.Request(t.Context(), nil, srv.URL, digest[:], nil)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), srv.URL) {
				t.Errorf("got %v, want %v naming the URL", err, tc.want)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte{0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x00})
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := sha256.Sum256(nil)
		tok, err := tsa.Verify(b, d[:], nil)
		if err == nil && tok == nil {
			t.Fatal("nil token without error")
		}
	})
}
