package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ManifestFormat names the manifest layout.
const ManifestFormat = "hardtrail-snapshot/1"

// Manifest is a snapshot: what was captured, how, and the hash of the snapshot before it. Its
// canonical JSON is hashed to give the snapshot ID, so every field is evidence.
type Manifest struct {
	Format      string          `json:"format"`
	Target      string          `json:"target"`
	Seq         int64           `json:"seq"`
	Prev        string          `json:"prev"`
	Started     time.Time       `json:"started"`
	TakenAt     time.Time       `json:"taken_at"`
	Hostname    string          `json:"hostname,omitempty"`
	Transport   string          `json:"transport"`
	Address     string          `json:"address,omitempty"`
	HostKey     string          `json:"host_key,omitempty"`
	Legacy      bool            `json:"legacy_algorithms,omitempty"`
	Profiles    []string        `json:"profiles"`
	ToolVersion string          `json:"tool_version"`
	Note        string          `json:"note,omitempty"`
	Artifacts   []ArtifactEntry `json:"artifacts"`
}

// ArtifactEntry is one artifact in a manifest: the hash of its stored content and how it was
// obtained.
type ArtifactEntry struct {
	Name    string   `json:"name"`
	SHA256  string   `json:"sha256"`
	Size    int64    `json:"size"`
	Source  string   `json:"source"`
	Command []string `json:"command,omitempty"`
	Path    string   `json:"path,omitempty"`
	// ExitCode is nil when the artifact has none (a file, a command that did not run or that timed
	// out); manifests written before it could be nil say 0 there.
	ExitCode    *int              `json:"exit_code,omitempty"`
	Stderr      string            `json:"stderr,omitempty"`
	DurationMS  int64             `json:"duration_ms"`
	Truncated   bool              `json:"truncated,omitempty"`
	FileSize    int64             `json:"file_size,omitempty"`
	Mode        string            `json:"mode,omitempty"`
	Owner       string            `json:"owner,omitempty"`
	Group       string            `json:"group,omitempty"`
	Unavailable string            `json:"unavailable,omitempty"`
	Meta        map[string]string `json:"meta,omitempty"`
}

// Snapshot is a stored manifest with its ID.
type Snapshot struct {
	ID       string
	Manifest Manifest
	Raw      []byte // the canonical JSON that ID hashes
	Changed  int
}

// Entry returns the manifest entry for an artifact.
func (s *Snapshot) Entry(name string) (ArtifactEntry, bool) {
	i := sort.Search(len(s.Manifest.Artifacts), func(i int) bool { return s.Manifest.Artifacts[i].Name >= name })
	if i < len(s.Manifest.Artifacts) && s.Manifest.Artifacts[i].Name == name {
		return s.Manifest.Artifacts[i], true
	}
	return ArtifactEntry{}, false
}

// Saved reports what Save wrote.
type Saved struct {
	ID        string
	Seq       int64
	Artifacts int
	Changed   int // artifacts added, removed or different since the previous snapshot
	NewBlobs  int // blobs that were not already stored
	// Held is true when the capture equalled snapshot ID and was recorded as holding it
	// (SaveOrHold) instead of being stored as a new snapshot.
	Held bool
}

// ValidTarget reports whether name can name a target: 1 to 128 ASCII letters, digits and
// . _ @ -, starting with a letter or digit (the pattern ^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$,
// checked without compiling it: its bounded repetition makes a large program).
func ValidTarget(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '@' && c != '-') {
			return false
		}
	}
	return true
}

