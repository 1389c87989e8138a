package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// Problem is one thing store verification found wrong.
type Problem struct {
	Snapshot string `json:"snapshot,omitempty"`
	Target   string `json:"target,omitempty"`
	Artifact string `json:"artifact,omitempty"`
	Blob     string `json:"blob,omitempty"`
	Msg      string `json:"message"`
}

func (p Problem) String() string {
	s := ""
	if p.Target != "" {
		s += "target " + p.Target + ": "
	}
	if p.Snapshot != "" {
		s += "snapshot " + short(p.Snapshot) + ": "
	}
	if p.Artifact != "" {
		s += "artifact " + p.Artifact + ": "
	}
	if p.Blob != "" && p.Artifact == "" {
		s += "blob " + short(p.Blob) + ": "
	}
	return s + p.Msg
}

// VerifyReport counts what was checked.
type VerifyReport struct {
	Snapshots int       `json:"snapshots"`
	Blobs     int       `json:"blobs"`
	Links     int       `json:"links"`
	Results   int       `json:"results"`
	Events    int       `json:"status_events"`
	Held      int       `json:"held"`
	RuleSets  int       `json:"rule_sets"`
	Records   int       `json:"incident_records"`
	Problems  []Problem `json:"problems"`
}

// Verify recomputes every blob's hash, every manifest's hash, every chain link and every
// manifest-to-blob reference. It reads one consistent view of the store.
func (s *Store) Verify(ctx context.Context) (*VerifyReport, error) {
	rep := &VerifyReport{}
	add := func(p Problem) { rep.Problems = append(rep.Problems, p) }
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()

	// Blobs: content matches hash and size.
	bad := map[string]string{}
	have := map[string]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT hash, size, codec, data FROM blobs`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var hash, codec string
		var size int64
		var data []byte
		if err := rows.Scan(&hash, &size, &codec, &data); err != nil {
			rows.Close()
			return nil, err
		}
		rep.Blobs++
		have[hash] = true
		if codec != "deflate" {
			bad[hash] = fmt.Sprintf("unknown codec %q", codec)
			continue
		}
		b, err := decompress(data)
		switch {
		case err != nil:
			bad[hash] = err.Error()
		case Hash(b) != hash:
			bad[hash] = fmt.Sprintf("content hashes to %s, not %s", short(Hash(b)), short(hash))
		case int64(len(b)) != size:
			bad[hash] = fmt.Sprintf("size %d, recorded %d", len(b), size)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	// Snapshots: manifest hash, columns agree with manifest, chain, artifacts.
	type snap struct {
		id, target, prev string
		seq              int64
	}
	var snaps []snap
	referenced := map[string]bool{}
	srows, err := tx.QueryContext(ctx, `SELECT id, target, seq, prev, artifacts, manifest FROM snapshots ORDER BY target, seq`)
	if err != nil {
		return nil, err
	}
	for srows.Next() {
		var sn snap
		var count int
		var raw []byte
		if err := srows.Scan(&sn.id, &sn.target, &sn.seq, &sn.prev, &count, &raw); err != nil {
			srows.Close()
			return nil, err
		}
		rep.Snapshots++
		snaps = append(snaps, sn)
		p := Problem{Snapshot: sn.id, Target: sn.target}
		raw, err := decompress(raw)
		if err != nil {
			p.Msg = "manifest is corrupt: " + err.Error()
			add(p)
			continue
		}
		if h := Hash(raw); h != sn.id {
			p.Msg = fmt.Sprintf("manifest hashes to %s, not its ID: the manifest was altered", short(h))
			add(p)
		}
		var m Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			p.Msg = "manifest is not valid JSON: " + err.Error()
			add(p)
			continue
		}
		if m.Target != sn.target || m.Seq != sn.seq || m.Prev != sn.prev || len(m.Artifacts) != count {
			p.Msg = fmt.Sprintf("index columns (target %s, seq %d, prev %s) disagree with the manifest (target %s, seq %d, prev %s)",
				sn.target, sn.seq, short(sn.prev), m.Target, m.Seq, short(m.Prev))
			add(p)
		}
		for _, a := range m.Artifacts {
			referenced[a.SHA256] = true
			if msg, ok := bad[a.SHA256]; ok {
				add(Problem{Snapshot: sn.id, Target: sn.target, Artifact: a.Name, Blob: a.SHA256, Msg: "stored content is corrupt: " + msg})
			}
			if !have[a.SHA256] {
				add(Problem{Snapshot: sn.id, Target: sn.target, Artifact: a.Name, Blob: a.SHA256, Msg: "content " + short(a.SHA256) + " is missing from the store"})
			}
		}
	}
	srows.Close()
	if err := srows.Err(); err != nil {
		return nil, err
	}
	for h, msg := range bad {
		if !referenced[h] {
			add(Problem{Blob: h, Msg: "unreferenced blob is corrupt: " + msg})
		}
	}
	// Chains: seq 1..n per target, each prev is the snapshot before it.
	var lastTarget, lastID string
	var lastSeq int64
	for _, sn := range snaps {
		if sn.target != lastTarget {
			lastTarget, lastID, lastSeq = sn.target, "", 0
		}
		if sn.seq != lastSeq+1 {
			add(Problem{Snapshot: sn.id, Target: sn.target, Msg: fmt.Sprintf("chain gap: seq %d follows seq %d (a snapshot was removed)", sn.seq, lastSeq)})
		} else if sn.prev != lastID {
			add(Problem{Snapshot: sn.id, Target: sn.target, Msg: fmt.Sprintf("chain broken: prev is %q, want %q", short(sn.prev), short(lastID))})
		}
		lastID, lastSeq = sn.id, sn.seq
	}
	if err := tx.Rollback(); err != nil {
		return nil, err
	}
	var err2 error
	if rep.Links, err2 = s.verifyLinks(ctx, add); err2 != nil {
		return nil, err2
	}
	if rep.Results, err2 = s.verifyResults(ctx, add); err2 != nil {
		return nil, err2
	}
	if rep.Events, err2 = s.verifyEvents(ctx, add); err2 != nil {
		return nil, err2
	}
	if rep.Held, err2 = s.verifyHeld(ctx, add); err2 != nil {
		return nil, err2
	}
	if rep.RuleSets, err2 = s.verifyRuleSets(ctx, add); err2 != nil {
		return nil, err2
	}
	if rep.Records, err2 = s.verifyRecords(ctx, add); err2 != nil {
		return nil, err2
	}
	sort.SliceStable(rep.Problems, func(i, j int) bool {
		a, b := rep.Problems[i], rep.Problems[j]
		if a.Target != b.Target {
			return a.Target < b.Target
		}
		return a.Snapshot < b.Snapshot
	})
	return rep, nil
}
