package roomdb

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSessions(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	now := time.Unix(1_700_000_000, 0)
	db.now = func() time.Time { return now }
	alice, bob := key(t, 1).ID, key(t, 2).ID
	if _, _, err := db.CreateSession(ctx, alice, time.Hour); !errors.Is(err, ErrNotFound) {
		t.Fatalf("session of a non-member: %v, want ErrNotFound", err)
	}
	if err := db.AddMember(ctx, alice, RoleMember); err != nil {
		t.Fatal(err)
	}
	if err := db.AddMember(ctx, bob, RoleAdmin); err != nil {
		t.Fatal(err)
	}
	t1, s1, err := db.CreateSession(ctx, alice, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t2, _, _ := db.CreateSession(ctx, alice, time.Hour)
	t3, _, _ := db.CreateSession(ctx, bob, time.Hour)
	got, err := db.Session(ctx, t1)
	if err != nil || got.Member != alice || got.Role != RoleMember || got.CSRF != s1.CSRF || got.CSRF == "" {
		t.Fatalf("Session = %+v, %v", got, err)
	}
	// The role is read live.
	if err := db.SetRole(ctx, alice, RoleModerator); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Session(ctx, t1); got.Role != RoleModerator {
		t.Fatalf("role after change = %s", got.Role)
	}
	if _, err := db.Session(ctx, "forged"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("unknown token: %v", err)
	}
	// invalidateAllSolutions: every session of alice ends, bob's stays.
	if n, err := db.EndSessions(ctx, alice); err != nil || n != 2 {
		t.Fatalf("EndSessions = %d, %v", n, err)
	}
	for _, tok := range []string{t1, t2} {
		if _, err := db.Session(ctx, tok); !errors.Is(err, ErrNoSession) {
			t.Fatalf("after EndSessions: %v", err)
		}
	}
	if _, err := db.Session(ctx, t3); err != nil {
		t.Fatalf("bob's session: %v", err)
	}
	// Expiry.
	now = now.Add(2 * time.Hour)
	if _, err := db.Session(ctx, t3); !errors.Is(err, ErrNoSession) {
		t.Fatalf("expired session: %v", err)
	}
	// Removing the member ends its sessions.
	t4, _, _ := db.CreateSession(ctx, bob, time.Hour)
	if err := db.RemoveMember(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Session(ctx, t4); !errors.Is(err, ErrNoSession) {
		t.Fatalf("session of a removed member: %v", err)
	}
	t5, _, _ := db.CreateSession(ctx, alice, time.Hour)
	if err := db.EndSession(ctx, t5); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Session(ctx, t5); !errors.Is(err, ErrNoSession) {
		t.Fatalf("ended session: %v", err)
	}
}

func TestLandingAndCheckInvite(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	if s, err := db.Landing(ctx); err != nil || s != "" {
		t.Fatalf("Landing = %q, %v", s, err)
	}
	if err := db.SetLanding(ctx, "<b>hi</b>"); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.Landing(ctx); s != "<b>hi</b>" {
		t.Fatalf("Landing = %q", s)
	}
	if err := db.SetLanding(ctx, string(make([]byte, MaxLandingLen+1))); err == nil {
		t.Fatal("over-long landing text accepted")
	}
	code, _, err := db.CreateInvite(ctx, nil, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CheckInvite(ctx, code); err != nil {
		t.Fatalf("fresh invite: %v", err)
	}
	if err := db.UseInvite(ctx, code, key(t, 3).ID); err != nil {
		t.Fatal(err)
	}
	if err := db.CheckInvite(ctx, code); !errors.Is(err, ErrInviteInvalid) {
		t.Fatalf("used invite: %v", err)
	}
	if err := db.CheckInvite(ctx, "nope"); !errors.Is(err, ErrInviteInvalid) {
		t.Fatalf("bad code: %v", err)
	}
}