// Save stores a snapshot: m describes it (Seq, Prev and each entry's SHA256 and Size are filled
// in here) and contents[i] is the content of m.Artifacts[i]. The snapshot is written in one
// transaction, chained to the target's newest snapshot at that moment.
func (s *Store) Save(ctx context.Context, m *Manifest, contents [][]byte) (*Saved, error) {
	if len(contents) != len(m.Artifacts) {
		return nil, fmt.Errorf("save: %d artifacts but %d contents", len(m.Artifacts), len(contents))
	}
	if !ValidTarget(m.Target) {
		return nil, fmt.Errorf("save: invalid target name %q", m.Target)
	}
	m.Format = ManifestFormat
	m.Started, m.TakenAt = m.Started.UTC(), m.TakenAt.UTC()
	type blob struct {
		hash string
		size int
	}
	blobs := make([]blob, len(contents))
	for i, c := range contents {
		h := Hash(c)
		m.Artifacts[i].SHA256, m.Artifacts[i].Size = h, int64(len(c))
		blobs[i] = blob{hash: h, size: len(c)}
	}
	order := make([]int, len(m.Artifacts))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return m.Artifacts[order[a]].Name < m.Artifacts[order[b]].Name })
	arts := make([]ArtifactEntry, len(order))
	for i, j := range order {
		arts[i] = m.Artifacts[j]
		if i > 0 && arts[i].Name == arts[i-1].Name {
			return nil, fmt.Errorf("save: artifact %q twice", arts[i].Name)
		}
	}
	m.Artifacts = arts
	out := &Saved{Artifacts: len(arts)}
	// Compress outside the transaction; only blobs not yet stored are written.
	compressed := map[string][]byte{}
	err := s.writeTxLocked(ctx, []string{"snapshots/" + m.Target}, func(tx *sql.Tx) error {
		if out.ID != "" {
			// A retry: the connection may have been lost after the commit went through.
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM snapshots WHERE id = ?`, out.ID).Scan(&one)
			if err == nil {
				return errSaved
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		out.NewBlobs = 0
		var prevID string
		var prevSeq int64
		var prevRaw []byte
		err := tx.QueryRowContext(ctx, `SELECT id, seq, manifest FROM snapshots WHERE target = ? ORDER BY seq DESC LIMIT 1`, m.Target).Scan(&prevID, &prevSeq, &prevRaw)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if prevRaw != nil {
			if prevRaw, err = inflate(prevRaw, maxManifest); err != nil {
				return fmt.Errorf("previous snapshot %s of %s: %w", prevID, m.Target, err)
			}
		}
		m.Seq, m.Prev = prevSeq+1, prevID
		raw, err := json.Marshal(m)
		if err != nil {
			return err
		}
		id := Hash(raw)
		out.ID, out.Seq = id, m.Seq
		if prevRaw != nil {
			var pm Manifest
			if err := json.Unmarshal(prevRaw, &pm); err != nil {
				return fmt.Errorf("previous snapshot %s of %s: %w", prevID, m.Target, err)
			}
			out.Changed = changedCount(pm.Artifacts, arts)
		} else {
			out.Changed = changedCount(nil, arts)
		}
		// In hash order: two writers that store the same new blobs wait on each other in one order.
		byHash := make([]int, len(blobs))
		for i := range byHash {
			byHash[i] = i
		}
		sort.Slice(byHash, func(a, b int) bool { return blobs[byHash[a]].hash < blobs[byHash[b]].hash })
		hashes := make([]string, len(blobs))
		for i, b := range blobs {
			hashes[i] = b.hash
		}
		have, err := storedBlobs(ctx, tx, hashes)
		if err != nil {
			return err
		}
		for _, i := range byHash {
			b := blobs[i]
			if have[b.hash] {
				continue
			}
			have[b.hash] = true
			data, ok := compressed[b.hash]
			if !ok {
				data = compress(contents[i])
				compressed[b.hash] = data
			}
			// Another target's writer may store the same blob meanwhile: the first one wins.
			res, err := tx.ExecContext(ctx, `INSERT INTO blobs (hash, size, codec, data) VALUES (?, ?, 'deflate', ?) ON CONFLICT DO NOTHING`, b.hash, b.size, data)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err == nil && n > 0 {
				out.NewBlobs++
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO snapshots (id, target, seq, prev, taken_at, artifacts, changed, note, manifest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, m.Target, m.Seq, m.Prev, m.TakenAt.Format(time.RFC3339Nano), len(arts), out.Changed, m.Note, compress(raw)); err != nil {
			return err
		}
		return nil
	})
	if errors.Is(err, errSaved) {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("save snapshot of %s: %w", m.Target, err)
	}
	return out, nil
}

// storedBlobs is the set of those of hashes that the store holds blobs of.
func storedBlobs(ctx context.Context, tx *sql.Tx, hashes []string) (map[string]bool, error) {
	have := map[string]bool{}
	for len(hashes) > 0 {
		n := min(len(hashes), maxIn)
		rows, err := tx.QueryContext(ctx, `SELECT hash FROM blobs WHERE hash IN (`+placeholders(n)+`)`, anys(hashes[:n])...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var h string
			if err := rows.Scan(&h); err != nil {
				rows.Close()
				return nil, err
			}
			have[h] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		hashes = hashes[n:]
	}
	return have, nil
}

// errSaved ends a retried Save whose first attempt was committed.
var errSaved = errors.New("saved by an earlier attempt")

// Get loads a snapshot by its full ID.
func (s *Store) Get(ctx context.Context, id string) (*Snapshot, error) {
	var raw []byte
	var changed int
	err := s.r.QueryRowContext(ctx, `SELECT manifest, changed FROM snapshots WHERE id = ?`, id).Scan(&raw, &changed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, NotFoundf("snapshot %s", id)
	}
	if err != nil {
		return nil, err
	}
	return decodeSnapshot(id, raw, changed)
}

// GetMany loads snapshots by their full IDs in one query, each checked as Get checks it, by ID.
// A missing one is an error matching ErrNotFound.
func (s *Store) GetMany(ctx context.Context, ids []string) (map[string]*Snapshot, error) {
	out := map[string]*Snapshot{}
	for rest := ids; len(rest) > 0; {
		n := min(len(rest), maxIn)
		if err := s.getSome(ctx, rest[:n], out); err != nil {
			return nil, err
		}
		rest = rest[n:]
	}
	for _, id := range ids {
		if out[id] == nil {
			return nil, NotFoundf("snapshot %s", id)
		}
	}
	return out, nil
}

// getSome adds the snapshots of ids (at most maxIn) to out.
func (s *Store) getSome(ctx context.Context, ids []string, out map[string]*Snapshot) error {
	rows, err := s.r.QueryContext(ctx, `SELECT id, manifest, changed FROM snapshots WHERE id IN (`+placeholders(len(ids))+`)`, anys(ids)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var z []byte
		var changed int
		if err := rows.Scan(&id, &z, &changed); err != nil {
			return err
		}
		if out[id], err = decodeSnapshot(id, z, changed); err != nil {
			return err
		}
	}
	return rows.Err()
}

// decodeSnapshot decompresses a stored manifest and checks it against its ID.
func decodeSnapshot(id string, z []byte, changed int) (*Snapshot, error) {
	raw, err := inflate(z, maxManifest)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	if Hash(raw) != id {
		return nil, fmt.Errorf("snapshot %s: the manifest does not match its ID (the store was altered; run hardtrail store verify)", id)
	}
	snap := &Snapshot{ID: id, Raw: raw, Changed: changed}
	if err := json.Unmarshal(raw, &snap.Manifest); err != nil {
		return nil, fmt.Errorf("snapshot %s: corrupt manifest: %w", id, err)
	}
	return snap, nil
}

// Snapshots returns the snapshots of target from seq from on, oldest first, each checked
// against its ID as Get checks it, in one query.
func (s *Store) Snapshots(ctx context.Context, target string, from int64) ([]*Snapshot, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, manifest, changed FROM snapshots WHERE target = ? AND seq >= ? ORDER BY seq`, target, from)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Snapshot
	for rows.Next() {
		var id string
		var z []byte
		var changed int
		if err := rows.Scan(&id, &z, &changed); err != nil {
			return nil, err
		}
		snap, err := decodeSnapshot(id, z, changed)
		if err != nil {
			return nil, err
		}
		if snap.Manifest.Target != target {
			return nil, fmt.Errorf("snapshot %s: its manifest names target %s, not %s (the store was altered; run hardtrail store verify)", short(id), snap.Manifest.Target, target)
		}
		out = append(out, snap)
	}
	return out, rows.Err()
}

// Blob returns the content with the given hash, checked against it. It decompresses no more
// than the size recorded for the blob.
func (s *Store) Blob(ctx context.Context, hash string) ([]byte, error) {
	return s.blob(ctx, hash, -1)
}

// onePass is the largest blob that Blob decompresses into memory before checking its hash.
const onePass = 8 << 20

// blob is Blob, with the size a manifest records for the content (-1: the blob's own record).
// The compressed bytes are read in place from the driver's row.
func (s *Store) blob(ctx context.Context, hash string, size int64) ([]byte, error) {
	if b, ok := s.cache.get(hash, size); ok {
		return b, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT size, data FROM blobs WHERE hash = ?`, hash)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, NotFoundf("blob %s", hash)
	}
	var recorded int64
	var data sql.RawBytes // valid until rows.Next or rows.Close
	if err := rows.Scan(&recorded, &data); err != nil {
		return nil, err
	}
	out, err := checkedBlob(hash, recorded, data, size)
	if err != nil {
		return nil, err
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	s.cache.put(hash, out)
	return out, nil
}

// ErrAltered is the error of content that does not match its hash or does not decompress.
var ErrAltered = errors.New("the store was altered; run hardtrail store verify")

// checkedBlob is the content of a blob row (its recorded size and compressed data), checked
// against hash: decompressed and hashed in one pass into a buffer of the size a manifest
// records for it (size; -1 for the row's own record).
func checkedBlob(hash string, recorded int64, data []byte, size int64) ([]byte, error) {
	if size < 0 {
		size = recorded
		// The blob's own size may have been altered along with its data: above onePass,
		// check the content in constant memory before holding it.
		if size > onePass {
			h, n, err := inflateHash(data, size)
			if err == nil && (n != size || h != hash) {
				err = errMismatch
			}
			if err != nil {
				return nil, blobError(hash, err)
			}
		}
	}
	h := sha256.New()
	out, err := inflateSized(data, size, h)
	if err == nil && (int64(len(out)) != size || hex.EncodeToString(h.Sum(nil)) != hash) {
		err = errMismatch
	}
	if err != nil {
		return nil, blobError(hash, err)
	}
	return out, nil
}

var errMismatch = errors.New("content does not match its hash")

// blobError is what Blob returns for a blob that does not decompress or match its hash.
func blobError(hash string, err error) error {
	return fmt.Errorf("blob %s: %w (%w)", hash, err, ErrAltered)
}

// Blobs returns the contents with the given hashes, in their order, each checked as Blob checks
// it (ReadBlobs, then Check).
func (s *Store) Blobs(ctx context.Context, hashes ...string) ([][]byte, error) {
	c, err := s.ReadBlobs(ctx, hashes...)
	if err != nil {
		return nil, err
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	return c.Data, nil
}

// Contents are blob contents that ReadBlobs returned as soon as they were decompressed, each
// within its recorded size, while their check against their hashes goes on. Nothing derived
// from them may be shown before Check returns nil.
type Contents struct {
	// Data holds the contents in the order of the hashes asked for (the same hash twice, the
	// same slice); an entry is nil when its blob was not found or does not decompress.
	Data    [][]byte
	errs    []error
	checked sync.WaitGroup
}

// Check waits until every content is checked against its hash and returns the first error, in
// the order of the hashes: a blob not found (errors.Is ErrNotFound), or one that does not
// decompress or match its hash (ErrAltered).
func (c *Contents) Check() error {
	c.checked.Wait()
	for _, err := range c.errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ReadBlobs reads the blobs with the given hashes that the cache does not hold, at most maxIn in
// a query, and decompresses them one per processor at a time. It returns once every one is
// decompressed; each is then hashed and checked by the goroutine that decompressed it while
// the caller starts on the contents, so that the two sides of a diff cost one decompression
// before the comparison starts and the hashing goes on beside it. Only a failed query is
// returned as an error; what is wrong with a blob, Check reports.
func (s *Store) ReadBlobs(ctx context.Context, hashes ...string) (*Contents, error) {
	c := &Contents{Data: make([][]byte, len(hashes)), errs: make([]error, len(hashes))}
	at := map[string][]int{} // where each hash not in cache goes
	var want []string
	for i, h := range hashes {
		if b, ok := s.cache.get(h, -1); ok {
			c.Data[i] = b
			continue
		}
		if at[h] == nil {
			want = append(want, h)
		}
		at[h] = append(at[h], i)
	}
	var inflated sync.WaitGroup
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	// read fills the entries idx of one blob; no two calls share an entry.
	read := func(hash string, idx []int, recorded int64, data []byte) {
		defer c.checked.Done()
		defer func() { <-slots }()
		set := func(out []byte, err error) {
			for _, i := range idx {
				c.Data[i], c.errs[i] = out, err
			}
		}
		if recorded > onePass {
			out, err := checkedBlob(hash, recorded, data, -1) // checked in constant memory first
			set(out, err)
			inflated.Done()
			if err == nil {
				s.cache.put(hash, out)
			}
			return
		}
		out, err := inflateSized(data, recorded, nil)
		if err != nil {
			set(nil, blobError(hash, err))
			inflated.Done()
			return
		}
		set(out, nil)
		inflated.Done()
		if sum := sha256.Sum256(out); int64(len(out)) != recorded || hex.EncodeToString(sum[:]) != hash {
			for _, i := range idx {
				c.errs[i] = blobError(hash, errMismatch)
			}
			return
		}
		s.cache.put(hash, out)
	}
	err := func() error {
		for len(want) > 0 {
			n := min(len(want), maxIn)
			q := `SELECT hash, size, data FROM blobs WHERE hash IN (` + placeholders(n) + `)`
			rows, err := s.r.QueryContext(ctx, q, anys(want[:n])...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var hash string
				var size int64
				var data []byte
				if err := rows.Scan(&hash, &size, &data); err != nil {
					rows.Close()
					return err
				}
				idx := at[hash]
				if idx == nil {
					continue // a second row of one hash
				}
				delete(at, hash)
				slots <- struct{}{}
				inflated.Add(1)
				c.checked.Add(1)
				go read(hash, idx, size, data)
			}
			if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
				return err
			}
			want = want[n:]
		}
		return nil
	}()
	if err != nil {
		c.checked.Wait()
		return nil, err
	}
	for h, idx := range at {
		for _, i := range idx {
			c.errs[i] = NotFoundf("blob %s", h)
		}
	}
	inflated.Wait()
	return c, nil
}

// Content returns one artifact of a snapshot.
func (s *Store) Content(ctx context.Context, snap *Snapshot, name string) ([]byte, ArtifactEntry, error) {
	e, ok := snap.Entry(name)
	if !ok {
		return nil, e, NotFoundf("snapshot %s has no artifact %q", short(snap.ID), name)
	}
	b, err := s.blob(ctx, e.SHA256, e.Size)
	if err != nil {
		return nil, e, fmt.Errorf("artifact %s of snapshot %s: %w", name, short(snap.ID), err)
	}
	return b, e, nil
}

// Summary is one line of history.
type Summary struct {
	ID        string    `json:"id"`
	Target    string    `json:"target"`
	Seq       int64     `json:"seq"`
	TakenAt   time.Time `json:"taken_at"`
	Artifacts int       `json:"artifacts"`
	Changed   int       `json:"changed"`
	Note      string    `json:"note,omitempty"`
}

// LogQuery selects history.
type LogQuery struct {
	Target string // all targets when empty
	Limit  int    // all when zero
}

// Log lists snapshots newest first.
func (s *Store) Log(ctx context.Context, q LogQuery) ([]Summary, error) {
	query := `SELECT id, target, seq, taken_at, artifacts, changed, note FROM snapshots`
	var args []any
	if q.Target != "" {
		query += ` WHERE target = ? ORDER BY seq DESC`
		args = append(args, q.Target)
	} else {
		query += ` ORDER BY taken_at DESC, target, seq DESC`
	}
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Summary
	for rows.Next() {
		var sm Summary
		var t string
		if err := rows.Scan(&sm.ID, &sm.Target, &sm.Seq, &t, &sm.Artifacts, &sm.Changed, &sm.Note); err != nil {
			return nil, err
		}
		sm.TakenAt, _ = time.Parse(time.RFC3339Nano, t)
		out = append(out, sm)
	}
	return out, rows.Err()
}

// Targets lists the targets that have snapshots.
func (s *Store) Targets(ctx context.Context) ([]string, error) {
	return s.strings(ctx, `SELECT DISTINCT target FROM snapshots ORDER BY target`)
}

// strings runs a query of one text column.
func (s *Store) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Latest returns the ID of the newest snapshot of target, or ErrNotFound.
func (s *Store) Latest(ctx context.Context, target string) (string, error) {
	return s.nth(ctx, target, 0)
}

func (s *Store) nth(ctx context.Context, target string, back int) (string, error) {
	var id string
	err := s.r.QueryRowContext(ctx, `SELECT id FROM snapshots WHERE target = ? ORDER BY seq DESC LIMIT 1 OFFSET ?`, target, back).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		var n int
		s.r.QueryRowContext(ctx, `SELECT count(*) FROM snapshots WHERE target = ?`, target).Scan(&n)
		if n == 0 {
			return "", NotFoundf("target %q has no snapshots", target)
		}
		noun := "snapshots"
		if n == 1 {
			noun = "snapshot"
		}
		return "", NotFoundf("target %q has only %d %s, so %s~%d does not exist", target, n, noun, target, back)
	}
	return id, err
}

var tildeRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(.+)~(\d+)$`) })

