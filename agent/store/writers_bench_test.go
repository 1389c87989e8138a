package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/internal/pgtest"
)

// BenchmarkConcurrentSaves measures snapshot writes per second with 1, 10 and 50 writers, each
// a store of its own (as separate agents are) saving snapshots of its own target (two
// artifacts, one of them new each time), on SQLite (synchronous FULL) and PostgreSQL (fsync
// on, synchronous_commit on). One iteration is every writer saving perWriter snapshots.
func BenchmarkConcurrentSaves(b *testing.B) {
	const perWriter = 20
	for _, eng := range []Engine{SQLite, Postgres} {
		for _, writers := range []int{1, 10, 50} {
			b.Run(fmt.Sprintf("%s/writers=%d", eng, writers), func(b *testing.B) {
				loc := filepath.Join(b.TempDir(), "h.db")
				if eng == Postgres {
					c := pgtest.Shared(b)
					c.Exec(b, "postgres", `ALTER SYSTEM SET fsync = on`)
					c.Exec(b, "postgres", `SELECT pg_reload_conf()`)
					b.Cleanup(func() {
						c.Exec(b, "postgres", `ALTER SYSTEM RESET fsync`)
						c.Exec(b, "postgres", `SELECT pg_reload_conf()`)
					})
					loc = c.DSN(c.NewDB(b, ""), c.User)
				}
				ctx := context.Background()
				stores := make([]*Store, writers)
				for i := range stores {
					s, err := Open(ctx, loc)
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					stores[i] = s
				}
				var total time.Duration
				for n := 0; b.Loop(); n++ {
					start := time.Now()
					var wg sync.WaitGroup
					for w, s := range stores {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for i := range perWriter {
								m := manifest(fmt.Sprintf("w%d", w), "a", "b")
								if _, err := s.Save(ctx, m, [][]byte{fmt.Appendf(nil, "%d-%d-%d", n, w, i), []byte("same")}); err != nil {
									b.Error(err)
									return
								}
							}
						}()
					}
					wg.Wait()
					total += time.Since(start)
				}
				b.ReportMetric(float64(b.N*writers*perWriter)/total.Seconds(), "snapshots/s")
			})
		}
	}
}
