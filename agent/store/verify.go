package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"
)

// Problem is one thing store verification found wrong: the table, the record (its seq, in a
// chain), and what differs.
type Problem struct {
	Table    string `json:"table"`
	Record   int64  `json:"record,omitempty"`
	Snapshot string `json:"snapshot,omitempty"`
	Target   string `json:"target,omitempty"`
	Artifact string `json:"artifact,omitempty"`
	Blob     string `json:"blob,omitempty"`
	Msg      string `json:"message"`
}

func (p Problem) String() string {
	s := p.Table + ": "
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

// VerifyReport counts what was checked, and gives the head of the store that was verified.
type VerifyReport struct {
	Snapshots int            `json:"snapshots"`
	Blobs     int            `json:"blobs"`
	Links     int            `json:"links"`
	Results   int            `json:"results"`
	Events    int            `json:"status_events"`
	Held      int            `json:"held"`
	Records   map[string]int `json:"records"` // records per chain table
	Heads     int            `json:"heads"`   // recorded heads, each checked
	Head      *Head          `json:"head"`
	Problems  []Problem      `json:"problems"`
}

// VerifyOptions adds checks to Verify.
type VerifyOptions struct {
	// Head, when set, is a head digest taken from this store earlier (by store head or in an
	// evidence bundle): verification fails unless the store still extends it.
	Head string
}

// tables maps every table of the schema to how verification covers each of its columns. The
// tamper test holds the live schema against it: a column that is not here fails that test.
var tables = map[string]map[string]string{}

// registerTable records how verification covers each column of a table that is not a chain
// (chains register through registerChain). Call it from init, beside the code that verifies
// the table.
func registerTable(name string, cols map[string]string) {
	if _, ok := tables[name]; ok {
		panic("store: table " + name + " registered twice")
	}
	tables[name] = cols
}

func init() {
	registerTable("blobs", map[string]string{
		"hash":  "SHA-256 of the decompressed content, recomputed; manifests reference it",
		"size":  "length of the decompressed content, and the size the manifests record",
		"codec": "must be deflate",
		"data":  "decompressed (bounded by the recorded size, no trailing bytes) and hashed",
	})
	registerTable("snapshots", map[string]string{
		"id":        "SHA-256 of the manifest, recomputed",
		"target":    "equals the manifest's target",
		"seq":       "equals the manifest's seq; 1, 2, ... per target without gaps",
		"prev":      "equals the manifest's prev; the id of the snapshot before",
		"taken_at":  "equals the manifest's taken_at",
		"artifacts": "equals the manifest's number of artifacts",
		"changed":   "recomputed from the manifest and the previous one",
		"note":      "equals the manifest's note",
		"manifest":  "decompressed (bounded, no trailing bytes) and hashed into id",
	})
}

// verifier holds one verification's state: its read transaction, what it found so far, and
// what later tables are checked against.
type verifier struct {
	ctx context.Context
	tx  *sql.Tx
	rep *VerifyReport
	// snapshots maps each snapshot ID to its target and time.
	snapshots map[string]snapInfo
	// chains maps each chain (a chain table, or snapshots/TARGET) to its records' IDs. Every
	// chain's IDs are read before any chain's records are checked, so a check may look up a
	// record of any chain (v.chains["links"].byID[id]).
	chains map[string]*chainIDs
	// held is the newest held record of each snapshot, as far as verification has read.
	held map[string]heldRecord
	// refs maps each blob that a manifest references to its size there and the first reference.
	refs map[string]*blobRef
}

type snapInfo struct {
	target  string
	takenAt time.Time
}

// chainIDs are the record IDs of one chain by seq, and its newest record.
type chainIDs struct {
	ids    map[int64]string
	byID   map[string]int64
	seq    int64
	newest string
}

// saw records that chain has record id at seq.
func (v *verifier) saw(chain string, seq int64, id string) {
	c := v.chains[chain]
	if c == nil {
		c = &chainIDs{ids: map[int64]string{}, byID: map[string]int64{}}
		v.chains[chain] = c
	}
	c.ids[seq], c.byID[id] = id, seq
	if seq >= c.seq {
		c.seq, c.newest = seq, id
	}
}

type blobRef struct {
	size               int64
	snapshot, artifact string
	target             string
	n                  int
}

func (v *verifier) add(p Problem) { v.rep.Problems = append(v.rep.Problems, p) }

// Verify recomputes every hash and checks every chain and every column that output relies on
// (see tables), all in one read transaction: one consistent view, however the store is being
// written meanwhile. It also checks that the store extends every head recorded in it.
func (s *Store) Verify(ctx context.Context) (*VerifyReport, error) {
	return s.VerifyWith(ctx, VerifyOptions{})
}

// VerifyWith is Verify with further checks.
func (s *Store) VerifyWith(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	var rep *VerifyReport
	err := s.readTx(ctx, func(tx *sql.Tx) (err error) {
		rep, err = s.verifyIn(ctx, tx, opts)
		return err
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// verifyIn is VerifyWith inside transaction tx.
func (s *Store) verifyIn(ctx context.Context, tx *sql.Tx, opts VerifyOptions) (*VerifyReport, error) {
	v := &verifier{ctx: ctx, tx: tx, rep: &VerifyReport{Records: map[string]int{}},
		snapshots: map[string]snapInfo{}, chains: map[string]*chainIDs{}, refs: map[string]*blobRef{}, held: map[string]heldRecord{}}
	for _, c := range chains {
		v.rep.Records[c.table] = 0
	}
	if err := v.verifySnapshots(); err != nil {
		return nil, err
	}
	if err := v.verifyBlobs(); err != nil {
		return nil, err
	}
	for _, c := range chains {
		if err := v.readIDs(c); err != nil {
			return nil, err
		}
	}
	for _, c := range sortedChains() {
		if err := v.verifyChain(c); err != nil {
			return nil, err
		}
	}
	v.rep.Head = v.head()
	if err := v.verifyHeads(opts.Head); err != nil {
		return nil, err
	}
	r := v.rep
	if r.Problems == nil {
		r.Problems = []Problem{}
	}
	r.Links, r.Results, r.Events, r.Held = r.Records["links"], r.Records["results"], r.Records["status_events"], r.Records["held"]
	sort.SliceStable(r.Problems, func(i, j int) bool {
		a, b := r.Problems[i], r.Problems[j]
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		if a.Target != b.Target {
			return a.Target < b.Target
		}
		return a.Record < b.Record
	})
	return r, nil
}

// verifySnapshots checks every manifest's hash, the index columns against it, each target's
// chain, and collects the blobs the manifests reference.
func (v *verifier) verifySnapshots() error {
	rows, err := v.tx.QueryContext(v.ctx, `SELECT id, target, seq, prev, taken_at, artifacts, changed, note, manifest FROM snapshots ORDER BY target, seq`)
	if err != nil {
		return fmt.Errorf("snapshots: %w", err)
	}
	defer rows.Close()
	var lastTarget, lastID string
	var lastSeq int64
	var prevArts []ArtifactEntry // the previous snapshot's artifacts, nil when unknown
	for rows.Next() {
		var id, target, prev, taken, note string
		var seq int64
		var count, changed int
		var z []byte
		if err := rows.Scan(&id, &target, &seq, &prev, &taken, &count, &changed, &note, &z); err != nil {
			return fmt.Errorf("snapshots: %w", err)
		}
		v.rep.Snapshots++
		v.snapshots[id] = snapInfo{target: target}
		v.saw("snapshots/"+target, seq, id)
		add := func(format string, args ...any) {
			v.add(Problem{Table: "snapshots", Record: seq, Snapshot: id, Target: target, Msg: fmt.Sprintf(format, args...)})
		}
		if target != lastTarget {
			lastTarget, lastID, lastSeq, prevArts = target, "", 0, []ArtifactEntry{}
		}
		switch {
		case seq != lastSeq+1:
			add("chain gap: seq %d follows seq %d (a snapshot was removed, or the order changed)", seq, lastSeq)
			prevArts = nil
		case prev != lastID:
			add("chain broken: prev is %q, want %q", short(prev), short(lastID))
		}
		lastID, lastSeq = id, seq
		raw, err := inflate(z, maxManifest)
		if err != nil {
			add("manifest is corrupt: %v", err)
			prevArts = nil
			continue
		}
		if h := Hash(raw); h != id {
			add("manifest hashes to %s, not its ID: the manifest was altered", short(h))
		}
		var m Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			add("manifest is not valid JSON: %v", err)
			prevArts = nil
			continue
		}
		for _, d := range []struct {
			col       string
			have, say any
		}{
			{"target", target, m.Target},
			{"seq", seq, m.Seq},
			{"prev", prev, m.Prev},
			{"taken_at", taken, m.TakenAt.UTC().Format(time.RFC3339Nano)},
			{"artifacts", count, len(m.Artifacts)},
			{"note", note, m.Note},
		} {
			if d.have != d.say {
				add("column %s is %q, the manifest says %q", d.col, fmt.Sprint(d.have), fmt.Sprint(d.say))
			}
		}
		if prevArts != nil {
			if want := changedCount(prevArts, m.Artifacts); changed != want {
				add("column changed is %d, but %d artifacts differ from the previous snapshot", changed, want)
			}
		}
		prevArts = m.Artifacts
		v.snapshots[id] = snapInfo{target: target, takenAt: m.TakenAt}
		for _, a := range m.Artifacts {
			r := v.refs[a.SHA256]
			if r == nil {
				v.refs[a.SHA256] = &blobRef{size: a.Size, snapshot: id, artifact: a.Name, target: target, n: 1}
				continue
			}
			r.n++
			if r.size != a.Size {
				add("artifact %s: size %d, but snapshot %s records %d for the same content %s", a.Name, a.Size, short(r.snapshot), r.size, short(a.SHA256))
			}
		}
	}
	return rows.Err()
}

// changedCount is the number of artifacts added, removed or different (in content or
// availability) between two manifests' artifact lists.
func changedCount(prev, cur []ArtifactEntry) int {
	before := make(map[string]string, len(prev))
	for _, a := range prev {
		before[a.Name] = a.SHA256 + "\x00" + a.Unavailable
	}
	n := 0
	for _, a := range cur {
		if h, ok := before[a.Name]; !ok || h != a.SHA256+"\x00"+a.Unavailable {
			n++
		}
		delete(before, a.Name)
	}
	return n + len(before)
}

// verifyBlobs recomputes every blob's hash and size, decompressing no more than the size the
// manifests (or, for a blob no manifest references, its row) record, and without holding the
// content in memory; and checks that every referenced blob exists.
func (v *verifier) verifyBlobs() error {
	rows, err := v.tx.QueryContext(v.ctx, `SELECT hash, size, codec, data FROM blobs`)
	if err != nil {
		return fmt.Errorf("blobs: %w", err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var hash, codec string
		var size int64
		var data []byte
		if err := rows.Scan(&hash, &size, &codec, &data); err != nil {
			return fmt.Errorf("blobs: %w", err)
		}
		v.rep.Blobs++
		have[hash] = true
		p := Problem{Table: "blobs", Blob: hash}
		limit := size
		if r := v.refs[hash]; r != nil {
			p.Target, p.Snapshot, p.Artifact = r.target, r.snapshot, r.artifact
			if size != r.size {
				p.Msg = fmt.Sprintf("column size is %d, the manifest records %d", size, r.size)
				v.add(p)
				limit = r.size
			}
		}
		if codec != "deflate" {
			p.Msg = fmt.Sprintf("stored content is corrupt: unknown codec %q", codec)
			v.add(p)
			continue
		}
		h, n, err := inflateHash(data, limit)
		switch {
		case err != nil:
			p.Msg = "stored content is corrupt: " + err.Error()
		case h != hash:
			p.Msg = fmt.Sprintf("stored content is corrupt: content hashes to %s, not %s", short(h), short(hash))
		case n != limit:
			p.Msg = fmt.Sprintf("stored content is corrupt: size %d, recorded %d", n, limit)
		default:
			continue
		}
		if r := v.refs[hash]; r != nil && r.n > 1 {
			p.Msg += fmt.Sprintf(" (%d more artifacts of snapshots have this content)", r.n-1)
		}
		v.add(p)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("blobs: %w", err)
	}
	for _, h := range slices.Sorted(maps.Keys(v.refs)) {
		if r := v.refs[h]; !have[h] {
			v.add(Problem{Table: "blobs", Blob: h, Target: r.target, Snapshot: r.snapshot, Artifact: r.artifact,
				Msg: "content " + short(h) + " is missing from the store"})
		}
	}
	return nil
}

// refSnapshot checks that a record's snapshot exists and belongs to its target.
func (v *verifier) refSnapshot(c *chain, r *chainRow, snapshot, target string) {
	info, ok := v.snapshots[snapshot]
	got := info.target
	switch {
	case !ok:
		p := c.problem(r, "its snapshot %s does not exist", short(snapshot))
		p.Target = target
		v.add(p)
	case got != target:
		p := c.problem(r, "its snapshot %s belongs to target %s, not %s", short(snapshot), got, target)
		p.Target = target
		v.add(p)
	}
}

// readIDs records the seq and ID of every record of c.
func (v *verifier) readIDs(c *chain) error {
	rows, err := v.tx.QueryContext(v.ctx, `SELECT seq, id FROM `+c.table)
	if err != nil {
		return fmt.Errorf("%s: %w", c.table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq any
		var id string
		if err := rows.Scan(&seq, &id); err != nil {
			return fmt.Errorf("%s: %w", c.table, err)
		}
		if n, ok := seq.(int64); ok {
			v.saw(c.table, n, id)
		}
	}
	return rows.Err()
}
