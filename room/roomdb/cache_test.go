package roomdb

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
)

// TestAccessCache: after every kind of write, made through this handle
// or another one on the same file (mesh nodes share it), the cached mode,
// roles and denied keys equal what SQLite holds.
func TestAccessCache(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "room.sqlite")
	db, err := Open(ctx, path, ModeCommunity)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	other, err := Open(ctx, path, ModeCommunity)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	a, b, c := key(t, 1).ID, key(t, 2).ID, key(t, 3).ID
	ids := []feeds.FeedRef{a, b, c}
	var code string
	steps := []struct {
		name string
		do   func() error
	}{
		{"start", func() error { return nil }},
		{"add member", func() error { return db.AddMember(ctx, a, RoleMember) }},
		{"set role", func() error { return db.SetRole(ctx, a, RoleModerator) }},
		{"add admin", func() error { return db.AddMember(ctx, b, RoleAdmin) }},
		{"deny", func() error { return db.Deny(ctx, c, "spam") }},
		{"set mode", func() error { return db.SetMode(ctx, ModeRestricted) }},
		{"create invite", func() (err error) { code, _, err = db.CreateInvite(ctx, &b, 1, time.Hour); return err }},
		{"undeny", func() error { return db.Undeny(ctx, c) }},
		{"use invite", func() error { return db.UseInvite(ctx, code, c) }},
		{"remove member", func() error { return db.RemoveMember(ctx, a) }},
		{"set mode again", func() error { return db.SetMode(ctx, ModeOpen) }},
		{"deny member", func() error { return db.Deny(ctx, b, "") }},
		{"other: add member", func() error { return other.AddMember(ctx, a, RoleMember) }},
		{"other: deny", func() error { return other.Deny(ctx, a, "") }},
		{"other: undeny", func() error { return other.Undeny(ctx, b) }},
		{"other: set mode", func() error { return other.SetMode(ctx, ModeCommunity) }},
		{"other: remove member", func() error { return other.RemoveMember(ctx, b) }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		// Read through the cache twice: the second read is a hit.
		for range 2 {
			wantMode, err := db.readMode(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m, err := db.Mode(ctx); err != nil || m != wantMode {
				t.Errorf("after %s: mode %q, %v; stored %q", st.name, m, err, wantMode)
			}
			for i, id := range ids {
				wr, wok, err := db.readRole(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if r, ok, err := db.Role(ctx, id); err != nil || r != wr || ok != wok {
					t.Errorf("after %s: key %d role %q %v, %v; stored %q %v", st.name, i, r, ok, err, wr, wok)
				}
				wd, err := db.readDenied(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if d, err := db.IsDenied(ctx, id); err != nil || d != wd {
					t.Errorf("after %s: key %d denied %v, %v; stored %v", st.name, i, d, err, wd)
				}
			}
		}
	}
}

// BenchmarkAccess compares a session check (mode, role, denied) answered
// by the cache with the same three SQLite queries.
func BenchmarkAccess(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, b.TempDir()+"/room.sqlite", ModeCommunity)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	seed := make([]byte, 32)
	var id feeds.FeedRef
	for i := range 500 {
		seed[0], seed[1] = byte(i), byte(i>>8)
		kp, err := feeds.KeyPairFromSeed(seed)
		if err != nil {
			b.Fatal(err)
		}
		if err := db.AddMember(ctx, kp.ID, RoleMember); err != nil {
			b.Fatal(err)
		}
		id = kp.ID
	}
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.Mode(ctx); err != nil {
				b.Fatal(err)
			}
			if _, ok, err := db.Role(ctx, id); err != nil || !ok {
				b.Fatal(ok, err)
			}
			if _, err := db.IsDenied(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sqlite", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.readMode(ctx); err != nil {
				b.Fatal(err)
			}
			if _, ok, err := db.readRole(ctx, id); err != nil || !ok {
				b.Fatal(ok, err)
			}
			if _, err := db.readDenied(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
}
