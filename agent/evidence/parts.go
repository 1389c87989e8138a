package evidence

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/hardtrail/hardtrail/agent/incident"
	"github.com/hardtrail/hardtrail/agent/store"
)

// MachineIDArtifact is the artifact whose content names the machine, for provenance.
const MachineIDArtifact = "system/machine-id"

// addSnapshot adds snapshots/ID.json, the snapshot's canonical manifest as stored (its SHA-256
// is the ID), and returns its path and the snapshot's provenance.
func (b *Bundle) addSnapshot(ctx context.Context, st *store.Store, s *store.Snapshot) (string, *Provenance, error) {
	p := SnapshotsDir + "/" + s.ID + ".json"
	if store.Hash(s.Raw) != s.ID {
		return "", nil, fmt.Errorf("snapshot %s: its manifest does not hash to its ID (run hardtrail store verify)", store.Short(s.ID))
	}
	b.files[p] = s.Raw
	m := s.Manifest
	pv := &Provenance{Hostname: m.Hostname, Transport: m.Transport, Address: m.Address, HostKey: m.HostKey,
		ToolVersion: m.ToolVersion, Commands: []Command{}}
	for _, e := range m.Artifacts {
		if len(e.Command) > 0 {
			pv.Commands = append(pv.Commands, Command{Artifact: e.Name, Argv: e.Command, ExitCode: e.ExitCode, Stderr: e.Stderr})
		}
		if e.Unavailable != "" {
			pv.Unavailable = append(pv.Unavailable, Unavailable{Artifact: e.Name, Reason: e.Unavailable})
		}
		if e.Name == MachineIDArtifact && e.Unavailable == "" {
			c, err := st.Blob(ctx, e.SHA256)
			if err != nil {
				return "", nil, fmt.Errorf("snapshot %s: %w", store.Short(s.ID), err)
			}
			pv.MachineID = strings.TrimSpace(string(c))
		}
	}
	return p, pv, nil
}

// addSigned adds records/ID.json (the bytes an operator signed) and records/ID.sig (the SSHSIG
// signature), so that ssh-keygen -Y verify can check them, and returns the signature's path.
func (b *Bundle) addSigned(id string, signed []byte, sig string) string {
	b.files[RecordsDir+"/"+id+".json"] = signed
	b.files[RecordsDir+"/"+id+".sig"] = []byte(sig)
	return RecordsDir + "/" + id + ".sig"
}

// addRules adds rules/: the files that define the linked rules and their waivers, verbatim.
func (b *Bundle) addRules(m *Manifest, s *incident.State) error {
	used := map[string]bool{}
	for _, f := range s.Rules.Files {
		if store.Hash(f.Text) != f.SHA256 {
			return fmt.Errorf("rule file %s does not match its hash in the store", f.Name)
		}
		base := path.Base(strings.ReplaceAll(f.Name, `\`, "/"))
		if err := checkName(base); err != nil || base == "." || base == "/" || strings.HasPrefix(base, ".") {
			base = "rules.toml"
		}
		p := RulesDir + "/" + base
		for i := 2; used[p]; i++ {
			p = fmt.Sprintf("%s/%d-%s", RulesDir, i, base)
		}
		used[p] = true
		b.files[p] = f.Text
		m.RuleFiles = append(m.RuleFiles, RuleFile{Path: p, Source: f.Name})
	}
	return nil
}

// addRecord adds the incident record: records/incident.json, the agent's status events and, for
// each signed record, the bytes signed and the signature.
func (b *Bundle) addRecord(ctx context.Context, st *store.Store, m *Manifest, s *incident.State) error {
	evs, err := st.StatusEvents(ctx, s.Incident)
	if err != nil {
		return err
	}
	events := []StatusEvent{}
	for _, e := range evs {
		events = append(events, StatusEvent{ID: e.ID, StatusEvent: e})
	}
	raw, err := json.MarshalIndent(events, "", "  ")
	if err != nil {
		return err
	}
	b.files[StatusEvents] = append(raw, '\n')
	r := &Record{Title: s.Title(), Closed: s.Closed != nil, Reopened: s.Reopened, Entries: []RecordEntry{}, StatusEvents: len(events)}
	for _, e := range s.Records {
		re := RecordEntry{ID: e.ID, Record: e}
		if e.Signature != "" {
			re.SignatureFile = b.addSigned(e.ID, e.SignedBytes(), e.Signature)
		}
		r.Entries = append(r.Entries, re)
	}
	m.Record = r
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	b.files[IncidentRecord] = buf.Bytes()
	return nil
}

// commandName is the program of argv, for messages.
func commandName(argv []string) string {
	if len(argv) == 0 {
		return "the command"
	}
	return argv[0]
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
