package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// A chain is a table of hash-chained records, append-only: links, status events, results and
// held spans are chains, and so is any table a new kind of evidence adds.
//
// Every chain table has the columns
//
//	id     TEXT PRIMARY KEY         -- hex SHA-256 of record
//	seq    INTEGER NOT NULL UNIQUE  -- 1, 2, ... over the store
//	prev   TEXT NOT NULL            -- id of the record before, '' for the first
//	record BLOB NOT NULL            -- canonical JSON of the record
//
// plus index columns (chain.columns), each holding the record's JSON field of the same name, and
// optionally further columns (chain.extra) that chain.check proves. The record's JSON has the
// fields "seq" and "prev" too, so that its hash covers its place in the chain.
//
// To add a chain: create its table in a new migration (schema.go); give the record type a
// setChain method (chainRecord) and JSON fields named like the index columns, each a string or
// an integer; declare a chain value and call registerChain from an init function in the file
// that owns the table; write records with appendRecord inside writeTx and read them with
// records (or decodeRecord); and add records of it to the tamper test's fixture (buildFixture
// in coverage_test.go). Verify then recomputes every record's hash, checks the chain and every
// index column against the record, counts the records in VerifyReport.Records, and includes
// the chain's newest record in the head digest; the tamper test finds the table in the live
// schema, fails until every column is covered, and edits every column of every row, deletes
// every row and swaps neighbours, requiring verification to name the table each time. Tables
// that are not chains register their coverage with registerTable and are verified in Verify.
type chain struct {
	table   string   // the table, and the chain's name in the head
	what    string   // a record's name in messages, such as "link"
	columns []string // index columns: each equals the record's JSON field of that name
	// extra are further columns, each with how it is covered; check must prove them.
	extra map[string]string
	// check, when set, proves what the record's hash cannot: extra columns, and references to
	// other tables: v.snapshots holds every snapshot, v.chains every chain's record IDs,
	// v.refSnapshot checks a reference to a snapshot. It is called for every row whose record
	// decoded, in seq order, with the extra columns' values in r.extra in the order of extraCols;
	// it reports with v.add(c.problem(r, ...)).
	check func(v *verifier, c *chain, r *chainRow)
	// extraCols is the order in which check receives the extra columns.
	extraCols []string
}

// chainRow is one row of a chain as verification read it.
type chainRow struct {
	id     string
	seq    int64
	raw    []byte                     // the record
	fields map[string]json.RawMessage // the record's fields
	extra  []any
}

// problem is a Problem about this record, with the message prefixed by its name.
func (c *chain) problem(r *chainRow, format string, args ...any) Problem {
	return Problem{Table: c.table, Record: r.seq, Msg: fmt.Sprintf("%s %d (%s): ", c.what, r.seq, short(r.id)) + fmt.Sprintf(format, args...)}
}

// str is the record's string field name, or "" when it is missing or not a string.
func (r *chainRow) str(name string) string {
	var s string
	json.Unmarshal(r.fields[name], &s)
	return s
}

var chains []*chain

// registerChain adds a chain to those Verify checks and Head covers. Call it from init.
func registerChain(c *chain) {
	chains = append(chains, c)
	cols := map[string]string{
		"id":     "SHA-256 of record, recomputed",
		"seq":    "in record; 1, 2, ... without gaps",
		"prev":   "in record; the id of the record before",
		"record": "hashed into id",
	}
	for _, col := range c.columns {
		cols[col] = "equals the record's field " + col
	}
	for col, how := range c.extra {
		cols[col] = how
	}
	registerTable(c.table, cols)
}

// chainRecord is a record type of a chain: appendRecord gives it its place.
type chainRecord interface {
	setChain(seq int64, prev string)
}

// appendRecord appends rec to chain c inside tx: rec gets the seq after the chain's newest
// record and that record's id as prev, its canonical JSON is stored as the record, and the index
// columns are filled from that JSON. extra holds the values of c.extraCols. It returns the new
// record's id and JSON.
func appendRecord(ctx context.Context, tx *sql.Tx, c *chain, rec chainRecord, extra ...any) (string, []byte, error) {
	if len(extra) != len(c.extraCols) {
		return "", nil, fmt.Errorf("%s: %d extra values for %d extra columns", c.table, len(extra), len(c.extraCols))
	}
	var prev string
	var seq int64
	err := tx.QueryRowContext(ctx, `SELECT id, seq FROM `+c.table+` ORDER BY seq DESC LIMIT 1`).Scan(&prev, &seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", nil, err
	}
	rec.setChain(seq+1, prev)
	raw, err := json.Marshal(rec)
	if err != nil {
		return "", nil, err
	}
	id := Hash(raw)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return "", nil, err
	}
	cols := append([]string{"id", "seq", "prev", "record"}, c.columns...)
	args := []any{id, seq + 1, prev, raw}
	for _, col := range c.columns {
		v, err := sqlValue(fields[col])
		if err != nil {
			return "", nil, fmt.Errorf("%s: record field %s: %w", c.table, col, err)
		}
		args = append(args, v)
	}
	cols = append(cols, c.extraCols...)
	args = append(args, extra...)
	q := `INSERT INTO ` + c.table + ` (` + strings.Join(cols, ", ") + `) VALUES (?` + strings.Repeat(", ?", len(cols)-1) + `)`
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return "", nil, err
	}
	return id, raw, nil
}

