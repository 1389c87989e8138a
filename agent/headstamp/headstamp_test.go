package headstamp_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/evidence/tsa"
	"github.com/hardtrail/hardtrail/agent/evidence/tsa/tsatest"
	"github.com/hardtrail/hardtrail/agent/headstamp"
)

func TestRequestKeep(t *testing.T) {
	srv := tsatest.Start(t)
	ca, _ := os.ReadFile(srv.CAFile)
	roots, err := tsa.LoadCA(ca, srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("store head"))
	digest := hex.EncodeToString(sum[:])
	resp, tok, err := headstamp.Request(t.Context(), nil, srv.URL, digest, roots)
	if err != nil || !tok.Trusted {
		t.Fatalf("%v %+v", err, tok)
	}
	dir := t.TempDir() + "/heads"
	st, err := headstamp.Keep(dir, digest, resp, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(strings.TrimSuffix(st.File, ".tsr") + ".sha256"); string(got) != digest+"\n" {
		t.Errorf("digest file %q", got)
	}
	out, err := exec.Command(srv.OpenSSL, "ts", "-verify", "-digest", digest, "-in", st.File, "-CAfile", srv.CAFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("openssl ts -verify -digest: %v\n%s", err, out)
	}
	if _, err := headstamp.Keep(dir, digest, resp, tok); err == nil {
		t.Error("a kept stamp was overwritten")
	}
	if _, _, err := headstamp.Request(t.Context(), nil, srv.URL, "abc", nil); err == nil {
		t.Error("a short digest was accepted")
	}
}

func TestDaily(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var calls, failures atomic.Int32
	done := make(chan struct{})
	go func() {
		headstamp.Daily(ctx, 10*time.Millisecond, func(context.Context) error {
			if calls.Add(1) == 2 {
				return errors.New("TSA down")
			}
			return nil
		}, func(err error) {
			if err != nil {
				failures.Add(1)
			}
		})
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if calls.Load() < 3 || failures.Load() != 1 {
		t.Errorf("%d calls, %d failures: want a first call at once, a retry after the failure", calls.Load(), failures.Load())
	}
}
