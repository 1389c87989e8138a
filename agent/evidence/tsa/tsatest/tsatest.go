// Package tsatest runs a real RFC 3161 timestamp authority for tests: `openssl ts -reply`
// behind a loopback HTTP handler, with a CA and a TSA certificate made by openssl.
package tsatest

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// TSA is a running test timestamp authority.
type TSA struct {
	URL     string // POST application/timestamp-query here
	Dir     string // holds ca.crt, tsa.crt, tsa.key, tsa.cnf
	CAFile  string // the CA certificate (PEM) that signed the TSA's certificate
	TSACert string // the TSA's own certificate (PEM)
	OpenSSL string // the openssl binary

	mu       sync.Mutex
	requests int
}

// Requests counts the timestamp requests answered.
func (s *TSA) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

const config = `[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = placeholder
[ ca_ext ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ tsa_ext ]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature,nonRepudiation
extendedKeyUsage = critical,timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = DIR
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.crt
certs = $dir/ca.crt
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.55555.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
`

// Start makes a CA and a TSA certificate in a temporary directory and serves `openssl ts
// -reply` on loopback until the test ends. It skips the test (fails it in CI) without openssl.
func Start(t testing.TB) *TSA {
	t.Helper()
	ossl := testutil.Tool(t, "openssl")
	dir := t.TempDir()
	cnf := filepath.Join(dir, "tsa.cnf")
	if err := os.WriteFile(cnf, bytes.ReplaceAll([]byte(config), []byte("DIR"), []byte(dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "serial"), []byte("01\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(ossl, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	run("req", "-config", cnf, "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
		"-days", "3650", "-subj", "/CN=hardtrail test TSA CA", "-extensions", "ca_ext")
	run("req", "-config", cnf, "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "tsa.key", "-out", "tsa.csr",
		"-subj", "/CN=hardtrail test TSA")
	run("x509", "-req", "-in", "tsa.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "tsa.crt",
		"-days", "3650", "-extfile", cnf, "-extensions", "tsa_ext")
	s := &TSA{Dir: dir, CAFile: filepath.Join(dir, "ca.crt"), TSACert: filepath.Join(dir, "tsa.crt"), OpenSSL: ossl}
	var seq sync.Mutex // openssl increments the serial file: one reply at a time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/timestamp-query" {
			http.Error(w, "POST application/timestamp-query", http.StatusBadRequest)
			return
		}
		q, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		seq.Lock()
		defer seq.Unlock()
		f, err := os.CreateTemp(dir, "req-*.tsq")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer os.Remove(f.Name())
		f.Write(q)
		f.Close()
		out := f.Name() + ".tsr"
		defer os.Remove(out)
		cmd := exec.CommandContext(r.Context(), ossl, "ts", "-reply", "-config", cnf, "-queryfile", f.Name(), "-out", out)
		if msg, err := cmd.CombinedOutput(); err != nil {
			http.Error(w, string(msg), http.StatusInternalServerError)
			return
		}
		resp, err := os.ReadFile(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.mu.Lock()
		s.requests++
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/timestamp-reply")
		w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// OpenSSLVerify checks a response over data with `openssl ts -verify`, the oracle, and
// returns its output and error.
func (s *TSA) OpenSSLVerify(t testing.TB, resp, data []byte) (string, error) {
	t.Helper()
	dir := t.TempDir()
	rf, df := filepath.Join(dir, "r.tsr"), filepath.Join(dir, "data")
	if err := os.WriteFile(rf, resp, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(df, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(s.OpenSSL, "ts", "-verify", "-in", rf, "-data", df, "-CAfile", s.CAFile).CombinedOutput()
	return string(out), err
}
