package store

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/internal/pgtest"
)

// v4Store writes a store of schema 4 (held spans updated in place, results replaced): two
// snapshots of web1, a held span of the newest, and results on both, one of them altered
// before the upgrade when alter is set.
func v4Store(t *testing.T, path string, alter bool) (older, newest string) {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
	var ids []string
	for i, c := range []string{"permitrootlogin yes\n", "permitrootlogin no\n"} {
		m := manifest("web1", "sshd/effective")
		m.Started, m.TakenAt = t0, t0.Add(time.Duration(i)*time.Hour)
		sv, err := s.Save(t.Context(), m, [][]byte{[]byte(c)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sv.ID)
	}
	s.Close()
	db := rawDB(t, path)
	// Indexes that later steps added to the tables kept go too.
	early := strings.Join(migrations[:4], "\n")
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	var later []string
	for rows.Next() {
		var name string
		rows.Scan(&name)
		if !strings.Contains(early, "INDEX "+name+" ") {
			later = append(later, name)
		}
	}
	rows.Close()
	for _, name := range later {
		if _, err := db.Exec(`DROP INDEX ` + name); err != nil {
			t.Fatal(err)
		}
	}
	held := migrations[3][strings.Index(migrations[3], "CREATE TABLE held"):]
	for _, q := range []string{`DROP TABLE held`, `DROP TABLE results`, `DROP TABLE heads`, `DROP TABLE rule_sets`, `DROP TABLE incident_records`, `DROP TABLE leases`, migrations[2], held, `PRAGMA user_version = 4`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := db.Exec(`INSERT INTO held (snapshot, target, last_at, count, max_gap_ms) VALUES (?, 'web1', ?, 12, 300000)`,
		ids[1], t0.Add(2*time.Hour).Format(time.RFC3339Nano)); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		report := []byte(`{"rule":"sshd-no-root","pass":` + map[bool]string{false: "false", true: "true"}[i == 1] + `}`)
		sum := Hash(report)
		if alter && i == 0 {
			report = []byte(`{"rule":"sshd-no-root","pass":true}`)
		}
		if _, err := db.Exec(`INSERT INTO results (snapshot, rules_digest, evaluated_at, sha256, report) VALUES (?, 'sha256:r', ?, ?, ?)`,
			id, t0.Add(time.Duration(i)*time.Hour+time.Minute).Format(time.RFC3339Nano), sum, compress(report)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	return ids[0], ids[1]
}

func TestUpgradeFromSchema4(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "v4.db")
	older, newest := v4Store(t, path, false)
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	var v int
	s.r.QueryRow(`PRAGMA user_version`).Scan(&v)
	if v != len(migrations) {
		t.Errorf("schema %d, want %d", v, len(migrations))
	}
	if rep, err := s.Verify(ctx); err != nil || len(rep.Problems) > 0 || rep.Held != 1 || rep.Results != 2 {
		t.Fatalf("verify after the upgrade: %+v %v", rep, err)
	}
	h, err := s.Held(ctx, newest)
	if err != nil || h.Count != 12 || h.MaxGap != 5*time.Minute || !h.Until.Equal(time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("held span after the upgrade: %+v %v", h, err)
	}
	for id, want := range map[string]string{older: "false", newest: "true"} {
		rs, err := s.Results(ctx, id)
		if err != nil || len(rs) != 1 || !strings.Contains(string(rs[0].Report), `"pass":`+want) {
			t.Errorf("results of %s: %+v %v", short(id), rs, err)
		}
	}
	// The span goes on from the converted record.
	m := manifest("web1", "sshd/effective")
	m.TakenAt = time.Date(2026, 2, 1, 10, 4, 0, 0, time.UTC)
	if sv, err := s.SaveOrHold(ctx, m, [][]byte{[]byte("permitrootlogin no\n")}, HoldPolicy{MaxAge: 24 * time.Hour, MaxGap: time.Hour}); err != nil || !sv.Held {
		t.Fatalf("hold after the upgrade: %+v %v", sv, err)
	}
	if h, _ := s.Held(ctx, newest); h.Count != 13 || h.MaxGap != 5*time.Minute {
		t.Errorf("held span %+v", h)
	}
	if rep, err := s.Verify(ctx); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}

	// The upgrade is deterministic: the same store upgrades to the same records.
	ids := func(path string) string {
		db := rawDB(t, path)
		var out []string
		for _, table := range []string{"held", "results"} {
			for _, id := range queryAll(t, db, `SELECT id FROM `+table+` ORDER BY seq`) {
				out = append(out, id.(string))
			}
		}
		return strings.Join(out, " ")
	}
	var got []string
	for _, name := range []string{"a.db", "b.db"} {
		p := filepath.Join(dir, name)
		v4Store(t, p, false)
		s, err := Open(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		got = append(got, ids(p))
	}
	if got[0] != got[1] || got[0] == "" {
		t.Errorf("two upgrades gave %q and %q", got[0], got[1])
	}

	// A report altered before the upgrade still fails verification after it.
	p := filepath.Join(dir, "altered.db")
	older2, _ := v4Store(t, p, true)
	s2, err := Open(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	verifyFails(t, s2, "", "results: target web1: snapshot "+short(older2)+": results 1 (", "column report hashes to")
}

// A PostgreSQL store at an older schema version is brought up to date when it is opened, each
// step in PostgreSQL's types; one at a newer version is refused.
func TestMigratePostgres(t *testing.T) {
	c := pgtest.Shared(t)
	db := c.NewDB(t, "")
	c.Exec(t, db, `CREATE TABLE `+pgVersionTable+` (version BIGINT NOT NULL); INSERT INTO `+pgVersionTable+` VALUES (4)`)
	for _, step := range migrations[:4] {
		c.Exec(t, db, pgDDL(step))
	}
	s, err := Open(t.Context(), c.DSN(db, c.User))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.SchemaVersion(t.Context()); err != nil || v != SchemaSteps() || s.Migrated() != SchemaSteps()-4 {
		t.Fatalf("version %d (%v), %d steps applied; want %d and %d", v, err, s.Migrated(), SchemaSteps(), SchemaSteps()-4)
	}
	save(t, s, "web1", map[string]string{"a": "b"})
	if rep, err := s.Verify(t.Context()); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}
	c.Exec(t, db, `UPDATE `+pgVersionTable+` SET version = 999`)
	if _, err := Open(t.Context(), c.DSN(db, c.User)); err == nil || !strings.Contains(err.Error(), "newer than this hardtrail knows") {
		t.Fatalf("a newer schema: %v", err)
	}
}