// Resolve turns a reference into a snapshot ID: a full ID; TARGET (its newest snapshot);
// TARGET~N (N before the newest); a unique prefix of at least 6 hex digits; or a form
// registered by another package (INCIDENT:before, INCIDENT:after).
func (s *Store) Resolve(ctx context.Context, ref string) (string, error) {
	if ref == "" {
		return "", errors.New("empty snapshot reference")
	}
	if id, ok, err := s.resolvePhase(ctx, ref); ok || err != nil {
		return id, err
	}
	if len(ref) == 64 && isHex(ref) {
		var one int
		err := s.r.QueryRowContext(ctx, `SELECT 1 FROM snapshots WHERE id = ?`, strings.ToLower(ref)).Scan(&one)
		if err == nil {
			return strings.ToLower(ref), nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", err
		}
		return "", NotFoundf("no snapshot %s", ref)
	}
	if m := tildeRE().FindStringSubmatch(ref); m != nil {
		n, err := strconv.Atoi(m[2])
		if err != nil {
			return "", fmt.Errorf("snapshot reference %q: bad count", ref)
		}
		return s.nth(ctx, m[1], n)
	}
	if ValidTarget(ref) {
		id, err := s.nth(ctx, ref, 0)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return id, err
		}
	}
	if isHex(ref) {
		if len(ref) < 6 {
			return "", fmt.Errorf("snapshot reference %q: a prefix needs at least 6 hex digits", ref)
		}
		rows, err := s.r.QueryContext(ctx, `SELECT id FROM snapshots WHERE id >= ? AND id < ? ORDER BY id LIMIT 3`, strings.ToLower(ref), strings.ToLower(ref)+"g")
		if err != nil {
			return "", err
		}
		defer rows.Close()
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return "", err
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			return "", err
		}
		switch len(ids) {
		case 0:
			return "", NotFoundf("no snapshot matches %q", ref)
		case 1:
			return ids[0], nil
		default:
			return "", fmt.Errorf("snapshot prefix %q is ambiguous (%s, %s...): give more digits", ref, short(ids[0]), short(ids[1]))
		}
	}
	return "", NotFoundf("no snapshot or target matches %q (a reference is an ID or 6+ hex digits of one, TARGET, TARGET~N, or INCIDENT:before|after)", ref)
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// Short is the abbreviated form of an ID used in output.
func Short(id string) string { return short(id) }

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
