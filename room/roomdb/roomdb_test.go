package roomdb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

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

func TestVerifyAlias(t *testing.T) {
	room := key(t, 9).ID
	alice, bob := key(t, 1), key(t, 2)
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
}

// TestSQLiteFile covers what only the SQLite store has: its file is
// owner-only, and both migration lists have the same length.
func TestSQLiteFile(t *testing.T) {
	ctx := context.Background()
	if len(migrations) != LatestSchema || len(pgMigrations) != LatestSchema {
		t.Fatalf("migrations: sqlite %d, postgres %d, LatestSchema %d", len(migrations), len(pgMigrations), LatestSchema)
	}
	path := filepath.Join(t.TempDir(), "room.sqlite")
	db, err := Open(ctx, path, ModeRestricted)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "no", "such", "dir", "room.sqlite"), ModeOpen); err == nil {
		t.Fatal("opened a database in a missing directory")
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
