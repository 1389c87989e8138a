package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/evidence/tsa/tsatest"
)

// TestStoreHeadTSA timestamps the store head with a real openssl TSA and has openssl check the
// token over the digest; store verify --head accepts the digest.
func TestStoreHeadTSA(t *testing.T) {
	srv := tsatest.Start(t)
	f := newFleet(t, []string{"web1"}, "")
	f.incident(t, "INC-1", "web1")
	out := mustHT(t, "--config", f.cfg, "--format", "json", "store", "head", "--tsa", srv.URL, "--tsa-ca", srv.CAFile)
	var h struct {
		Digest    string `json:"digest"`
		Timestamp struct {
			Digest  string `json:"digest"`
			File    string `json:"file"`
			Trusted bool   `json:"trusted"`
		} `json:"timestamp"`
	}
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if h.Timestamp.Digest != h.Digest || !h.Timestamp.Trusted || !strings.HasPrefix(h.Timestamp.File, f.store+".heads/head-") {
		t.Fatalf("store head: %+v", h)
	}
	if b, err := os.ReadFile(strings.TrimSuffix(h.Timestamp.File, ".tsr") + ".sha256"); err != nil || string(b) != h.Digest+"\n" {
		t.Errorf("digest file: %q %v", b, err)
	}
	if o, err := exec.Command(srv.OpenSSL, "ts", "-verify", "-digest", h.Digest, "-in", h.Timestamp.File, "-CAfile", srv.CAFile).CombinedOutput(); err != nil {
		t.Errorf("openssl ts -verify -digest: %v\n%s", err, o)
	}
	if o := mustHT(t, "--config", f.cfg, "store", "verify", "--head", h.Digest); !strings.Contains(o, "extends head "+h.Digest) {
		t.Errorf("store verify --head:\n%s", o)
	}
	other := tsatest.Start(t)
	if _, errOut, code := ht(t, "--config", f.cfg, "store", "head", "--tsa", srv.URL, "--tsa-ca", other.CAFile); code == 0 || !strings.Contains(errOut, "not trusted") {
		t.Errorf("a token under another CA: exit %d, %s", code, errOut)
	}
	if _, _, code := ht(t, "--config", f.cfg, "store", "head", "--tsa-ca", srv.CAFile); code != 2 {
		t.Errorf("--tsa-ca without --tsa: exit %d", code)
	}
}

// TestAgentHeadStamp: with [agent] tsa_url the agent timestamps the store head when it starts.
func TestAgentHeadStamp(t *testing.T) {
	srv := tsatest.Start(t)
	f := newFleet(t, []string{"web1"}, "")
	cfg, _ := os.ReadFile(f.cfg)
	cfg = []byte(strings.Replace(string(cfg), "[agent]\n", "[agent]\ntsa_url = \""+srv.URL+"\"\ntsa_ca = \""+srv.CAFile+"\"\n", 1))
	os.WriteFile(f.cfg, cfg, 0o600)
	a := startAgent(t, []string{"--config", f.cfg})
	a.waitLog(t, `msg="store head timestamped"`, 1, 30*time.Second)
	files, _ := filepath.Glob(f.store + ".heads/head-*.tsr")
	if len(files) != 1 || srv.Requests() != 1 {
		t.Fatalf("kept %v after %d requests", files, srv.Requests())
	}
	digest, _ := os.ReadFile(strings.TrimSuffix(files[0], ".tsr") + ".sha256")
	if o, err := exec.Command(srv.OpenSSL, "ts", "-verify", "-digest", strings.TrimSpace(string(digest)), "-in", files[0], "-CAfile", srv.CAFile).CombinedOutput(); err != nil {
		t.Errorf("openssl ts -verify: %v\n%s", err, o)
	}
}
