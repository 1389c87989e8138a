package oscal_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hardtrail/hardtrail/agent/evidence/oscal"
	"github.com/hardtrail/hardtrail/agent/evidence/view"
	"github.com/hardtrail/hardtrail/agent/evidence/view/viewtest"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

func schema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "oscal_assessment-results_schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("oscal-ar.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("oscal-ar.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validate(t *testing.T, s *jsonschema.Schema, doc []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(inst)
}

func TestSampleValidatesGolden(t *testing.T) {
	s := schema(t)
	doc, err := oscal.Build(viewtest.Sample())
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, s, doc); err != nil {
		t.Fatalf("the document does not validate against the OSCAL %s schema:\n%v", oscal.Version, err)
	}
	again, _ := oscal.Build(viewtest.Sample())
	if !bytes.Equal(doc, again) {
		t.Error("the same evidence gave different documents")
	}
	testutil.Golden(t, filepath.Join("testdata", "sample.golden.json"), doc)

	var d struct {
		AR struct {
			Metadata struct {
				OSCALVersion string `json:"oscal-version"`
			} `json:"metadata"`
			Results []struct {
				Observations []struct {
					Methods []string `json:"methods"`
				} `json:"observations"`
				Findings []struct {
					Target struct {
						TargetID string `json:"target-id"`
						Status   struct{ State string }
					} `json:"target"`
				} `json:"findings"`
				Risks []struct {
					Status       string `json:"status"`
					Remediations []struct {
						Description string `json:"description"`
					} `json:"remediations"`
				} `json:"risks"`
			} `json:"results"`
		} `json:"assessment-results"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	if d.AR.Metadata.OSCALVersion != "1.0.4" {
		t.Errorf("oscal-version %q", d.AR.Metadata.OSCALVersion)
	}
	r := d.AR.Results[0]
	// 3 artifacts of web1 (packages, sshd captured twice each; sysctl unavailable twice), 1 of
	// fw1 twice, and 3 rule evaluations.
	if got, want := len(r.Observations), 2*3+2+3; got != want {
		t.Errorf("%d observations, want %d", got, want)
	}
	states := map[string]string{}
	for _, f := range r.Findings {
		states[f.Target.TargetID] = f.Target.Status.State
	}
	for id, want := range map[string]string{
		"ISO27001_2022_A.8.9": "satisfied", "CIS_5.2.10": "satisfied", "ISO27001_2022_A.8.20": "not-satisfied",
		"incident-INC-2026-0042": "not-satisfied",
	} {
		if states[id] != want {
			t.Errorf("finding %s: %q, want %q (all: %v)", id, states[id], want, states)
		}
	}
	if len(r.Risks) != 1 || r.Risks[0].Status != "open" || !strings.Contains(r.Risks[0].Remediations[0].Description, "firewall/nftables on fw1") {
		t.Errorf("risks %+v", r.Risks)
	}
}

// TestValidatorCatches shows the schema check can fail: a document with a control ID OSCAL
// does not allow, and one without its UUID, are refused.
func TestValidatorCatches(t *testing.T) {
	s := schema(t)
	doc, err := oscal.Build(viewtest.Sample())
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"control id": bytes.Replace(doc, []byte(`"control-id": "ISO27001_2022_A.8.20"`), []byte(`"control-id": "ISO27001:2022 A.8.20"`), 1),
		"no uuid":    bytes.Replace(doc, []byte(`"uuid"`), []byte(`"uuidx"`), 1),
		"bad time":   bytes.Replace(doc, []byte(`"last-modified": "2026-03-05T07:00:00Z"`), []byte(`"last-modified": "2026-03-05 07:00"`), 1),
	} {
		if bytes.Equal(bad, doc) {
			t.Fatalf("%s: the replacement did not apply", name)
		}
		if err := validate(t, s, bad); err == nil {
			t.Errorf("%s: the validator accepted an invalid document", name)
		}
	}
}

// TestEmptyIncident: no rules, no artifacts changed; still valid.
func TestEmptyIncident(t *testing.T) {
	ev := &view.Evidence{Incident: "SEC-1", Status: "remediated", ToolVersion: "devel", AsOf: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Targets: []view.Target{{Name: "local", Status: "remediated", Cause: "no linked rule"}}}
	doc, err := oscal.Build(ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, schema(t), doc); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
}
