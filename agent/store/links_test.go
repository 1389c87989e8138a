package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLinksAndPhaseRefs(t *testing.T) { onEngines(t, testLinksAndPhaseRefs) }

func testLinksAndPhaseRefs(t *testing.T, open opener) {
	s := open(t)
	ctx := t.Context()
	b1 := save(t, s, "web1", map[string]string{"a": "weak"})
	a1 := save(t, s, "web1", map[string]string{"a": "hard"})
	d1 := save(t, s, "db1", map[string]string{"a": "weak"})
	for _, l := range []Link{
		{Incident: "INC-1", Phase: Before, Snapshot: b1.ID, By: "alice"},
		{Incident: "INC-1", Phase: After, Snapshot: a1.ID, By: "bob", Note: "closed port 23"},
		{Incident: "INC-2", Phase: Before, Snapshot: b1.ID, By: "alice"},
		{Incident: "INC-2", Phase: Before, Snapshot: d1.ID, By: "alice"},
	} {
		if _, err := s.Tag(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ ref, want, err string }{
		{ref: "INC-1:before", want: b1.ID},
		{ref: "INC-1:after", want: a1.ID},
		{ref: "INC-2:before:db1", want: d1.ID},
		{ref: "INC-2:before", err: "incident INC-2 has before snapshots of 2 targets (db1, web1): name one as INC-2:before:TARGET"},
		{ref: "INC-2:after", err: "incident INC-2 has no after snapshot yet"},
		{ref: "INC-9:before", err: "unknown incident INC-9"},
		{ref: "9INC:before", err: `incident ID "9INC" is invalid`},
	} {
		got, err := s.Resolve(ctx, tc.ref)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Resolve(%q) err = %v, want %q", tc.ref, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q) = %s, %v", tc.ref, got, err)
		}
	}
	ls, err := s.Links(ctx, "INC-1")
	if err != nil || len(ls) != 2 || ls[1].Note != "closed port 23" || ls[1].Target != "web1" || ls[1].Prev != ls[0].ID {
		t.Fatalf("links %+v %v", ls, err)
	}
	if _, err := s.Tag(ctx, Link{Incident: "bad id", Phase: Before, Snapshot: b1.ID, By: "x"}); err == nil {
		t.Error("bad incident ID accepted")
	}
	if _, err := s.Tag(ctx, Link{Incident: "INC-1", Phase: "during", Snapshot: b1.ID, By: "x"}); err == nil {
		t.Error("bad phase accepted")
	}
	if _, err := s.Tag(ctx, Link{Incident: "INC-1", Phase: Before, Snapshot: strings.Repeat("0", 64), By: "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown snapshot: %v", err)
	}
	if err := s.SaveResults(ctx, a1.ID, "sha256:abc", time.Now(), []byte(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Results(ctx, a1.ID)
	if err != nil || len(rs) != 1 || string(rs[0].Report) != `{"ok":true}` {
		t.Fatalf("results %+v %v", rs, err)
	}
	rep, err := s.Verify(ctx)
	if err != nil || len(rep.Problems) != 0 || rep.Links != 4 || rep.Results != 1 {
		t.Fatalf("verify %+v %v", rep, err)
	}
	tamper(t, s.Path(), `UPDATE links SET record = replace(record, 'alice', 'mallory') WHERE seq = 1`)
	tamper(t, s.Path(), `DELETE FROM links WHERE seq = 3`)
	tamper(t, s.Path(), `UPDATE results SET report_sha256 = 'x'`)
	rep, _ = s.Verify(ctx)
	var text []string
	for _, p := range rep.Problems {
		text = append(text, p.String())
	}
	all := strings.Join(text, "\n")
	for _, w := range []string{"links: link 1 (", "record hashes to", "links: link 4 (", "chain gap: seq 4 follows seq 2", "results: results 1 (", "column report_sha256 is \"x\", the record says"} {
		if !strings.Contains(all, w) {
			t.Errorf("verify problems lack %q:\n%s", w, all)
		}
	}
}
