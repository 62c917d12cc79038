package roomdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
)

func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "room.sqlite"), ModeCommunity)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func key(t *testing.T, b byte) feeds.KeyPair {
	t.Helper()
	seed := make([]byte, 32)
	seed[0] = b
	kp, err := feeds.KeyPairFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func TestMigrationsAndReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "room.sqlite")
	db, err := Open(ctx, path, ModeRestricted)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if v, err := db.SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Fatalf("schema version %d, %v; want %d", v, err, len(migrations))
	}
	a := key(t, 1).ID
	if err := db.AddMember(ctx, a, RoleAdmin); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// The stored mode wins over a different default at the next start.
	db, err = Open(ctx, path, ModeOpen)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if m, _ := db.Mode(ctx); m != ModeRestricted {
		t.Fatalf("mode after reopen = %s, want restricted", m)
	}
	if r, ok, _ := db.Role(ctx, a); !ok || r != RoleAdmin {
		t.Fatalf("role after reopen = %s %v", r, ok)
	}
}

func TestMembers(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	a, b := key(t, 1).ID, key(t, 2).ID
	steps := []struct {
		name string
		do   func() error
		want error
	}{
		{"add a", func() error { return db.AddMember(ctx, a, RoleMember) }, nil},
		{"bad role", func() error { return db.AddMember(ctx, b, Role("king")) }, errAny},
		{"role of b (not member)", func() error { return db.SetRole(ctx, b, RoleAdmin) }, ErrNotFound},
		{"promote a", func() error { return db.SetRole(ctx, a, RoleModerator) }, nil},
		{"remove b", func() error { return db.RemoveMember(ctx, b) }, ErrNotFound},
	}
	for _, s := range steps {
		err := s.do()
		switch {
		case s.want == nil && err != nil, s.want != nil && err == nil:
			t.Fatalf("%s: err %v, want %v", s.name, err, s.want)
		case s.want != nil && s.want != errAny && !errors.Is(err, s.want):
			t.Fatalf("%s: err %v, want %v", s.name, err, s.want)
		}
	}
	ms, err := db.Members(ctx)
	if err != nil || len(ms) != 1 || ms[0].ID != a || ms[0].Role != RoleModerator {
		t.Fatalf("members = %+v, %v", ms, err)
	}
}

var errAny = errors.New("any error")

