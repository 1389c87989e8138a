package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// CopyReport says what Copy wrote, per table.
type CopyReport struct {
	Copied  map[string]int `json:"copied"`  // rows written
	Present map[string]int `json:"present"` // rows the destination already held
}

// ErrDiverged is returned by Copy when the destination holds records the source does not.
var ErrDiverged = errors.New("the destination holds records the source does not")

// Copy copies every record of src into dst, keeping every ID, seq and byte, so that dst ends
// equal to src and verifies as src does. dst must be empty or hold only records of src (an
// earlier copy): a copy run again writes only what is new. Every table that verification
// covers is copied (see registerTable and registerChain); src is read in one consistent view and
// dst written in one transaction, so an interrupted copy writes nothing.
func Copy(ctx context.Context, src, dst *Store) (*CopyReport, error) {
	rtx, err := src.r.BeginTx(ctx, src.readTxOptions())
	if err != nil {
		return nil, fmt.Errorf("copy from %s: %w", src.path, src.wrapBusy(err))
	}
	defer rtx.Rollback()
	rep := &CopyReport{Copied: map[string]int{}, Present: map[string]int{}}
	err = dst.writeTx(ctx, func(wtx *sql.Tx) error {
		clear(rep.Copied)
		clear(rep.Present)
		for _, table := range copyOrder() {
			if err := copyTable(ctx, src, dst, rtx, wtx, table, rep); err != nil {
				return fmt.Errorf("table %s: %w", table, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("copy %s to %s: %w", src.path, dst.path, err)
	}
	return rep, nil
}

// copyOrder is the order tables are copied in: blobs, then snapshots (which records refer
// to), then the rest by name.
func copyOrder() []string {
	rest := slices.Sorted(maps.Keys(tables))
	rest = slices.DeleteFunc(rest, func(t string) bool { return t == "blobs" || t == "snapshots" })
	return append([]string{"blobs", "snapshots"}, rest...)
}

func copyTable(ctx context.Context, src, dst *Store, rtx, wtx *sql.Tx, table string, rep *CopyReport) error {
	pk, err := dst.primaryKey(ctx, wtx, table)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	rows, err := wtx.QueryContext(ctx, `SELECT `+pk+` FROM `+table)
	if err != nil {
		return err
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return err
		}
		have[k] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	cols := slices.Sorted(maps.Keys(tables[table]))
	ki := slices.Index(cols, pk)
	if ki < 0 {
		return fmt.Errorf("primary key %s is not a covered column", pk)
	}
	rows, err = rtx.QueryContext(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM `+table+` ORDER BY `+pk)
	if err != nil {
		return err
	}
	defer rows.Close()
	insert := `INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `) VALUES (?` + strings.Repeat(", ?", len(cols)-1) + `)`
	seen := 0
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if have[text(vals[ki])] {
			seen++
			rep.Present[table]++
			continue
		}
		if _, err := wtx.ExecContext(ctx, insert, vals...); err != nil {
			return fmt.Errorf("%s %s: %w", pk, short(text(vals[ki])), err)
		}
		rep.Copied[table]++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if seen != len(have) {
		return fmt.Errorf("%w: %d of its %d rows are not in the source", ErrDiverged, len(have)-seen, len(have))
	}
	return nil
}

// primaryKey is the single primary key column of a table of the live schema.
func (s *Store) primaryKey(ctx context.Context, tx *sql.Tx, table string) (string, error) {
	var q string
	if s.engine == Postgres {
		q = `SELECT k.column_name FROM information_schema.table_constraints c
			JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name AND k.table_name = c.table_name
			WHERE c.table_schema = current_schema() AND c.table_name = ? AND c.constraint_type = 'PRIMARY KEY'`
	} else {
		q = `SELECT name FROM pragma_table_info(?) WHERE pk > 0`
	}
	rows, err := tx.QueryContext(ctx, q, table)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return "", err
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	if len(keys) != 1 {
		return "", fmt.Errorf("want one primary key column, the schema has %d", len(keys))
	}
	return keys[0], nil
}
