package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"

	"github.com/hardtrail/hardtrail/agent/evidence"
	"github.com/hardtrail/hardtrail/agent/evidence/tsa"
)

// seal adds the attestation (signed with key when there is one) and, with tsaURL, a timestamp
// over the manifest checked against roots; it returns the timestamp, if any.
func seal(ctx context.Context, b *evidence.Bundle, key ed25519.PrivateKey, tsaURL string, roots *x509.CertPool) (*tsa.Token, error) {
	var tok *tsa.Token
	var stamp func(context.Context, []byte) ([]byte, error)
	if tsaURL != "" {
		stamp = func(ctx context.Context, digest []byte) ([]byte, error) {
			resp, t, err := tsa.Request(ctx, nil, tsaURL, digest, roots)
			tok = t
			return resp, err
		}
	}
	if err := b.Seal(ctx, key, stamp); err != nil {
		return nil, err
	}
	return tok, nil
}

// sealedLines says what evidence verify found beside the manifest.
func sealedLines(s *evidence.Sealed) []string {
	var out []string
	switch {
	case s == nil || !s.Attested:
		out = append(out, "attestation: none")
	case s.AttestationSigned:
		out = append(out, "attestation: good, test result "+s.Result+", signature checked")
	default:
		out = append(out, "attestation: subject is this manifest, test result "+s.Result+"; signature NOT CHECKED (no --pubkey, or unsigned)")
	}
	if s != nil && s.Timestamp != nil {
		out = append(out, timestampLine(s.Timestamp))
	} else {
		out = append(out, "timestamp: none")
	}
	return out
}
