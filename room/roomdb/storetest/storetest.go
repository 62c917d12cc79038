// Package storetest is the conformance suite of roomdb.Store: the same
// tests run against every implementation (SQLite and PostgreSQL), so the
// two behave alike.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/room/roomdb"
)

// Opener opens one more handle on a database; every handle it returns
// sees the same data.
type Opener func(o roomdb.Options) (roomdb.Store, error)

// Backend makes a new, empty database for one test (removed at its end)
// and returns how to open it.
type Backend func(t *testing.T) Opener

// Clock is a settable clock for Options.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now reads the clock.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock on.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Key returns a fixed key pair made from b.
func Key(t testing.TB, b byte) feeds.KeyPair {
	t.Helper()
	seed := make([]byte, 32)
	seed[0] = b
	kp, err := feeds.KeyPairFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// MustOpen opens a handle and closes it when t ends.
func MustOpen(t testing.TB, open Opener, o roomdb.Options) roomdb.Store {
	t.Helper()
	db, err := open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Run runs every conformance test against backend, in parallel: each
// has a database of its own.
func Run(t *testing.T, backend Backend) {
	tests := []struct {
		name string
		f    func(*testing.T, Opener)
	}{
		{"MigrationsAndReopen", testMigrationsAndReopen},
		{"ConcurrentOpen", testConcurrentOpen},
		{"Members", testMembers},
		{"Invites", testInvites},
		{"InviteClaimRace", testInviteClaimRace},
		{"SessionRace", testSessionRace},
		{"Aliases", testAliases},
		{"DeniedAndMode", testDeniedAndMode},
		{"Sessions", testSessions},
		{"LandingAndCheckInvite", testLandingAndCheckInvite},
		{"DumpRestore", func(t *testing.T, open Opener) { testDumpRestore(t, open, backend(t)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t, backend(t))
		})
	}
}

var errAny = errors.New("any error")

func testMigrationsAndReopen(t *testing.T, open Opener) {
	ctx := context.Background()
	db, err := open(roomdb.Options{Mode: roomdb.ModeRestricted})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := db.SchemaVersion(ctx); err != nil || v != roomdb.LatestSchema {
		t.Fatalf("schema version %d, %v; want %d", v, err, roomdb.LatestSchema)
	}
	a := Key(t, 1).ID
	if err := db.AddMember(ctx, a, roomdb.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// The stored mode wins over a different default at the next start,
	// and opening again applies nothing twice.
	db = MustOpen(t, open, roomdb.Options{Mode: roomdb.ModeOpen})
	if v, err := db.SchemaVersion(ctx); err != nil || v != roomdb.LatestSchema {
		t.Fatalf("schema version after reopen %d, %v", v, err)
	}
	if m, _ := db.Mode(ctx); m != roomdb.ModeRestricted {
		t.Fatalf("mode after reopen = %s, want restricted", m)
	}
	if r, ok, _ := db.Role(ctx, a); !ok || r != roomdb.RoleAdmin {
		t.Fatalf("role after reopen = %s %v", r, ok)
	}
	if _, err := open(roomdb.Options{Mode: "bogus"}); err == nil {
		t.Fatal("bogus default mode accepted")
	}
}

// testConcurrentOpen: several room nodes start at once on a new
// database; the migrations are applied exactly once.
func testConcurrentOpen(t *testing.T, open Opener) {
	ctx := context.Background()
	const n = 4
	var wg sync.WaitGroup
	dbs := make([]roomdb.Store, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { dbs[i], errs[i] = open(roomdb.Options{}) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		defer dbs[i].Close()
	}
	for i, db := range dbs {
		if v, err := db.SchemaVersion(ctx); err != nil || v != roomdb.LatestSchema {
			t.Fatalf("handle %d: schema version %d, %v", i, v, err)
		}
	}
	if err := dbs[0].AddMember(ctx, Key(t, 1).ID, roomdb.RoleMember); err != nil {
		t.Fatal(err)
	}
	if c, err := dbs[n-1].CountMembers(ctx); err != nil || c != 1 {
		t.Fatalf("another handle counts %d members, %v", c, err)
	}
}

func testMembers(t *testing.T, open Opener) {
	ctx := context.Background()
	db := MustOpen(t, open, roomdb.Options{})
	a, b := Key(t, 1).ID, Key(t, 2).ID
	steps := []struct {
		name string
		do   func() error
		want error
	}{
		{"add a", func() error { return db.AddMember(ctx, a, roomdb.RoleMember) }, nil},
		{"bad role", func() error { return db.AddMember(ctx, b, roomdb.Role("king")) }, errAny},
		{"role of b (not member)", func() error { return db.SetRole(ctx, b, roomdb.RoleAdmin) }, roomdb.ErrNotFound},
		{"bad role change", func() error { return db.SetRole(ctx, a, roomdb.Role("king")) }, errAny},
		{"promote a", func() error { return db.SetRole(ctx, a, roomdb.RoleModerator) }, nil},
		{"remove b", func() error { return db.RemoveMember(ctx, b) }, roomdb.ErrNotFound},
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
	if err != nil || len(ms) != 1 || ms[0].ID != a || ms[0].Role != roomdb.RoleModerator {
		t.Fatalf("members = %+v, %v", ms, err)
	}
	if n, err := db.CountMembers(ctx); err != nil || n != 1 {
		t.Fatalf("CountMembers = %d, %v", n, err)
	}
	if _, ok, err := db.Role(ctx, b); ok || err != nil {
		t.Fatalf("Role of a non-member: ok=%v err=%v", ok, err)
	}
	// AddMember of a member changes its role.
	if err := db.AddMember(ctx, a, roomdb.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if r, ok, _ := db.Role(ctx, a); !ok || r != roomdb.RoleAdmin {
		t.Fatalf("role after re-add = %s %v", r, ok)
	}
	if err := db.RemoveMember(ctx, a); err != nil {
		t.Fatal(err)
	}
	if ms, _ := db.Members(ctx); len(ms) != 0 {
		t.Fatalf("members after removal = %+v", ms)
	}
}

func testInvites(t *testing.T, open Opener) {
	ctx := context.Background()
	clk := NewClock(time.Unix(1_800_000_000, 0))
	db := MustOpen(t, open, roomdb.Options{Now: clk.Now})
	admin := Key(t, 1).ID
	if err := db.AddMember(ctx, admin, roomdb.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		uses int
		ttl  time.Duration
	}{{0, time.Hour}, {1, 0}, {-1, time.Hour}} {
		if _, _, err := db.CreateInvite(ctx, nil, bad.uses, bad.ttl); err == nil {
			t.Fatalf("invite with uses %d ttl %s accepted", bad.uses, bad.ttl)
		}
	}
	code, inv, err := db.CreateInvite(ctx, &admin, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := roomdb.ParseInviteCode(code)
	if err != nil {
		t.Fatalf("created code does not parse: %v", err)
	}
	if inv.CreatedBy != admin.String() || inv.Uses != 1 || !inv.Expires.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("invite = %+v", inv)
	}
	// Only the hash is stored.
	snap, err := db.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(raw)
	if len(snap.Invites) != 1 || !bytes.Equal(snap.Invites[0].Hash, want[:]) {
		t.Fatalf("stored invite = %+v, want only the sha256 of the code", snap.Invites)
	}
	u1, u2 := Key(t, 2).ID, Key(t, 3).ID
	if err := db.UseInvite(ctx, code, u1); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := db.UseInvite(ctx, code, u2); !errors.Is(err, roomdb.ErrInviteInvalid) {
		t.Fatalf("second use of a single-use invite: %v", err)
	}
	if r, ok, _ := db.Role(ctx, u1); !ok || r != roomdb.RoleMember {
		t.Fatalf("invitee: role %s member %v", r, ok)
	}
	// A member who uses an invite keeps their role.
	multi, _, err := db.CreateInvite(ctx, nil, 3, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.UseInvite(ctx, multi, admin); err != nil {
		t.Fatal(err)
	}
	if r, _, _ := db.Role(ctx, admin); r != roomdb.RoleAdmin {
		t.Fatalf("admin's role after using an invite: %s", r)
	}
	if list, _ := db.Invites(ctx); len(list) != 1 || list[0].Uses != 2 || list[0].CreatedBy != "" {
		t.Fatalf("invites after one of three uses = %+v", list)
	}
	// Expiry.
	code2, _, err := db.CreateInvite(ctx, nil, 5, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Minute)
	if err := db.UseInvite(ctx, code2, u2); !errors.Is(err, roomdb.ErrInviteInvalid) {
		t.Fatalf("expired invite: %v", err)
	}
	// Revoke.
	if err := db.RevokeInvite(ctx, 1<<40); !errors.Is(err, roomdb.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	code3, inv3, _ := db.CreateInvite(ctx, nil, 2, time.Hour)
	list, _ := db.Invites(ctx)
	if len(list) != 2 || list[1].ID != inv3.ID {
		t.Fatalf("invites = %+v", list)
	}
	if err := db.RevokeInvite(ctx, inv3.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.UseInvite(ctx, code3, u2); !errors.Is(err, roomdb.ErrInviteInvalid) {
		t.Fatalf("revoked invite: %v", err)
	}
	if err := db.UseInvite(ctx, "garbage", u2); !errors.Is(err, roomdb.ErrInviteInvalid) {
		t.Fatalf("garbage code: %v", err)
	}
	if _, ok, _ := db.Role(ctx, u2); ok {
		t.Fatal("failed invite uses made a member")
	}
	// Removing the creator keeps the invite (created_by set to null).
	code4, _, _ := db.CreateInvite(ctx, &u1, 1, time.Hour)
	if err := db.RemoveMember(ctx, u1); err != nil {
		t.Fatal(err)
	}
	if err := db.UseInvite(ctx, code4, u2); err != nil {
		t.Fatalf("invite of a removed member: %v", err)
	}
}

// testInviteClaimRace: two handles on one database (two room nodes)
// claim one single-use invite from 20 goroutines: exactly one wins, the
// others get ErrInviteInvalid, and exactly one member is made.
func testInviteClaimRace(t *testing.T, open Opener) {
	ctx := context.Background()
	a := MustOpen(t, open, roomdb.Options{})
	b := MustOpen(t, open, roomdb.Options{})
	for round := range 3 {
		code, _, err := a.CreateInvite(ctx, nil, 1, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		const n = 20
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			db := a
			if i%2 == 1 {
				db = b
			}
			wg.Go(func() {
				<-start
				errs[i] = db.UseInvite(ctx, code, Key(t, byte(100+round*n+i)).ID)
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, roomdb.ErrInviteInvalid):
				t.Fatalf("round %d claim %d: %v (want success or ErrInviteInvalid)", round, i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d claims of a single-use invite won, want 1", round, wins)
		}
		if c, err := b.CountMembers(ctx); err != nil || c != round+1 {
			t.Fatalf("round %d: %d members, %v; want %d", round, c, err, round+1)
		}
	}
}

// testSessionRace: two handles (two room nodes) create sessions of a
// member from 20 goroutines while a third removes the member: no session
// outlives its member, a session made on one node is seen on the other,
// and signing out everywhere on one node ends them on both.
func testSessionRace(t *testing.T, open Opener) {
	ctx := context.Background()
	a := MustOpen(t, open, roomdb.Options{})
	b := MustOpen(t, open, roomdb.Options{})
	alice, bob := Key(t, 1).ID, Key(t, 2).ID
	for _, m := range []feeds.FeedRef{alice, bob} {
		if err := a.AddMember(ctx, m, roomdb.RoleMember); err != nil {
			t.Fatal(err)
		}
	}
	tok, _, err := a.CreateSession(ctx, bob, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := b.Session(ctx, tok); err != nil || s.Member != bob {
		t.Fatalf("node 2 sees node 1's session: %+v, %v", s, err)
	}
	const n = 20
	tokens := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		db := a
		if i%2 == 1 {
			db = b
		}
		wg.Go(func() {
			<-start
			tokens[i], _, errs[i] = db.CreateSession(ctx, alice, time.Hour)
		})
	}
	var removeErr error
	wg.Go(func() {
		<-start
		removeErr = b.RemoveMember(ctx, alice)
	})
	close(start)
	wg.Wait()
	if removeErr != nil {
		t.Fatalf("remove member: %v", removeErr)
	}
	for i, err := range errs {
		if err != nil && !errors.Is(err, roomdb.ErrNotFound) {
			t.Fatalf("create session %d: %v (want success or ErrNotFound)", i, err)
		}
		if err == nil {
			if _, err := a.Session(ctx, tokens[i]); !errors.Is(err, roomdb.ErrNoSession) {
				t.Fatalf("session %d of a removed member still valid: %v", i, err)
			}
		}
	}
	snap, err := a.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Sessions) != 1 || snap.Sessions[0].Member != bob {
		t.Fatalf("sessions left: %+v, want only bob's", snap.Sessions)
	}
	if n, err := b.EndSessions(ctx, bob); err != nil || n != 1 {
		t.Fatalf("EndSessions on node 2 = %d, %v", n, err)
	}
	if _, err := a.Session(ctx, tok); !errors.Is(err, roomdb.ErrNoSession) {
		t.Fatalf("node 1 after sign-out everywhere on node 2: %v", err)
	}
}

func testAliases(t *testing.T, open Opener) {
	ctx := context.Background()
	db := MustOpen(t, open, roomdb.Options{})
	room := Key(t, 9).ID
	alice, bob := Key(t, 1), Key(t, 2)
	for _, m := range []feeds.FeedRef{alice.ID, bob.ID} {
		if err := db.AddMember(ctx, m, roomdb.RoleMember); err != nil {
			t.Fatal(err)
		}
	}
	good := roomdb.SignAlias(alice, room, "alice")
	if err := db.RegisterAlias(ctx, "Alice", alice.ID, good); err == nil {
		t.Fatal("invalid alias name stored")
	}
	if err := db.RegisterAlias(ctx, "alice", alice.ID, good); err != nil {
		t.Fatal(err)
	}
	if err := db.RegisterAlias(ctx, "alice", bob.ID, "x"); !errors.Is(err, roomdb.ErrAliasTaken) {
		t.Fatalf("taken alias: %v", err)
	}
	if err := db.RegisterAlias(ctx, "carol", Key(t, 3).ID, "x"); err == nil {
		t.Fatal("alias of a non-member stored")
	}
	if err := db.RegisterAlias(ctx, "bob", bob.ID, "sigb"); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeAlias(ctx, "alice", &bob.ID); !errors.Is(err, roomdb.ErrNotFound) {
		t.Fatalf("revoke by non-owner: %v", err)
	}
	as, err := db.Aliases(ctx, &alice.ID)
	if err != nil || len(as) != 1 || as[0].Name != "alice" || as[0].Owner != alice.ID || as[0].Signature != good {
		t.Fatalf("aliases of alice = %+v, %v", as, err)
	}
	if as, _ := db.Aliases(ctx, nil); len(as) != 2 || as[0].Name != "alice" || as[1].Name != "bob" {
		t.Fatalf("all aliases = %+v", as)
	}
	if err := db.RevokeAlias(ctx, "bob", nil); err != nil {
		t.Fatalf("operator revoke: %v", err)
	}
	if err := db.RevokeAlias(ctx, "bob", nil); !errors.Is(err, roomdb.ErrNotFound) {
		t.Fatalf("revoke twice: %v", err)
	}
	// Removing the member removes its aliases (foreign key cascade).
	if err := db.RemoveMember(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	if as, _ := db.Aliases(ctx, nil); len(as) != 0 {
		t.Fatalf("aliases after member removal = %+v", as)
	}
}

func testDeniedAndMode(t *testing.T, open Opener) {
	ctx := context.Background()
	db := MustOpen(t, open, roomdb.Options{Mode: roomdb.ModeCommunity})
	a := Key(t, 1).ID
	if d, err := db.IsDenied(ctx, a); d || err != nil {
		t.Fatalf("denied before deny: %v %v", d, err)
	}
	if err := db.Deny(ctx, a, "spam"); err != nil {
		t.Fatal(err)
	}
	if err := db.Deny(ctx, a, "spam again"); err != nil {
		t.Fatal(err)
	}
	if d, _ := db.IsDenied(ctx, a); !d {
		t.Fatal("not denied after deny")
	}
	if l, _ := db.DeniedKeys(ctx); len(l) != 1 || l[0].Comment != "spam again" || l[0].ID != a {
		t.Fatalf("denied = %+v", l)
	}
	if err := db.Undeny(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := db.Undeny(ctx, a); !errors.Is(err, roomdb.ErrNotFound) {
		t.Fatalf("undeny twice: %v", err)
	}
	if m, _ := db.Mode(ctx); m != roomdb.ModeCommunity {
		t.Fatalf("initial mode %s", m)
	}
	if err := db.SetMode(ctx, "bogus"); err == nil {
		t.Fatal("bogus mode accepted")
	}
	if err := db.SetMode(ctx, roomdb.ModeOpen); err != nil {
		t.Fatal(err)
	}
	if m, _ := db.Mode(ctx); m != roomdb.ModeOpen {
		t.Fatalf("mode %s", m)
	}
}

func testSessions(t *testing.T, open Opener) {
	ctx := context.Background()
	clk := NewClock(time.Unix(1_700_000_000, 0))
	db := MustOpen(t, open, roomdb.Options{Now: clk.Now})
	alice, bob := Key(t, 1).ID, Key(t, 2).ID
	if _, _, err := db.CreateSession(ctx, alice, time.Hour); !errors.Is(err, roomdb.ErrNotFound) {
		t.Fatalf("session of a non-member: %v, want ErrNotFound", err)
	}
	if err := db.AddMember(ctx, alice, roomdb.RoleMember); err != nil {
		t.Fatal(err)
	}
	if err := db.AddMember(ctx, bob, roomdb.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	t1, s1, err := db.CreateSession(ctx, alice, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t2, _, _ := db.CreateSession(ctx, alice, time.Hour)
	t3, _, _ := db.CreateSession(ctx, bob, time.Hour)
	got, err := db.Session(ctx, t1)
	if err != nil || got.Member != alice || got.Role != roomdb.RoleMember || got.CSRF != s1.CSRF || got.CSRF == "" || !got.Expires.Equal(s1.Expires) {
		t.Fatalf("Session = %+v, %v", got, err)
	}
	// Only the token's hash is stored.
	if snap, err := db.Dump(ctx); err != nil || len(snap.Sessions) != 3 {
		t.Fatalf("dump: %+v, %v", snap, err)
	} else {
		for _, s := range snap.Sessions {
			if strings.Contains(string(s.Hash), t1) || bytes.Equal(s.Hash, []byte(t1)) {
				t.Fatal("session token stored in clear")
			}
		}
	}
	// The role is read live.
	if err := db.SetRole(ctx, alice, roomdb.RoleModerator); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Session(ctx, t1); got.Role != roomdb.RoleModerator {
		t.Fatalf("role after change = %s", got.Role)
	}
	if _, err := db.Session(ctx, "forged"); !errors.Is(err, roomdb.ErrNoSession) {
		t.Fatalf("unknown token: %v", err)
	}
	// invalidateAllSolutions: every session of alice ends, bob's stays.
	if n, err := db.EndSessions(ctx, alice); err != nil || n != 2 {
		t.Fatalf("EndSessions = %d, %v", n, err)
	}
	for _, tok := range []string{t1, t2} {
		if _, err := db.Session(ctx, tok); !errors.Is(err, roomdb.ErrNoSession) {
			t.Fatalf("after EndSessions: %v", err)
		}
	}
	if _, err := db.Session(ctx, t3); err != nil {
		t.Fatalf("bob's session: %v", err)
	}
	// Expiry.
	clk.Add(2 * time.Hour)
	if _, err := db.Session(ctx, t3); !errors.Is(err, roomdb.ErrNoSession) {
		t.Fatalf("expired session: %v", err)
	}
	// Removing the member ends its sessions.
	t4, _, _ := db.CreateSession(ctx, bob, time.Hour)
	if err := db.RemoveMember(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Session(ctx, t4); !errors.Is(err, roomdb.ErrNoSession) {
		t.Fatalf("session of a removed member: %v", err)
	}
	t5, _, _ := db.CreateSession(ctx, alice, time.Hour)
	if err := db.EndSession(ctx, t5); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Session(ctx, t5); !errors.Is(err, roomdb.ErrNoSession) {
		t.Fatalf("ended session: %v", err)
	}
	// Expired sessions are swept when a new one starts.
	if snap, _ := db.Dump(ctx); len(snap.Sessions) != 0 {
		t.Fatalf("sessions left: %+v", snap.Sessions)
	}
}

func testLandingAndCheckInvite(t *testing.T, open Opener) {
	ctx := context.Background()
	db := MustOpen(t, open, roomdb.Options{})
	if s, err := db.Landing(ctx); err != nil || s != "" {
		t.Fatalf("Landing = %q, %v", s, err)
	}
	for _, text := range []string{"<b>hi</b>", "second 'text' with \"quotes\" and ünïcode", ""} {
		if err := db.SetLanding(ctx, text); err != nil {
			t.Fatal(err)
		}
		if s, _ := db.Landing(ctx); s != text {
			t.Fatalf("Landing = %q, want %q", s, text)
		}
	}
	if err := db.SetLanding(ctx, strings.Repeat("x", roomdb.MaxLandingLen+1)); err == nil {
		t.Fatal("over-long landing text accepted")
	}
	code, _, err := db.CreateInvite(ctx, nil, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CheckInvite(ctx, code); err != nil {
		t.Fatalf("fresh invite: %v", err)
	}
	if err := db.CheckInvite(ctx, code); err != nil {
		t.Fatalf("checking twice used it: %v", err)
	}
	if err := db.UseInvite(ctx, code, Key(t, 3).ID); err != nil {
		t.Fatal(err)
	}
	if err := db.CheckInvite(ctx, code); !errors.Is(err, roomdb.ErrInviteInvalid) {
		t.Fatalf("used invite: %v", err)
	}
	if err := db.CheckInvite(ctx, "nope"); !errors.Is(err, roomdb.ErrInviteInvalid) {
		t.Fatalf("bad code: %v", err)
	}
}

// Fill stores some of everything in db: members of every role, invites
// (one by a member, one by the operator), aliases, denied keys, sessions,
// a mode and a landing text. It returns an unused invite code and a live
// session token, to check that they still work after a copy.
func Fill(t testing.TB, db roomdb.Store) (code, token string) {
	t.Helper()
	ctx := context.Background()
	room := Key(t, 99)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	roles := []roomdb.Role{roomdb.RoleAdmin, roomdb.RoleModerator, roomdb.RoleMember}
	for i := range 6 {
		must(db.AddMember(ctx, Key(t, byte(10+i)).ID, roles[i%3]))
	}
	admin := Key(t, 10).ID
	var err error
	code, _, err = db.CreateInvite(ctx, &admin, 2, time.Hour)
	must(err)
	_, _, err = db.CreateInvite(ctx, nil, 1, 24*time.Hour)
	must(err)
	for i, name := range []string{"alice", "bob"} {
		kp := Key(t, byte(11+i))
		must(db.RegisterAlias(ctx, name, kp.ID, roomdb.SignAlias(kp, room.ID, name)))
	}
	must(db.Deny(ctx, Key(t, 50).ID, "spam"))
	must(db.Deny(ctx, Key(t, 51).ID, ""))
	token, _, err = db.CreateSession(ctx, admin, time.Hour)
	must(err)
	_, _, err = db.CreateSession(ctx, Key(t, 11).ID, time.Hour)
	must(err)
	must(db.SetMode(ctx, roomdb.ModeRestricted))
	must(db.SetLanding(ctx, "welcome <b>all</b>"))
	return code, token
}

// CheckCopy checks that to holds what from holds (after Copy) and that
// the invite code and session token of Fill work on to.
func CheckCopy(t testing.TB, from, to roomdb.Store, code, token string) {
	t.Helper()
	ctx := context.Background()
	a, err := from.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := to.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("copy differs:\n from %+v\n to   %+v", a, b)
	}
	if s, err := to.Session(ctx, token); err != nil || s.Member != Key(t, 10).ID {
		t.Fatalf("session after copy: %+v, %v", s, err)
	}
	if err := to.UseInvite(ctx, code, Key(t, 60).ID); err != nil {
		t.Fatalf("invite after copy: %v", err)
	}
	// New invites get new ids after the copied ones.
	_, inv, err := to.CreateInvite(ctx, nil, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, old := range a.Invites {
		if inv.ID <= old.ID {
			t.Fatalf("new invite id %d not after copied id %d", inv.ID, old.ID)
		}
	}
}

func testDumpRestore(t *testing.T, openA, openB Opener) {
	ctx := context.Background()
	src := MustOpen(t, openA, roomdb.Options{})
	dst := MustOpen(t, openB, roomdb.Options{})
	code, token := Fill(t, src)
	counts, err := roomdb.Copy(ctx, src, dst, false)
	if err != nil {
		t.Fatal(err)
	}
	want := roomdb.Counts{Members: 6, Invites: 2, Aliases: 2, Denied: 2, Sessions: 2, Config: 2}
	if counts != want {
		t.Fatalf("counts %+v, want %+v", counts, want)
	}
	CheckCopy(t, src, dst, code, token)
	// A target with members is refused, and left as it was.
	before, _ := dst.Dump(ctx)
	if _, err := roomdb.Copy(ctx, src, dst, false); !errors.Is(err, roomdb.ErrNotEmpty) {
		t.Fatalf("copy onto a room with members: %v, want ErrNotEmpty", err)
	}
	if after, _ := dst.Dump(ctx); !reflect.DeepEqual(before, after) {
		t.Fatal("refused copy changed the target")
	}
	// With force it is replaced.
	if _, err := roomdb.Copy(ctx, src, dst, true); err != nil {
		t.Fatalf("forced copy: %v", err)
	}
	a, _ := src.Dump(ctx)
	b, _ := dst.Dump(ctx)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("forced copy differs:\n from %+v\n to   %+v", a, b)
	}
}
