// Package headstamp keeps RFC 3161 timestamps of the store head, so that removing records
// after a stamped moment can be proven.
package headstamp

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hardtrail/hardtrail/agent/evidence/tsa"
)

// Stamp is one kept timestamp: the head digest and the token over it.
type Stamp struct {
	Digest string // hex SHA-256, as store head prints it
	Token  *tsa.Token
	// File is the DER TimeStampResp; File minus ".tsr" plus ".sha256" holds the digest.
	File string
}

// Request asks the TSA at url for a token over a head digest (64 hex digits), checked against
// roots when not nil, and returns the DER response and what it says.
func Request(ctx context.Context, client *http.Client, url, digest string, roots *x509.CertPool) ([]byte, *tsa.Token, error) {
	raw, err := hex.DecodeString(digest)
	if err != nil || len(raw) != 32 {
		return nil, nil, fmt.Errorf("head digest %q: want 64 hex digits", digest)
	}
	return tsa.Request(ctx, client, url, raw, roots)
}

// Keep writes a response and its digest into dir (created 0700 when missing) as
// head-TIME.tsr and head-TIME.sha256, TIME the token's UTC time, each written whole or not
// at all, and returns the stamp. An existing file is never overwritten.
func Keep(dir, digest string, resp []byte, tok *tsa.Token) (*Stamp, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("head timestamps: %w", err)
	}
	base := filepath.Join(dir, "head-"+tok.Time.UTC().Format("20060102T150405Z"))
	if err := writeNew(base+".sha256", []byte(digest+"\n")); err != nil {
		return nil, err
	}
	if err := writeNew(base+".tsr", resp); err != nil {
		os.Remove(base + ".sha256")
		return nil, err
	}
	return &Stamp{Digest: digest, Token: tok, File: base + ".tsr"}, nil
}

func writeNew(name string, data []byte) (err error) {
	if _, err := os.Lstat(name); err == nil {
		return fmt.Errorf("head timestamp %s exists already", name)
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("head timestamp %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("head timestamp %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("head timestamp %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("head timestamp %s: %w", name, err)
	}
	if err = os.Link(f.Name(), name); err != nil { // fails if name appeared meanwhile
		return fmt.Errorf("head timestamp %s: %w", name, err)
	}
	return os.Remove(f.Name())
}

// Daily calls stamp at once and then every period until ctx ends, logging through report;
// a failure is reported and tried again at the next tick.
func Daily(ctx context.Context, period time.Duration, stamp func(context.Context) error, report func(error)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		report(stamp(ctx))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
