package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/internal/pgtest"
)

// 20 writers, each a store of its own as separate agents and CLIs are, write snapshots of a
// few shared targets, links and results on one PostgreSQL store while its connections are
// killed under them: every write succeeds (retried), every chain stays linear, no snapshot is
// lost or stored twice, and the store verifies.
func TestManyWritersPostgres(t *testing.T) {
	c := pgtest.Shared(t)
	db := c.NewDB(t, "")
	dsn := c.DSN(db, c.User)
	ctx := t.Context()
	first, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	const writers, each, targets = 20, 15, 4
	// The killer ends every other backend of the store's database now and then.
	admin, err := sql.Open("pgx", c.DSN("postgres", c.User))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	stop := make(chan struct{})
	var killed atomic.Int64
	var kwg sync.WaitGroup
	kwg.Add(1)
	go func() {
		defer kwg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(400 * time.Millisecond):
			}
			var n int64
			admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, db).Scan(&n)
			killed.Add(n)
		}
	}()
	var wg sync.WaitGroup
	saved := make(chan string, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, dsn)
			for attempt := 0; err != nil && retryable(err) && attempt < 5; attempt++ {
				s, err = Open(ctx, dsn) // killed while opening
			}
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			for i := range each {
				m := manifest(fmt.Sprintf("t%d", (w+i)%targets), "a", "b")
				sv, err := s.Save(ctx, m, [][]byte{fmt.Appendf(nil, "%d-%d", w, i), []byte("shared")})
				if err != nil {
					t.Errorf("writer %d save %d: %v", w, i, err)
					continue
				}
				saved <- sv.ID
				if i%5 == 0 {
					if _, err := s.Tag(ctx, Link{Incident: "INC-1", Phase: After, Snapshot: sv.ID, By: fmt.Sprintf("w%d", w)}); err != nil {
						t.Errorf("writer %d tag: %v", w, err)
					}
					if err := s.SaveResults(ctx, sv.ID, "sha256:r", time.Now(), fmt.Appendf(nil, `{"w":%d}`, w)); err != nil {
						t.Errorf("writer %d results: %v", w, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	kwg.Wait()
	close(saved)
	ids := map[string]bool{}
	for id := range saved {
		if ids[id] {
			t.Errorf("snapshot %s returned twice", short(id))
		}
		ids[id] = true
	}
	rep, err := first.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 || rep.Snapshots != writers*each || len(ids) != writers*each {
		t.Fatalf("after %d writers: %d snapshots stored, %d saved, problems %v", writers, rep.Snapshots, len(ids), rep.Problems)
	}
	for i := range targets {
		log, err := first.Log(ctx, LogQuery{Target: fmt.Sprintf("t%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		for j, sm := range log {
			if want := int64(len(log) - j); sm.Seq != want || !ids[sm.ID] {
				t.Fatalf("target t%d: seq %d at position %d (saved: %v)", i, sm.Seq, j, ids[sm.ID])
			}
		}
	}
	t.Logf("%d writers stored %d snapshots, %d links, %d results; %d backends killed meanwhile", writers, rep.Snapshots, rep.Links, rep.Results, killed.Load())
}
