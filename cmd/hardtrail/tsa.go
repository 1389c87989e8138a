package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/hardtrail/hardtrail/agent/evidence/tsa"
	"github.com/hardtrail/hardtrail/agent/headstamp"
	"github.com/hardtrail/hardtrail/agent/store"
)

// loadTSACA reads the CA certificates that a timestamp authority's tokens must chain to; none
// when path is empty.
func loadTSACA(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("TSA CA: %w", err)
	}
	return tsa.LoadCA(data, path)
}

// timestampLine says what a timestamp token shows.
func timestampLine(tok *tsa.Token) string {
	trust := "issuer NOT CHECKED (no --tsa-ca)"
	if tok.Trusted {
		trust = "issued by " + tok.Signer
	}
	return fmt.Sprintf("timestamp: good, %s, serial %s, %s", tok.Time.Format("2006-01-02 15:04:05Z"), tok.Serial, trust)
}

// headsDir is where the store's head timestamps are kept: STORE.heads/ beside the store.
func headsDir(st *store.Store) string { return st.Path() + ".heads" }

// stampHead asks the TSA at url for a token over a store head's digest, checked against roots
// when not nil, and keeps it in dir.
func stampHead(ctx context.Context, h *store.Head, url string, roots *x509.CertPool, dir string) (*headstamp.Stamp, error) {
	resp, tok, err := headstamp.Request(ctx, nil, url, h.Digest, roots)
	if err != nil {
		return nil, fmt.Errorf("timestamp of store head %s: %w", h.Digest, err)
	}
	return headstamp.Keep(dir, h.Digest, resp, tok)
}

// headStampPeriod is how often the agent timestamps the store head.
const headStampPeriod = 24 * time.Hour

// dailyHeadStamp timestamps the store head at start and then once a day until ctx ends,
// keeping each token in STORE.heads/; a failure is logged and tried again the next day.
func dailyHeadStamp(ctx context.Context, a *app, st *store.Store, url string, roots *x509.CertPool) {
	headstamp.Daily(ctx, headStampPeriod, func(ctx context.Context) error {
		h, err := st.Head(ctx)
		if err != nil {
			return err
		}
		s, err := stampHead(ctx, h, url, roots, headsDir(st))
		if err != nil {
			return err
		}
		a.log.Info("store head timestamped", "digest", s.Digest, "time", s.Token.Time, "trusted", s.Token.Trusted, "file", s.File)
		return nil
	}, func(err error) {
		if err != nil && ctx.Err() == nil {
			a.log.Error("store head timestamp failed; trying again in a day", "tsa", url, "err", err)
		}
	})
}
