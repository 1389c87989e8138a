// Package intoto signs and verifies in-toto test-result attestations in DSSE envelopes.
package intoto

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Type URIs of the envelope's payload, the statement and its predicate.
const (
	PayloadType    = "application/vnd.in-toto+json"
	StatementType  = "https://in-toto.io/Statement/v1"
	TestResultType = "https://in-toto.io/attestation/test-result/v0.1"
)

// Results of a test run, as the test-result predicate names them.
const (
	Passed = "PASSED"
	Warned = "WARNED"
	Failed = "FAILED"
)

// Errors Verify returns; each failure matches one.
var (
	// ErrMalformed: not a DSSE envelope of an in-toto test-result statement.
	ErrMalformed = errors.New("malformed attestation")
	// ErrSignature: no signature of the envelope verifies with the key.
	ErrSignature = errors.New("attestation signature does not verify")
)

// ResourceDescriptor names an artifact by name and digest (in-toto v1 ResourceDescriptor).
type ResourceDescriptor struct {
	Name   string            `json:"name,omitempty"`
	URI    string            `json:"uri,omitempty"`
	Digest map[string]string `json:"digest,omitempty"`
}

// TestResult is the test-result predicate.
type TestResult struct {
	Result        string               `json:"result"`
	Configuration []ResourceDescriptor `json:"configuration"`
	URL           string               `json:"url,omitempty"`
	PassedTests   []string             `json:"passedTests"`
	WarnedTests   []string             `json:"warnedTests"`
	FailedTests   []string             `json:"failedTests"`
}

// NewTestResult is the predicate of a run: FAILED when a test failed, else WARNED when one
// warned, else PASSED. Nil lists become empty ones.
func NewTestResult(passed, warned, failed []string, config ...ResourceDescriptor) TestResult {
	nonNil := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	r := TestResult{Result: Passed, Configuration: config, PassedTests: nonNil(passed),
		WarnedTests: nonNil(warned), FailedTests: nonNil(failed)}
	if r.Configuration == nil {
		r.Configuration = []ResourceDescriptor{}
	}
	switch {
	case len(failed) > 0:
		r.Result = Failed
	case len(warned) > 0:
		r.Result = Warned
	}
	return r
}

// Statement is an in-toto Statement v1 with a test-result predicate.
type Statement struct {
	Type          string               `json:"_type"`
	Subject       []ResourceDescriptor `json:"subject"`
	PredicateType string               `json:"predicateType"`
	Predicate     TestResult           `json:"predicate"`
}

// NewStatement is the statement that the subjects passed the test run.
func NewStatement(pred TestResult, subjects ...ResourceDescriptor) Statement {
	return Statement{Type: StatementType, Subject: subjects, PredicateType: TestResultType, Predicate: pred}
}

// Envelope is a DSSE JSON envelope.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"` // base64 of the serialized body
	Signatures  []Signature `json:"signatures"`
}

// Signature is one signature of an envelope.
type Signature struct {
	KeyID string `json:"keyid,omitempty"`
	Sig   string `json:"sig"` // base64
}

// PAE is DSSE's pre-authentication encoding, the bytes a signature covers:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII decimal.
func PAE(payloadType string, body []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(body)))
	b.WriteByte(' ')
	b.Write(body)
	return b.Bytes()
}

// Sign serializes st and returns the indented JSON of its DSSE envelope, signed with key over
// the PAE and named by keyID (a hint, never trusted), or unsigned when key is nil.
func Sign(st Statement, key ed25519.PrivateKey, keyID string) ([]byte, error) {
	body, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	env := Envelope{PayloadType: PayloadType, Payload: base64.StdEncoding.EncodeToString(body), Signatures: []Signature{}}
	if key != nil {
		sig := ed25519.Sign(key, PAE(PayloadType, body))
		env.Signatures = append(env.Signatures, Signature{KeyID: keyID, Sig: base64.StdEncoding.EncodeToString(sig)})
	}
	out, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// decode accepts standard and URL-safe base64, padded or not, as DSSE requires.
func decode(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// Verified is an envelope that was read, and whether a signature was checked.
type Verified struct {
	Statement Statement
	// Signed is true when the envelope has signatures; Checked when one verified with the key.
	Signed, Checked bool
}

// Verify parses a DSSE envelope of an in-toto test-result statement. When pub is not nil,
// one of its signatures must verify with pub over the PAE of its payload type and body; when
// pub is nil nothing is verified and Checked is false.
func Verify(data []byte, pub ed25519.PublicKey) (*Verified, error) {
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("%w: not a DSSE envelope: %v", ErrMalformed, err)
	}
	body, err := decode(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	v := &Verified{Signed: len(env.Signatures) > 0}
	if pub != nil {
		m := PAE(env.PayloadType, body)
		for _, s := range env.Signatures {
			if sig, err := decode(s.Sig); err == nil && ed25519.Verify(pub, m, sig) {
				v.Checked = true
				break
			}
		}
		if !v.Checked {
			return nil, fmt.Errorf("%w: none of its %d signatures verifies with the key", ErrSignature, len(env.Signatures))
		}
	}
	// Only now is the payload trusted enough to interpret.
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("%w: payload type %q, want %q", ErrMalformed, env.PayloadType, PayloadType)
	}
	sd := json.NewDecoder(bytes.NewReader(body))
	sd.DisallowUnknownFields()
	if err := sd.Decode(&v.Statement); err != nil {
		return nil, fmt.Errorf("%w: statement: %v", ErrMalformed, err)
	}
	st := v.Statement
	switch {
	case st.Type != StatementType:
		return nil, fmt.Errorf("%w: statement type %q, want %q", ErrMalformed, st.Type, StatementType)
	case st.PredicateType != TestResultType:
		return nil, fmt.Errorf("%w: predicate type %q, want %q", ErrMalformed, st.PredicateType, TestResultType)
	case len(st.Subject) == 0:
		return nil, fmt.Errorf("%w: the statement has no subject", ErrMalformed)
	case st.Predicate.Result != Passed && st.Predicate.Result != Warned && st.Predicate.Result != Failed:
		return nil, fmt.Errorf("%w: result %q, want PASSED, WARNED or FAILED", ErrMalformed, st.Predicate.Result)
	}
	return v, nil
}

// SubjectDigest returns the sha256 digest the statement gives for the subject named name.
func (s Statement) SubjectDigest(name string) (string, bool) {
	for _, d := range s.Subject {
		if d.Name == name {
			h, ok := d.Digest["sha256"]
			return h, ok
		}
	}
	return "", false
}
