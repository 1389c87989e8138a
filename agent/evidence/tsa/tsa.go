// Package tsa obtains and verifies RFC 3161 trusted timestamps over a SHA-256 digest.
package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net/http"
	"time"

	_ "crypto/sha256" // SHA-256 for imprints and signatures
	_ "crypto/sha512" // SHA-384 and SHA-512 for signatures
)

// Object identifiers used by RFC 3161 and CMS (RFC 5652).
var (
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidTSTInfo       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 4}
	oidContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSigningCert   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 12}
	oidSigningCertV2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}
	oidRSAPSS        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
)

// Errors that say why a timestamp does not verify; every error Verify returns matches one.
var (
	// ErrMalformed: the bytes are not a timestamp response or token of the expected form.
	ErrMalformed = errors.New("malformed timestamp")
	// ErrRejected: the TSA answered, but did not grant a timestamp.
	ErrRejected = errors.New("timestamp request rejected")
	// ErrImprint: the timestamp is over another digest than the one checked.
	ErrImprint = errors.New("timestamp is over another digest")
	// ErrSignature: the token's signature, or its signed attributes, do not verify.
	ErrSignature = errors.New("timestamp signature does not verify")
	// ErrUntrusted: the signer's certificate does not chain to the CA given, or may not sign
	// timestamps.
	ErrUntrusted = errors.New("timestamp signer is not trusted")
)

// Token is what a verified timestamp says.
type Token struct {
	// Time is when the TSA saw the digest (genTime), in UTC.
	Time time.Time
	// Serial is the TSA's serial number of the token.
	Serial *big.Int
	// Policy is the TSA policy the token was issued under.
	Policy asn1.ObjectIdentifier
	// Digest is the SHA-256 digest the token covers.
	Digest []byte
	// Signer is the subject of the certificate that signed the token.
	Signer string
	// Trusted is true when the signer chained to the CA pool given to Verify.
	Trusted bool
	nonce   *big.Int
}

type messageImprint struct {
	HashAlgorithm pkix.AlgorithmIdentifier
	HashedMessage []byte
}

type timeStampReq struct {
	Version        int
	MessageImprint messageImprint
	Nonce          *big.Int
	CertReq        bool `asn1:"optional"`
}

type pkiStatusInfo struct {
	Status       int
	StatusString []string       `asn1:"optional,utf8"`
	FailInfo     asn1.BitString `asn1:"optional"`
}

type timeStampResp struct {
	Status pkiStatusInfo
	Token  asn1.RawValue `asn1:"optional"`
}

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,tag:0"`
}

type encapContentInfo struct {
	EContentType asn1.ObjectIdentifier
	EContent     []byte `asn1:"explicit,optional,tag:0"`
}

type signedData struct {
	Version          int
	DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
	EncapContentInfo encapContentInfo
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      []signerInfo  `asn1:"set"`
}

type signerInfo struct {
	Version            int
	SID                asn1.RawValue
	DigestAlgorithm    pkix.AlgorithmIdentifier
	SignedAttrs        asn1.RawValue `asn1:"optional,tag:0"`
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          []byte
	UnsignedAttrs      asn1.RawValue `asn1:"optional,tag:1"`
}

type issuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values asn1.RawValue `asn1:"set"`
}

type accuracy struct {
	Seconds int `asn1:"optional"`
	Millis  int `asn1:"optional,tag:0"`
	Micros  int `asn1:"optional,tag:1"`
}

type tstInfo struct {
	Version        int
	Policy         asn1.ObjectIdentifier
	MessageImprint messageImprint
	SerialNumber   *big.Int
	GenTime        time.Time     `asn1:"generalized"`
	Accuracy       accuracy      `asn1:"optional"`
	Ordering       bool          `asn1:"optional"`
	Nonce          *big.Int      `asn1:"optional"`
	TSA            asn1.RawValue `asn1:"optional,explicit,tag:0"`
	Extensions     asn1.RawValue `asn1:"optional,tag:1"`
}

// NewRequest returns the DER of a TimeStampReq for a SHA-256 digest with a fresh random
// nonce, asking the TSA to include its certificate, and the nonce.
func NewRequest(digest []byte) ([]byte, *big.Int, error) {
	if len(digest) != 32 {
		return nil, nil, fmt.Errorf("timestamp request: digest has %d bytes, want a SHA-256 digest (32)", len(digest))
	}
	nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, nil, err
	}
	der, err := asn1.Marshal(timeStampReq{
		Version: 1,
		MessageImprint: messageImprint{
			HashAlgorithm: pkix.AlgorithmIdentifier{Algorithm: oidSHA256, Parameters: asn1.NullRawValue},
			HashedMessage: digest,
		},
		Nonce:   nonce,
		CertReq: true,
	})
	return der, nonce, err
}

