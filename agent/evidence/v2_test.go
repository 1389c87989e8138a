package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

// rebuilt copies b, changes it with f, recomputes the file list (as a hostile exporter
// would) and writes it unsigned.
func rebuilt(t *testing.T, b *Bundle, f func(c *Bundle)) []byte {
	t.Helper()
	c := *b
	c.files = map[string][]byte{}
	for p, d := range b.files {
		c.files[p] = d
	}
	raw, _ := json.Marshal(b.Manifest)
	c.Manifest = Manifest{}
	json.Unmarshal(raw, &c.Manifest) // a deep copy
	f(&c)
	c.Manifest.Files = fileList(c.files)
	var buf bytes.Buffer
	if err := c.Write(&buf, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestVerifyV2(t *testing.T) {
	b := build(t)
	web := b.Manifest.Targets[1]
	id := incidentID + "/"
	for _, tc := range []struct {
		name, path, msg string
		f               func(c *Bundle)
	}{
		{"a rule passes on before in results.json", ResultsJSON, `rule inc7-sshd-no-root on web1:before: results.json says "pass", but evaluating rules/ over before/web1 gives "fail"`, func(c *Bundle) {
			var doc map[string]any
			json.Unmarshal(c.files[ResultsJSON], &doc)
			for _, r := range doc["reports"].([]any) {
				rep := r.(map[string]any)
				if rep["target"] != "web1:before" {
					continue
				}
				for _, res := range rep["results"].([]any) {
					if m := res.(map[string]any); m["rule"] == "inc7-sshd-no-root" {
						m["outcome"] = "pass"
					}
				}
			}
			out, _ := json.MarshalIndent(doc, "", "  ")
			c.files[ResultsJSON] = out
		}},
		{"a rule passes on before in the manifest", ManifestName, `rule inc7-sshd-no-root on web1:before: the manifest says "pass"`, func(c *Bundle) {
			for i, r := range c.Manifest.Targets[1].Results.Rules {
				if r.Rule == "inc7-sshd-no-root" {
					c.Manifest.Targets[1].Results.Rules[i].Before = "pass"
				}
			}
		}},
		{"a linked rule edited", RulesDir, "have digest", func(c *Bundle) {
			p := c.Manifest.RuleFiles[0].Path
			c.files[p] = bytes.Replace(c.files[p], []byte(`"no"`), []byte(`"yes"`), 1)
		}},
		{"a rule file added", RulesDir + "/extra.toml", "not a rule file the manifest lists", func(c *Bundle) {
			c.files[RulesDir+"/extra.toml"] = []byte("")
		}},
		{"a snapshot manifest edited", SnapshotsDir + "/" + web.Before.ID + ".json", "hashes to", func(c *Bundle) {
			p := SnapshotsDir + "/" + web.Before.ID + ".json"
			c.files[p] = bytes.Replace(c.files[p], []byte("web1.example"), []byte("web9.example"), 1)
		}},
		{"a snapshot manifest removed", SnapshotsDir + "/" + web.After.ID + ".json", "missing", func(c *Bundle) {
			delete(c.files, SnapshotsDir+"/"+web.After.ID+".json")
		}},
		{"the incident record edited", IncidentRecord, "differs from the incident record", func(c *Bundle) {
			c.Manifest.Record.Entries = c.Manifest.Record.Entries[:1]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantFailure(t, rebuilt(t, b, tc.f), nil, id+tc.path, tc.msg)
		})
	}
	// The untouched bundle verifies, rebuilt the same way.
	if _, err := Verify(bytes.NewReader(rebuilt(t, b, func(*Bundle) {})), nil, DefaultLimits); err != nil {
		t.Fatal(err)
	}
}

// Deleting a regression episode from a signed manifest breaks the signature.
func TestVerifyEpisodeRemoved(t *testing.T) {
	archive, pub, _ := signedBundle(t)
	out := mutate(t, archive, func(es []entry) []entry {
		for i := range es {
			if es[i].H.Name != incidentID+"/"+ManifestName {
				continue
			}
			var m Manifest
			if err := json.Unmarshal(es[i].Data, &m); err != nil {
				t.Fatal(err)
			}
			h := m.Targets[1].History
			if len(h.Episodes) != 2 {
				t.Fatalf("episodes: %+v", h.Episodes)
			}
			h.Episodes = h.Episodes[1:]
			d, _ := json.MarshalIndent(m, "", "  ")
			es[i].Data = append(d, '\n')
		}
		return es
	})
	wantFailure(t, out, pub, incidentID+"/manifest.json", "signature does not verify")
}

// A format 1 bundle (the files and fields of format 2 taken away) still verifies.
func TestVerifyV1Bundle(t *testing.T) {
	b := build(t)
	out := rebuilt(t, b, func(c *Bundle) {
		m := &c.Manifest
		m.Format, m.Headline, m.RulesFrom, m.RulesChanged, m.RuleFiles, m.Record, m.StoreHead = FormatV1, "", "", nil, nil, nil, ""
		for i := range m.Links {
			m.Links[i].Who, m.Links[i].Signature, m.Links[i].Voided = nil, "", nil
		}
		for i := range m.Targets {
			t := &m.Targets[i]
			t.History = nil
			for _, r := range []*SnapshotRef{t.Before, t.After, t.Newest} {
				if r != nil {
					r.Manifest, r.Provenance = "", nil
				}
			}
		}
		for p := range c.files {
			for _, d := range []string{SnapshotsDir, RulesDir, RecordsDir} {
				if strings.HasPrefix(p, d+"/") {
					delete(c.files, p)
				}
			}
		}
	})
	v, err := Verify(bytes.NewReader(out), nil, DefaultLimits)
	if err != nil || v.Manifest.Format != FormatV1 {
		t.Fatalf("v1 bundle: %v", err)
	}
}

// A command that exited non-zero with no output is listed with its exit code and stderr, and
// written as no file.
func TestCaptureFailureInBundle(t *testing.T) {
	b := build(t)
	var a *Artifact
	for i, x := range b.Manifest.Targets[1].Artifacts {
		if x.Name == "services/active" {
			a = &b.Manifest.Targets[1].Artifacts[i]
		}
	}
	if a == nil || a.Before == nil || a.Before.ExitCode != 1 || !strings.Contains(a.Before.Failed, "exited 1") || !strings.Contains(a.Before.Stderr, "Failed to connect to bus") {
		t.Fatalf("services/active: %+v", a)
	}
	if _, ok := b.File("before/web1/services/active"); ok {
		t.Error("a failed empty capture is written as an empty file")
	}
	pv := b.Manifest.Targets[1].Before.Provenance
	if pv == nil || pv.Hostname != "web1.example" || pv.MachineID != "4c4c4544004b3010804fb4c04f4e3232" || len(pv.Unavailable) != 2 {
		t.Errorf("provenance: %+v", pv)
	}
	raw, _ := b.File(b.Manifest.Targets[1].Before.Manifest)
	if store.Hash(raw) != b.Manifest.Targets[1].Before.ID {
		t.Error("snapshots/ID.json does not hash to its ID")
	}
}

// An incident with only an after snapshot asks for a before one.
func TestExportAdvice(t *testing.T) {
	st, _ := synthetic(t)
	sid := save(t, st, "app1", t0, "", map[string]artifact{"a": {content: "x\n"}})
	if _, err := st.Tag(t.Context(), store.Link{Incident: "INC-9", Phase: store.After, Snapshot: sid, By: "x", At: t0}); err != nil {
		t.Fatal(err)
	}
	_, err := Build(t.Context(), st, "INC-9", nil)
	if !errors.Is(err, ErrNoAfter) || !strings.Contains(err.Error(), "app1 has an after snapshot but no before") || !strings.Contains(err.Error(), "--phase before") {
		t.Errorf("after only: %v", err)
	}
}

// FuzzVerifyManifest puts an arbitrary manifest.json into an otherwise good bundle, so that the
// checks behind the structure see hostile manifests: Verify never panics and fails with a
// *Failure.
func FuzzVerifyManifest(f *testing.F) {
	b := build(f)
	var buf bytes.Buffer
	b.Write(&buf, nil)
	entries := testutil.ReadTarGz(f, buf.Bytes())
	f.Add(b.ManifestBytes(nil))
	f.Add([]byte(`{"format":"hardtrail-evidence/2","incident":"INC-2026-0007","targets":[{"target":"web1","exported":true}]}`))
	f.Fuzz(func(t *testing.T, manifest []byte) {
		es := make([]entry, len(entries))
		copy(es, entries)
		for i := range es {
			if es[i].H.Name == incidentID+"/"+ManifestName {
				h := *es[i].H
				h.Size = int64(len(manifest))
				es[i] = entry{H: &h, Data: manifest}
			}
		}
		v, err := Verify(bytes.NewReader(testutil.WriteTarGz(t, es)), nil, DefaultLimits)
		var fail *Failure
		if err != nil && !errors.As(err, &fail) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		if err == nil && v == nil {
			t.Fatal("no error and nothing verified")
		}
	})
}