func TestInvites(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	now := time.Unix(1_800_000_000, 0)
	db.now = func() time.Time { return now }
	admin := key(t, 1).ID
	if err := db.AddMember(ctx, admin, RoleAdmin); err != nil {
		t.Fatal(err)
	}
	code, inv, err := db.CreateInvite(ctx, &admin, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseInviteCode(code); err != nil {
		t.Fatalf("created code does not parse: %v", err)
	}
	if inv.CreatedBy != admin.String() {
		t.Fatalf("createdBy %q", inv.CreatedBy)
	}
	// Only the hash is stored.
	var n int
	if err := db.sql.QueryRow(`SELECT count(*) FROM invites WHERE hash = ?`, []byte(code)).Scan(&n); err != nil || n != 0 {
		t.Fatalf("code stored in clear? n=%d err=%v", n, err)
	}
	u1, u2 := key(t, 2).ID, key(t, 3).ID
	if err := db.UseInvite(ctx, code, u1); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := db.UseInvite(ctx, code, u2); !errors.Is(err, ErrInviteInvalid) {
		t.Fatalf("second use of a single-use invite: %v", err)
	}
	if _, ok, _ := db.Role(ctx, u1); !ok {
		t.Fatal("invitee is not a member")
	}
	// Expiry.
	code2, _, err := db.CreateInvite(ctx, nil, 5, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if err := db.UseInvite(ctx, code2, u2); !errors.Is(err, ErrInviteInvalid) {
		t.Fatalf("expired invite: %v", err)
	}
	// Revoke.
	code3, inv3, _ := db.CreateInvite(ctx, nil, 2, time.Hour)
	if list, _ := db.Invites(ctx); len(list) != 1 || list[0].ID != inv3.ID {
		t.Fatalf("invites = %+v", list)
	}
	if err := db.RevokeInvite(ctx, inv3.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.UseInvite(ctx, code3, u2); !errors.Is(err, ErrInviteInvalid) {
		t.Fatalf("revoked invite: %v", err)
	}
	if err := db.UseInvite(ctx, "garbage", u2); !errors.Is(err, ErrInviteInvalid) {
		t.Fatalf("garbage code: %v", err)
	}
}

func TestAliases(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	room := key(t, 9).ID
	alice, bob := key(t, 1), key(t, 2)
	for _, m := range []feeds.FeedRef{alice.ID, bob.ID} {
		if err := db.AddMember(ctx, m, RoleMember); err != nil {
			t.Fatal(err)
		}
	}
	good := SignAlias(alice, room, "alice")
	cases := []struct {
		name, alias, sig string
		user             feeds.FeedRef
		ok               bool
	}{
		{"good", "alice", good, alice.ID, true},
		{"url-safe base64", "alice", strings.NewReplacer("+", "-", "/", "_").Replace(good), alice.ID, true},
		{"foreign signature (bob claims alice's)", "alice", good, bob.ID, false},
		{"other alias", "alicia", good, alice.ID, false},
		{"other room", "alice", SignAlias(alice, bob.ID, "alice"), alice.ID, false},
		{"no suffix", "alice", strings.TrimSuffix(good, ".sig.ed25519"), alice.ID, false},
		{"bad base64", "alice", "!!!.sig.ed25519", alice.ID, false},
		{"bad name", "Alice", SignAlias(alice, room, "Alice"), alice.ID, false},
	}
	for _, c := range cases {
		err := VerifyAlias(room, c.user, c.alias, c.sig)
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok=%v", c.name, err, c.ok)
		}
	}
	if err := db.RegisterAlias(ctx, "alice", alice.ID, good); err != nil {
		t.Fatal(err)
	}
	if err := db.RegisterAlias(ctx, "alice", bob.ID, "x"); !errors.Is(err, ErrAliasTaken) {
		t.Fatalf("taken alias: %v", err)
	}
	if err := db.RevokeAlias(ctx, "alice", &bob.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke by non-owner: %v", err)
	}
	if as, _ := db.Aliases(ctx, &alice.ID); len(as) != 1 || as[0].Name != "alice" {
		t.Fatalf("aliases = %+v", as)
	}
	// Removing the member removes its aliases (foreign key cascade).
	if err := db.RemoveMember(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	if as, _ := db.Aliases(ctx, nil); len(as) != 0 {
		t.Fatalf("aliases after member removal = %+v", as)
	}
}

func TestDeniedAndMode(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	a := key(t, 1).ID
	if d, _ := db.IsDenied(ctx, a); d {
		t.Fatal("denied before deny")
	}
	if err := db.Deny(ctx, a, "spam"); err != nil {
		t.Fatal(err)
	}
	if d, _ := db.IsDenied(ctx, a); !d {
		t.Fatal("not denied after deny")
	}
	if l, _ := db.DeniedKeys(ctx); len(l) != 1 || l[0].Comment != "spam" {
		t.Fatalf("denied = %+v", l)
	}
	if err := db.Undeny(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := db.SetMode(ctx, "bogus"); err == nil {
		t.Fatal("bogus mode accepted")
	}
	if err := db.SetMode(ctx, ModeOpen); err != nil {
		t.Fatal(err)
	}
	if m, _ := db.Mode(ctx); m != ModeOpen {
		t.Fatalf("mode %s", m)
	}
}

func TestValidAlias(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"alice", true}, {"a1", true}, {strings.Repeat("a", 63), true},
		{"", false}, {strings.Repeat("a", 64), false}, {"al-ice", false}, {"Alice", false}, {"al ice", false}, {"é", false},
	} {
		if err := ValidAlias(c.in); (err == nil) != c.ok {
			t.Errorf("ValidAlias(%q) = %v, want ok=%v", c.in, err, c.ok)
		}
	}
}

func FuzzValidAlias(f *testing.F) {
	for _, s := range []string{"alice", "", "Al-ice", strings.Repeat("z", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidAlias(s) == nil {
			if len(s) == 0 || len(s) > MaxAliasLen || strings.ToLower(s) != s || strings.ContainsAny(s, "-. ") {
				t.Fatalf("accepted %q", s)
			}
		}
	})
}

func FuzzVerifyAlias(f *testing.F) {
	room, user := feeds.FeedRef{1}, feeds.FeedRef{2}
	f.Add("alice", "AAAA.sig.ed25519")
	f.Fuzz(func(t *testing.T, alias, sig string) {
		if VerifyAlias(room, user, alias, sig) == nil {
			t.Fatalf("forged signature accepted: %q %q", alias, sig)
		}
	})
}

func FuzzParseInviteCode(f *testing.F) {
	f.Add("0123456789012345678901234567890123456789012")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseInviteCode(s)
		if err == nil && (len(b) != 32 || len(s) != InviteCodeLen) {
			t.Fatalf("ParseInviteCode(%q) = %d bytes", s, len(b))
		}
	})
}