// MaxResponse bounds what Request reads from a TSA.
const MaxResponse = 1 << 20

// Timeout bounds a request to a TSA when the caller gives no client of its own.
const Timeout = 30 * time.Second

// Request asks the TSA at url for a timestamp over a SHA-256 digest (POST
// application/timestamp-query) and returns the DER TimeStampResp, after checking that it
// grants a token over digest with the request's nonce whose signature verifies and, when roots
// is not nil, whose signer chains to roots. client nil means a client that gives up after
// Timeout.
func Request(ctx context.Context, client *http.Client, url string, digest []byte, roots *x509.CertPool) ([]byte, *Token, error) {
	if client == nil {
		client = &http.Client{Timeout: Timeout}
	}
	req, nonce, err := NewRequest(digest)
	if err != nil {
		return nil, nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(req))
	if err != nil {
		return nil, nil, fmt.Errorf("TSA %s: %w", url, err)
	}
	hr.Header.Set("Content-Type", "application/timestamp-query")
	hr.Header.Set("Accept", "application/timestamp-reply")
	resp, err := client.Do(hr)
	if err != nil {
		return nil, nil, fmt.Errorf("TSA %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return nil, nil, fmt.Errorf("TSA %s: reading the answer: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("TSA %s answered %s", url, resp.Status)
	}
	if len(body) > MaxResponse {
		return nil, nil, fmt.Errorf("TSA %s: %w: the answer is larger than %d bytes", url, ErrMalformed, MaxResponse)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/timestamp-reply" {
			return nil, nil, fmt.Errorf("TSA %s: %w: content type %q, want application/timestamp-reply", url, ErrMalformed, ct)
		}
	}
	tok, err := Verify(body, digest, roots)
	if err != nil {
		return nil, nil, fmt.Errorf("TSA %s: %w", url, err)
	}
	if tok.nonce == nil || tok.nonce.Cmp(nonce) != 0 {
		return nil, nil, fmt.Errorf("TSA %s: %w: the token does not carry the request's nonce (a replayed answer?)", url, ErrMalformed)
	}
	return body, tok, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// Verify checks a DER TimeStampResp (as `openssl ts -reply` writes and a TSA answers): the TSA
// granted it; its token is CMS SignedData over a TSTInfo whose imprint is the SHA-256 digest;
// the signed attributes bind that TSTInfo and the signer's certificate; the signature verifies
// with the certificate the token carries; and, when roots is not nil, that certificate may
// sign timestamps and chains to roots as of the token's time. Without roots the token is
// checked but not trusted (Token.Trusted is false).
func Verify(resp, digest []byte, roots *x509.CertPool) (*Token, error) {
	var r timeStampResp
	if rest, err := asn1.Unmarshal(resp, &r); err != nil {
		return nil, malformed("not a TimeStampResp: %v", err)
	} else if len(rest) > 0 {
		return nil, malformed("%d bytes after the TimeStampResp", len(rest))
	}
	if s := r.Status.Status; s != 0 && s != 1 {
		return nil, fmt.Errorf("%w: status %d %v (failure info %x)", ErrRejected, s, r.Status.StatusString, r.Status.FailInfo.Bytes)
	}
	if len(r.Token.FullBytes) == 0 {
		return nil, malformed("the response grants a timestamp but holds no token")
	}
	return VerifyToken(r.Token.FullBytes, digest, roots)
}

// VerifyToken is Verify for a bare TimeStampToken (CMS ContentInfo).
func VerifyToken(token, digest []byte, roots *x509.CertPool) (*Token, error) {
	var ci contentInfo
	if rest, err := asn1.Unmarshal(token, &ci); err != nil {
		return nil, malformed("token is not a CMS ContentInfo: %v", err)
	} else if len(rest) > 0 {
		return nil, malformed("%d bytes after the token", len(rest))
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, malformed("token content type %v, want signed data", ci.ContentType)
	}
	var sd signedData
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return nil, malformed("token is not CMS SignedData: %v", err)
	}
	if !sd.EncapContentInfo.EContentType.Equal(oidTSTInfo) {
		return nil, malformed("token holds %v, want a TSTInfo", sd.EncapContentInfo.EContentType)
	}
	content := sd.EncapContentInfo.EContent
	var info tstInfo
	if rest, err := asn1.Unmarshal(content, &info); err != nil {
		return nil, malformed("TSTInfo: %v", err)
	} else if len(rest) > 0 {
		return nil, malformed("%d bytes after the TSTInfo", len(rest))
	}
	if info.Version != 1 {
		return nil, malformed("TSTInfo version %d, want 1", info.Version)
	}
	mi := info.MessageImprint
	if !mi.HashAlgorithm.Algorithm.Equal(oidSHA256) {
		return nil, fmt.Errorf("%w: the imprint is a %v digest, not SHA-256", ErrImprint, mi.HashAlgorithm.Algorithm)
	}
	if !bytes.Equal(mi.HashedMessage, digest) {
		return nil, fmt.Errorf("%w: token covers sha256 %x, not %x", ErrImprint, mi.HashedMessage, digest)
	}
	if len(sd.SignerInfos) != 1 {
		return nil, malformed("%d signers, want 1", len(sd.SignerInfos))
	}
	si := sd.SignerInfos[0]
	var certs []*x509.Certificate
	if len(sd.Certificates.Bytes) > 0 {
		var err error
		if certs, err = x509.ParseCertificates(sd.Certificates.Bytes); err != nil {
			return nil, malformed("certificates: %v", err)
		}
	}
	signer, err := findSigner(si.SID, certs)
	if err != nil {
		return nil, err
	}
	if err := checkSignerInfo(si, content, signer); err != nil {
		return nil, err
	}
	tok := &Token{Time: info.GenTime.UTC(), Serial: info.SerialNumber, Policy: info.Policy,
		Digest: bytes.Clone(mi.HashedMessage), Signer: signer.Subject.String(), nonce: info.Nonce}
	if roots != nil {
		if err := checkTrust(signer, certs, roots, tok.Time); err != nil {
			return nil, err
		}
		tok.Trusted = true
	}
	return tok, nil
}

