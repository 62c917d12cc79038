package roomdb_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/room/roomdb"
	"github.com/cask-ssb/cask/room/roomdb/pgtest"
)

// benchStores opens a fresh SQLite and a fresh PostgreSQL store.
func benchStores(b *testing.B) (lite, pg roomdb.Store) {
	ctx := context.Background()
	lite, err := roomdb.OpenSQLite(ctx, filepath.Join(b.TempDir(), "room.sqlite"), roomdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { lite.Close() })
	pg, err = roomdb.OpenPostgres(ctx, pgtest.NewDatabase(b), roomdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pg.Close() })
	return lite, pg
}

// interleave runs op on SQLite then on PostgreSQL in every iteration,
// timing each, so that both see the same machine load; it reports
// sqlite-ns/op, postgres-ns/op and their ratio postgres/sqlite.
func interleave(b *testing.B, lite, pg roomdb.Store, op func(db roomdb.Store, i int) error) {
	var tl, tp time.Duration
	i := 0
	for b.Loop() {
		t0 := time.Now()
		if err := op(lite, i); err != nil {
			b.Fatalf("sqlite: %v", err)
		}
		t1 := time.Now()
		if err := op(pg, i); err != nil {
			b.Fatalf("postgres: %v", err)
		}
		tl += t1.Sub(t0)
		tp += time.Since(t1)
		i++
	}
	b.ReportMetric(float64(tl.Nanoseconds())/float64(i), "sqlite-ns/op")
	b.ReportMetric(float64(tp.Nanoseconds())/float64(i), "postgres-ns/op")
	b.ReportMetric(float64(tp)/float64(tl), "postgres/sqlite")
}

// BenchmarkInviteClaim: one UseInvite of a single-use invite (the
// conditional update, the delete and the new member, in one
// transaction), on SQLite and on PostgreSQL in turn. The invites are
// made as the loop goes (outside the timed part).
func BenchmarkInviteClaim(b *testing.B) {
	ctx := context.Background()
	lite, pg := benchStores(b)
	codes := map[roomdb.Store][]string{}
	const batch = 256
	refill := func(db roomdb.Store) error {
		for range batch {
			code, _, err := db.CreateInvite(ctx, nil, 1, time.Hour)
			if err != nil {
				return err
			}
			codes[db] = append(codes[db], code)
		}
		return nil
	}
	var tl, tp time.Duration
	i := 0
	for b.Loop() {
		if len(codes[lite]) == 0 {
			b.StopTimer()
			if err := refill(lite); err != nil {
				b.Fatal(err)
			}
			if err := refill(pg); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		id := feeds.FeedRef{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24), 0xbe}
		t0 := time.Now()
		if err := lite.UseInvite(ctx, codes[lite][0], id); err != nil {
			b.Fatalf("sqlite: %v", err)
		}
		t1 := time.Now()
		if err := pg.UseInvite(ctx, codes[pg][0], id); err != nil {
			b.Fatalf("postgres: %v", err)
		}
		tl += t1.Sub(t0)
		tp += time.Since(t1)
		codes[lite], codes[pg] = codes[lite][1:], codes[pg][1:]
		i++
	}
	b.ReportMetric(float64(tl.Nanoseconds())/float64(i), "sqlite-ns/op")
	b.ReportMetric(float64(tp.Nanoseconds())/float64(i), "postgres-ns/op")
	b.ReportMetric(float64(tp)/float64(tl), "postgres/sqlite")
}

// BenchmarkMemberLookup: Role of a key among 1,000 members (what every
// connection asks), half of the lookups for non-members, on SQLite and
// on PostgreSQL in turn.
func BenchmarkMemberLookup(b *testing.B) {
	ctx := context.Background()
	lite, pg := benchStores(b)
	for _, db := range []roomdb.Store{lite, pg} {
		for i := range 1000 {
			if err := db.AddMember(ctx, feeds.FeedRef{byte(i), byte(i >> 8), 0xaa}, roomdb.RoleMember); err != nil {
				b.Fatal(err)
			}
		}
	}
	interleave(b, lite, pg, func(db roomdb.Store, i int) error {
		n, member := i%1000, i%2 == 0
		id := feeds.FeedRef{byte(n), byte(n >> 8), 0xaa}
		if !member {
			id[2] = 0xbb
		}
		_, ok, err := db.Role(ctx, id)
		if err == nil && ok != member {
			b.Fatalf("Role(%d): member %v, want %v", n, ok, member)
		}
		return err
	})
}