// appended reports whether chain c holds record id, which an earlier attempt of the write
// appended: a write is run again when its connection was lost, and the commit may have gone
// through before it was. A write that finds its record there is done.
func appended(ctx context.Context, tx *sql.Tx, c *chain, id string) (bool, error) {
	if id == "" {
		return false, nil
	}
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM `+c.table+` WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// sqlValue is the column value of a record's JSON field: a string or an integer.
func sqlValue(f json.RawMessage) (any, error) {
	if f == nil {
		return nil, errors.New("missing")
	}
	dec := json.NewDecoder(bytes.NewReader(f))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.Int64()
	}
	return nil, fmt.Errorf("not a string or an integer: %s", f)
}

// sameValue reports whether a column's value equals a record's field, and gives the field as
// text for messages.
func sameValue(col any, f json.RawMessage) (bool, string) {
	v, err := sqlValue(f)
	if err != nil {
		return false, "(" + err.Error() + ")"
	}
	switch c := col.(type) {
	case []byte:
		col = string(c)
	}
	return col == v, fmt.Sprint(v)
}

// records reads the records of chain c in chain order, only the incident's when incident is set
// (the chain must have an incident column then); setID gives each record its row's ID. A record
// that does not hash to its ID is an error.
func records[T any](ctx context.Context, s *Store, c *chain, incident string, setID func(*T, string)) ([]T, error) {
	q := `SELECT id, record FROM ` + c.table
	var args []any
	if incident != "" {
		q += ` WHERE incident = ?`
		args = append(args, incident)
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY seq`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var id string
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, err
		}
		v, err := decodeRecord[T](c, id, raw)
		if err != nil {
			return nil, err
		}
		setID(&v, id)
		out = append(out, v)
	}
	return out, rows.Err()
}

// decodeRecord checks a record against its ID and decodes it.
func decodeRecord[T any](c *chain, id string, raw []byte) (T, error) {
	var v T
	if Hash(raw) != id {
		return v, fmt.Errorf("%s %s: the record does not match its ID (the store was altered; run hardtrail store verify)", c.what, short(id))
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("%s %s: corrupt record: %w", c.what, short(id), err)
	}
	return v, nil
}

// verifyChain checks every record of c: its hash, its place in the chain, its index columns
// against the record, and whatever c.check proves.
func (v *verifier) verifyChain(c *chain) error {
	cols := append([]string{"id", "seq", "prev", "record"}, c.columns...)
	cols = append(cols, c.extraCols...)
	rows, err := v.tx.QueryContext(v.ctx, `SELECT `+strings.Join(cols, ", ")+` FROM `+c.table+` ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("%s: %w", c.table, err)
	}
	defer rows.Close()
	var lastID string
	var lastSeq int64
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("%s: %w", c.table, err)
		}
		r := &chainRow{id: text(vals[0]), raw: blobOf(vals[3]), extra: vals[4+len(c.columns):]}
		seq, ok := vals[1].(int64)
		if !ok {
			v.add(Problem{Table: c.table, Msg: fmt.Sprintf("%s %s: seq %v is not an integer", c.what, short(r.id), vals[1])})
		}
		r.seq = seq
		prev := text(vals[2])
		v.rep.Records[c.table]++
		v.saw(c.table, seq, r.id)
		if h := Hash(r.raw); h != r.id {
			v.add(c.problem(r, "record hashes to %s, not its ID: the record was altered", short(h)))
		}
		switch {
		case seq != lastSeq+1:
			v.add(c.problem(r, "chain gap: seq %d follows seq %d (a record was removed, or the order changed)", seq, lastSeq))
		case prev != lastID:
			v.add(c.problem(r, "chain broken: prev is %s, want %s", short(prev), short(lastID)))
		}
		lastID, lastSeq = r.id, seq
		if err := json.Unmarshal(r.raw, &r.fields); err != nil {
			v.add(c.problem(r, "record is not valid JSON"))
			continue
		}
		for i, col := range cols[1 : 4+len(c.columns)] {
			if col == "record" {
				continue
			}
			if ok, want := sameValue(vals[i+1], r.fields[col]); !ok {
				v.add(c.problem(r, "column %s is %v, the record says %s", col, display(vals[i+1]), want))
			}
		}
		if c.check != nil {
			c.check(v, c, r)
		}
	}
	return rows.Err()
}

func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func blobOf(v any) []byte {
	switch v := v.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	return nil
}

func display(v any) string {
	s := text(v)
	if _, ok := v.(int64); ok {
		return s
	}
	return strconv.Quote(s)
}

// sortedChains are the registered chains in the order of their tables' names.
func sortedChains() []*chain {
	out := slices.Clone(chains)
	slices.SortFunc(out, func(a, b *chain) int { return strings.Compare(a.table, b.table) })
	return out
}