// findSigner picks the certificate the SignerInfo names.
func findSigner(sid asn1.RawValue, certs []*x509.Certificate) (*x509.Certificate, error) {
	switch {
	case sid.Class == asn1.ClassUniversal && sid.Tag == asn1.TagSequence:
		var is issuerAndSerial
		if _, err := asn1.Unmarshal(sid.FullBytes, &is); err != nil {
			return nil, malformed("signer identifier: %v", err)
		}
		for _, c := range certs {
			if bytes.Equal(c.RawIssuer, is.Issuer.FullBytes) && c.SerialNumber.Cmp(is.Serial) == 0 {
				return c, nil
			}
		}
	case sid.Class == asn1.ClassContextSpecific && sid.Tag == 0:
		for _, c := range certs {
			if len(c.SubjectKeyId) > 0 && bytes.Equal(c.SubjectKeyId, sid.Bytes) {
				return c, nil
			}
		}
	default:
		return nil, malformed("signer identifier of unknown form")
	}
	return nil, fmt.Errorf("%w: the token does not carry its signer's certificate (request it with certReq)", ErrUntrusted)
}

func hashFor(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	switch {
	case oid.Equal(oidSHA256):
		return crypto.SHA256, true
	case oid.Equal(oidSHA384):
		return crypto.SHA384, true
	case oid.Equal(oidSHA512):
		return crypto.SHA512, true
	}
	return 0, false
}

// checkSignerInfo checks the signed attributes (content type, message digest of content,
// signing certificate) and the signature over them.
func checkSignerInfo(si signerInfo, content []byte, signer *x509.Certificate) error {
	h, ok := hashFor(si.DigestAlgorithm.Algorithm)
	if !ok {
		return fmt.Errorf("%w: unsupported digest algorithm %v", ErrSignature, si.DigestAlgorithm.Algorithm)
	}
	if len(si.SignedAttrs.FullBytes) == 0 {
		return malformed("the signer has no signed attributes (RFC 3161 requires them)")
	}
	// The signature covers the DER of the attributes as a SET OF, not the [0] IMPLICIT tag.
	signed := bytes.Clone(si.SignedAttrs.FullBytes)
	signed[0] = 0x31
	var attrs []attribute
	if _, err := asn1.UnmarshalWithParams(signed, &attrs, "set"); err != nil {
		return malformed("signed attributes: %v", err)
	}
	var haveType, haveDigest, haveCert bool
	for _, a := range attrs {
		switch {
		case a.Type.Equal(oidContentType):
			var ct asn1.ObjectIdentifier
			if _, err := asn1.Unmarshal(a.Values.Bytes, &ct); err != nil || !ct.Equal(oidTSTInfo) {
				return fmt.Errorf("%w: the signed content type is not TSTInfo", ErrSignature)
			}
			haveType = true
		case a.Type.Equal(oidMessageDigest):
			var md []byte
			if _, err := asn1.Unmarshal(a.Values.Bytes, &md); err != nil {
				return malformed("message digest attribute: %v", err)
			}
			d := h.New()
			d.Write(content)
			if !bytes.Equal(md, d.Sum(nil)) {
				return fmt.Errorf("%w: the TSTInfo does not match the signed message digest (altered)", ErrSignature)
			}
			haveDigest = true
		case a.Type.Equal(oidSigningCertV2), a.Type.Equal(oidSigningCert):
			if err := checkSigningCert(a, signer); err != nil {
				return err
			}
			haveCert = true
		}
	}
	if !haveType || !haveDigest || !haveCert {
		return malformed("signed attributes lack the content type, message digest or signing certificate")
	}
	d := h.New()
	d.Write(signed)
	sum := d.Sum(nil)
	var err error
	switch pub := signer.PublicKey.(type) {
	case *rsa.PublicKey:
		if si.SignatureAlgorithm.Algorithm.Equal(oidRSAPSS) {
			err = rsa.VerifyPSS(pub, h, sum, si.Signature, nil)
		} else {
			err = rsa.VerifyPKCS1v15(pub, h, sum, si.Signature)
		}
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, sum, si.Signature) {
			err = errors.New("ecdsa")
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(pub, signed, si.Signature) {
			err = errors.New("ed25519")
		}
	default:
		return fmt.Errorf("%w: unsupported signer key %T", ErrSignature, pub)
	}
	if err != nil {
		return fmt.Errorf("%w: signed by %s (%v)", ErrSignature, signer.Subject, err)
	}
	return nil
}

