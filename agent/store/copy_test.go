package store

import (
	"errors"
	"path/filepath"
	"testing"
)

// A store copied from SQLite to PostgreSQL and back keeps every record: the copies verify,
// have the source's head, and a copy run again writes nothing.
func TestCopyBetweenEngines(t *testing.T) {
	ctx := t.Context()
	path, f := copyFixture(t)
	src, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	pg := openPGTest(t)
	back, err := Open(ctx, filepath.Join(t.TempDir(), "back.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	for _, step := range []struct {
		name     string
		from, to *Store
	}{{"sqlite to postgres", src, pg}, {"postgres to sqlite", pg, back}} {
		rep, err := Copy(ctx, step.from, step.to)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if rep.Copied["snapshots"] != 5 || rep.Copied["heads"] != 2 || rep.Copied["links"] != 4 || len(rep.Present) != 0 {
			t.Errorf("%s: copied %v, present %v", step.name, rep.Copied, rep.Present)
		}
		v, err := step.to.VerifyWith(ctx, VerifyOptions{Head: f.early})
		if err != nil || len(v.Problems) > 0 {
			t.Fatalf("%s: the copy does not verify: %v %v", step.name, err, v.Problems)
		}
		if v.Head.Digest != f.final {
			t.Errorf("%s: the copy's head is %s, want %s", step.name, v.Head.Digest, f.final)
		}
		again, err := Copy(ctx, step.from, step.to)
		if err != nil {
			t.Fatalf("%s again: %v", step.name, err)
		}
		if len(again.Copied) != 0 || again.Present["snapshots"] != 5 {
			t.Errorf("%s again: copied %v, present %v", step.name, again.Copied, again.Present)
		}
	}
	// New records in the source are copied; a destination with records of its own is refused
	// and left as it was.
	save(t, src, "mail1", map[string]string{"a": "b"})
	if rep, err := Copy(ctx, src, pg); err != nil || rep.Copied["snapshots"] != 1 || rep.Copied["blobs"] != 1 {
		t.Fatalf("incremental copy: %+v %v", rep, err)
	}
	save(t, back, "other", map[string]string{"x": "y"})
	if _, err := Copy(ctx, src, back); !errors.Is(err, ErrDiverged) {
		t.Fatalf("copy onto a diverged store: %v", err)
	}
	if n := back.countRows(t, "snapshots"); n != 6 {
		t.Errorf("the refused copy changed the destination: %d snapshots", n)
	}
}
