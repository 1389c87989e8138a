package intoto_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/agent/evidence/intoto"
)

// TestPAESpecVector checks PAE against the DSSE protocol's test vector: its text, and the
// vector's ECDSA P-256 signature, which verifies only over exactly those bytes.
func TestPAESpecVector(t *testing.T) {
	got := intoto.PAE("http://example.com/HelloWorld", []byte("hello world"))
	if want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"; string(got) != want {
		t.Fatalf("PAE = %q, want %q", got, want)
	}
	x, _ := new(big.Int).SetString("46950820868899156662930047687818585632848591499744589407958293238635476079160", 10)
	y, _ := new(big.Int).SetString("5640078356564379163099075877009565129882514886557779369047442380624545832820", 10)
	point := append([]byte{4}, append(x.FillBytes(make([]byte, 32)), y.FillBytes(make([]byte, 32))...)...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString("A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA==")
	if err != nil || len(sig) != 64 {
		t.Fatal(err)
	}
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	h := sha256.Sum256(got)
	if !ecdsa.Verify(pub, h[:], r, s) {
		t.Fatal("the specification's signature does not verify over our PAE")
	}
	h = sha256.Sum256(intoto.PAE("http://example.com/HelloWorld", []byte("hello world!")))
	if ecdsa.Verify(pub, h[:], r, s) {
		t.Fatal("the check cannot fail")
	}
	// Lengths are bytes, not runes.
	if got := intoto.PAE("t", []byte("é")); string(got) != "DSSEv1 1 t 2 é" {
		t.Errorf("PAE counts bytes: %q", got)
	}
}

// independentVerify checks an envelope as the DSSE specification describes, without the
// package: decode (either base64 alphabet), rebuild the PAE by the spec's formula, verify.
func independentVerify(t *testing.T, env []byte, pub ed25519.PublicKey) map[string]any {
	t.Helper()
	var e struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	body, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		body, err = base64.URLEncoding.DecodeString(e.Payload)
	}
	if err != nil {
		t.Fatal(err)
	}
	pae := fmt.Sprintf("DSSEv1 %d %s %d %s", len(e.PayloadType), e.PayloadType, len(body), body)
	ok := false
	for _, s := range e.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err == nil && ed25519.Verify(pub, []byte(pae), sig) {
			ok = true
		}
	}
	if !ok {
		t.Fatal("independent check: no signature verifies")
	}
	var st map[string]any
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestSignVerify(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	manifest := []byte(`{"format":"hardtrail-evidence/2"}`)
	sum := sha256.Sum256(manifest)
	st := intoto.NewStatement(
		intoto.NewTestResult([]string{"ssh-no-root@web1"}, nil, []string{"nft-drop@web1"},
			intoto.ResourceDescriptor{Name: "rules", Digest: map[string]string{"sha256": strings.Repeat("ab", 32)}}),
		intoto.ResourceDescriptor{Name: "manifest.json", Digest: map[string]string{"sha256": fmt.Sprintf("%x", sum)}})
	env, err := intoto.Sign(st, key, "SHA256:k")
	if err != nil {
		t.Fatal(err)
	}
	raw := independentVerify(t, env, pub)
	if raw["_type"] != intoto.StatementType || raw["predicateType"] != intoto.TestResultType {
		t.Errorf("statement %v", raw)
	}
	if p := raw["predicate"].(map[string]any); p["result"] != "FAILED" || len(p["passedTests"].([]any)) != 1 {
		t.Errorf("predicate %v", p)
	}
	v, err := intoto.Verify(env, pub)
	if err != nil || !v.Checked || !v.Signed {
		t.Fatalf("%+v %v", v, err)
	}
	if d, ok := v.Statement.SubjectDigest("manifest.json"); !ok || d != fmt.Sprintf("%x", sum) {
		t.Errorf("subject digest %q %v", d, ok)
	}
	if _, err := intoto.Verify(env, other); !errors.Is(err, intoto.ErrSignature) {
		t.Errorf("other key: %v", err)
	}
	// A payload changed after signing, though still valid JSON, must not verify.
	var e intoto.Envelope
	json.Unmarshal(env, &e)
	body, _ := base64.StdEncoding.DecodeString(e.Payload)
	e.Payload = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(body), "FAILED", "PASSED", 1)))
	tampered, _ := json.Marshal(e)
	if _, err := intoto.Verify(tampered, pub); !errors.Is(err, intoto.ErrSignature) {
		t.Errorf("tampered payload: %v", err)
	}
	// The payload type is authenticated too.
	json.Unmarshal(env, &e)
	e.PayloadType = "application/json"
	tampered, _ = json.Marshal(e)
	if _, err := intoto.Verify(tampered, pub); !errors.Is(err, intoto.ErrSignature) {
		t.Errorf("changed payload type: %v", err)
	}
	// URL-safe base64 is accepted.
	json.Unmarshal(env, &e)
	e.Payload = base64.RawURLEncoding.EncodeToString(body)
	urlsafe, _ := json.Marshal(e)
	if _, err := intoto.Verify(urlsafe, pub); err != nil {
		t.Errorf("URL-safe payload: %v", err)
	}
}

func TestNewTestResult(t *testing.T) {
	for _, tc := range []struct {
		p, w, f []string
		want    string
	}{
		{nil, nil, nil, intoto.Passed},
		{[]string{"a"}, nil, nil, intoto.Passed},
		{[]string{"a"}, []string{"b"}, nil, intoto.Warned},
		{[]string{"a"}, []string{"b"}, []string{"c"}, intoto.Failed},
	} {
		if r := intoto.NewTestResult(tc.p, tc.w, tc.f); r.Result != tc.want || r.PassedTests == nil || r.FailedTests == nil {
			t.Errorf("%v %v %v: %+v", tc.p, tc.w, tc.f, r)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`))
	pub, _, _ := ed25519.GenerateKey(nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		intoto.Verify(b, nil)
		if v, err := intoto.Verify(b, pub); err == nil && !v.Checked {
			t.Fatal("verified without a checked signature")
		}
	})
}