// checkSigningCert checks the ESS signing certificate attribute (RFC 2634, RFC 5035): the
// first certificate it names is the signer's.
func checkSigningCert(a attribute, signer *x509.Certificate) error {
	var sc struct {
		Certs []asn1.RawValue
		Rest  asn1.RawValue `asn1:"optional"`
	}
	if _, err := asn1.Unmarshal(a.Values.Bytes, &sc); err != nil || len(sc.Certs) == 0 {
		return malformed("signing certificate attribute: %v", err)
	}
	var want []byte
	var fields []asn1.RawValue
	rest := sc.Certs[0].Bytes
	for len(rest) > 0 {
		var f asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &f); err != nil {
			return malformed("signing certificate attribute: %v", err)
		}
		fields = append(fields, f)
	}
	h := crypto.SHA256
	if a.Type.Equal(oidSigningCert) {
		h = crypto.SHA1
	} else if len(fields) > 0 && fields[0].Tag == asn1.TagSequence {
		var alg pkix.AlgorithmIdentifier
		if _, err := asn1.Unmarshal(fields[0].FullBytes, &alg); err != nil {
			return malformed("signing certificate hash algorithm: %v", err)
		}
		var ok bool
		if h, ok = hashFor(alg.Algorithm); !ok {
			return fmt.Errorf("%w: unsupported signing certificate hash %v", ErrSignature, alg.Algorithm)
		}
		fields = fields[1:]
	}
	if len(fields) == 0 || fields[0].Tag != asn1.TagOctetString {
		return malformed("signing certificate attribute has no certificate hash")
	}
	if h == crypto.SHA1 {
		s := sha1.Sum(signer.Raw)
		want = s[:]
	} else {
		d := h.New()
		d.Write(signer.Raw)
		want = d.Sum(nil)
	}
	if !bytes.Equal(fields[0].Bytes, want) {
		return fmt.Errorf("%w: the signed attributes name another certificate than the signer's %s", ErrSignature, signer.Subject)
	}
	return nil
}

// checkTrust checks that signer may sign timestamps and chains to roots at time at.
func checkTrust(signer *x509.Certificate, certs []*x509.Certificate, roots *x509.CertPool, at time.Time) error {
	inter := x509.NewCertPool()
	for _, c := range certs {
		if c != signer {
			inter.AddCert(c)
		}
	}
	if _, err := signer.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}}); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUntrusted, signer.Subject, err)
	}
	// RFC 3161 2.3: the TSA's certificate has exactly one extended key usage, timestamping, critical.
	for _, e := range signer.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 37}) && !e.Critical {
			return fmt.Errorf("%w: %s: its extended key usage is not critical (RFC 3161 2.3)", ErrUntrusted, signer.Subject)
		}
	}
	if len(signer.ExtKeyUsage) != 1 || len(signer.UnknownExtKeyUsage) != 0 {
		return fmt.Errorf("%w: %s: its certificate may be used for more than timestamping (RFC 3161 2.3)", ErrUntrusted, signer.Subject)
	}
	return nil
}

// LoadCA reads a PEM file of CA certificates into a pool.
func LoadCA(pemData []byte, name string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("TSA CA %s: no PEM certificate in it", name)
	}
	return pool, nil
}
