package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hardtrail/hardtrail/agent/evidence/tsa/tsatest"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

// auditorFleet is one incident on a file target, fixed, with a rule that proves it.
func auditorFleet(t *testing.T) (dir, cfg string) {
	t.Helper()
	dir = t.TempDir()
	conf := filepath.Join(dir, "app.conf")
	write(t, conf, "telnet on\nlog info\n")
	cfg = filepath.Join(dir, "hardtrail.toml")
	write(t, cfg, fmt.Sprintf(`store = %q
rules = [%q]
[[target]]
name = "app1"
profiles = ["app"]
[[profile]]
name = "app"
[[profile.source]]
name = "app/conf"
files = [%q]
`, filepath.Join(dir, "h.db"), filepath.Join(dir, "rules"), conf))
	write(t, filepath.Join(dir, "rules", "inc.toml"), `
[[rule]]
id = "app-no-telnet"
title = "The app does not offer telnet"
severity = "high"
controls = ["ISO27001:2022 A.8.20"]
incidents = ["INC-1"]
[rule.file]
path = "app/conf"
absent = "^telnet on"
`)
	mustHT(t, "--config", cfg, "snapshot", "--incident", "INC-1", "--phase", "before", "--by", "test")
	write(t, conf, "telnet off\nlog info\n")
	mustHT(t, "--config", cfg, "snapshot", "--incident", "INC-1", "--phase", "after", "--by", "test")
	return dir, cfg
}

// TestEvidenceAuditorFiles exports a signed, timestamped bundle from a real openssl TSA and
// checks each auditor file with the tool an auditor would use: openssl ts -verify for the
// token, openssl pkeyutl over the DSSE pre-authentication encoding for the attestation, the
// OSCAL schema for the assessment results, and Chromium for report.html.
func TestEvidenceAuditorFiles(t *testing.T) {
	openssl := testutil.Tool(t, "openssl")
	chromium := testutil.Tool(t, "chromium")
	srv := tsatest.Start(t)
	dir, cfg := auditorFleet(t)
	key := filepath.Join(dir, "ev")
	mustHT(t, "keygen", "-o", key)
	bundle := filepath.Join(dir, "INC-1.tar.gz")
	out := mustHT(t, "--config", cfg, "evidence", "export", "INC-1", "-o", bundle, "--sign-key", key, "--tsa", srv.URL, "--tsa-ca", srv.CAFile)
	if !strings.Contains(out, "timestamp:") {
		t.Errorf("export does not say it was timestamped:\n%s", out)
	}
	out = mustHT(t, "evidence", "verify", bundle, "--pubkey", key+".pub", "--tsa-ca", srv.CAFile)
	for _, want := range []string{"attestation: good", "timestamp: good"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify does not say %q:\n%s", want, out)
		}
	}

	files := map[string][]byte{}
	for _, e := range readBundle(t, bundle) {
		files[strings.TrimPrefix(e.H.Name, "INC-1/")] = e.Data
	}
	x := filepath.Join(dir, "x")
	for _, name := range []string{"manifest.json", "manifest.json.tsr", "attestation.intoto.json", "report.html", "oscal/assessment-results.json"} {
		if _, ok := files[name]; !ok {
			t.Fatalf("the bundle lacks %s", name)
		}
		write(t, filepath.Join(x, name), string(files[name]))
	}
	if out, err := exec.Command(openssl, "ts", "-verify", "-in", filepath.Join(x, "manifest.json.tsr"), "-data", filepath.Join(x, "manifest.json"), "-CAfile", srv.CAFile).CombinedOutput(); err != nil {
		t.Errorf("openssl ts -verify: %v\n%s", err, out)
	}

	var env struct {
		PayloadType string                 `json:"payloadType"`
		Payload     string                 `json:"payload"`
		Signatures  []struct{ Sig string } `json:"signatures"`
	}
	if err := json.Unmarshal(files["attestation.intoto.json"], &env); err != nil || len(env.Signatures) != 1 {
		t.Fatalf("attestation: %v %+v", err, env)
	}
	body, _ := base64.StdEncoding.DecodeString(env.Payload)
	sig, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	pae := fmt.Sprintf("DSSEv1 %d %s %d %s", len(env.PayloadType), env.PayloadType, len(body), body)
	write(t, filepath.Join(x, "pae"), pae)
	write(t, filepath.Join(x, "sig"), string(sig))
	if out, err := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", key+".pub", "-rawin", "-in", filepath.Join(x, "pae"), "-sigfile", filepath.Join(x, "sig")).CombinedOutput(); err != nil {
		t.Errorf("openssl pkeyutl -verify over the PAE: %v\n%s", err, out)
	}
	if !bytes.Contains(body, []byte(`"result":"PASSED"`)) || !bytes.Contains(body, []byte(`"app-no-telnet@app1"`)) {
		t.Errorf("statement: %s", body)
	}

	sf, err := os.Open("../../agent/evidence/oscal/testdata/oscal_assessment-results_schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(sf)
	sf.Close()
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	c.AddResource("ar.json", doc)
	sch, err := c.Compile("ar.json")
	if err != nil {
		t.Fatal(err)
	}
	inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(files["oscal/assessment-results.json"]))
	if err := sch.Validate(inst); err != nil {
		t.Errorf("the bundle's OSCAL document does not validate: %v", err)
	}

	dom, err := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir="+t.TempDir(),
		"--dump-dom", "file://"+filepath.Join(x, "report.html")).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	for _, want := range []string{`<h1 id="headline">Incident INC-1</h1>`, `data-rule="app-no-telnet"`, `<del>on</del>`, `<ins>off</ins>`} {
		if !bytes.Contains(dom, []byte(want)) {
			t.Errorf("report.html as Chromium reads it lacks %s", want)
		}
	}

	// Altered or foreign seals are caught, each naming its file.
	other := tsatest.Start(t)
	if _, errOut, code := ht(t, "evidence", "verify", bundle, "--tsa-ca", other.CAFile); code != 1 || !strings.Contains(errOut, "manifest.json.tsr") {
		t.Errorf("another TSA's CA: exit %d, %s", code, errOut)
	}
	for _, tc := range []struct {
		name   string
		change func([]byte) []byte
	}{
		{"manifest.json.tsr", func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-3] ^= 1; return b }},
		{"attestation.intoto.json", func(b []byte) []byte {
			return bytes.Replace(b, []byte(env.Payload), []byte(base64.StdEncoding.EncodeToString(bytes.Replace(body, []byte("PASSED"), []byte("FAILED"), 1))), 1)
		}},
	} {
		es := readBundle(t, bundle)
		for i := range es {
			if es[i].H.Name == "INC-1/"+tc.name {
				es[i].Data = tc.change(es[i].Data)
				es[i].H.Size = int64(len(es[i].Data))
			}
		}
		bad := filepath.Join(dir, "bad.tar.gz")
		writeBundle(t, bad, es)
		if _, errOut, code := ht(t, "evidence", "verify", bad, "--pubkey", key+".pub", "--tsa-ca", srv.CAFile); code != 1 || !strings.Contains(errOut, tc.name) {
			t.Errorf("altered %s: exit %d, %s", tc.name, code, errOut)
		}
	}
}
