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

// benchStores opens a fresh SQLite and a fresh PostgreSQL store, so that
// one run measures both (quote PostgreSQL / SQLite as a ratio).
func benchStores(b *testing.B) []struct {
	name string
	db   roomdb.Store
} {
	ctx := context.Background()
	lite, err := roomdb.OpenSQLite(ctx, filepath.Join(b.TempDir(), "room.sqlite"), roomdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { lite.Close() })
	pg, err := roomdb.OpenPostgres(ctx, pgtest.NewDatabase(b), roomdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pg.Close() })
	return []struct {
		name string
		db   roomdb.Store
	}{{"sqlite", lite}, {"postgres", pg}}
}

// BenchmarkInviteClaim: one UseInvite of a single-use invite (the
// conditional update, the delete and the new member, in one
// transaction).
func BenchmarkInviteClaim(b *testing.B) {
	ctx := context.Background()
	for _, s := range benchStores(b) {
		b.Run(s.name, func(b *testing.B) {
			codes := make([]string, b.N)
			ids := make([]feeds.FeedRef, b.N)
			for i := range b.N {
				code, _, err := s.db.CreateInvite(ctx, nil, 1, time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				codes[i] = code
				ids[i] = feeds.FeedRef{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24), 0xbe}
			}
			b.ResetTimer()
			for i := range b.N {
				if err := s.db.UseInvite(ctx, codes[i], ids[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMemberLookup: Role of a key among 1,000 members (what every
// connection asks), half of the lookups for non-members.
func BenchmarkMemberLookup(b *testing.B) {
	ctx := context.Background()
	for _, s := range benchStores(b) {
		for i := range 1000 {
			id := feeds.FeedRef{byte(i), byte(i >> 8), 0xaa}
			if err := s.db.AddMember(ctx, id, roomdb.RoleMember); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(s.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				n, member := i%1000, i%2 == 0
				id := feeds.FeedRef{byte(n), byte(n >> 8), 0xaa}
				if !member {
					id[2] = 0xbb
				}
				if _, ok, err := s.db.Role(ctx, id); err != nil || ok != member {
					b.Fatalf("Role: ok=%v err=%v, want %v", ok, err, member)
				}
				i++
			}
		})
	}
}
