package web

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/room/roomdb"
)

type fakePeers struct{ att []feeds.FeedRef }

func (p fakePeers) Endpoint(feeds.FeedRef) (*muxrpc.Endpoint, bool) { return nil, false }
func (p fakePeers) Attendants() []feeds.FeedRef                     { return p.att }

// BenchmarkPages renders every page of a room with 1,000 members (100 of
// them online, 100 aliases, 100 invites, 100 denied keys) for a signed-in
// admin, in server time (no network). Target: under 50 ms a page.
func BenchmarkPages(b *testing.B) {
	ctx := context.Background()
	db, err := roomdb.Open(ctx, filepath.Join(b.TempDir(), "room.sqlite"), roomdb.ModeCommunity)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	roomKey, _ := feeds.GenerateKeyPair(rand.Reader)
	var admin feeds.FeedRef
	var att []feeds.FeedRef
	for i := 0; i < 1000; i++ {
		kp, _ := feeds.GenerateKeyPair(rand.Reader)
		role := roomdb.RoleMember
		if i == 0 {
			role, admin = roomdb.RoleAdmin, kp.ID
		}
		if err := db.AddMember(ctx, kp.ID, role); err != nil {
			b.Fatal(err)
		}
		if i < 100 {
			att = append(att, kp.ID)
			name := "alias" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			if err := db.RegisterAlias(ctx, name, kp.ID, roomdb.SignAlias(kp, roomKey.ID, name)); err != nil {
				b.Fatal(err)
			}
			if _, _, err := db.CreateInvite(ctx, &admin, 1, time.Hour); err != nil {
				b.Fatal(err)
			}
			d, _ := feeds.GenerateKeyPair(rand.Reader)
			if err := db.Deny(ctx, d.ID, "spam"); err != nil {
				b.Fatal(err)
			}
		}
	}
	code, _, _ := db.CreateInvite(ctx, nil, 1, time.Hour)
	token, _, err := db.CreateSession(ctx, admin, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{Room: roomKey.ID, Domain: "room.example.org", Store: db, Peers: fakePeers{att},
		Address: func() string { return "net:room.example.org:8008~shs:" + roomKey.ID.String()[1:45] }})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	for _, p := range []string{"/", "/login", "/join?invite=" + code, "/alias/aliasaa", "/dashboard", "/dashboard/members",
		"/dashboard/invites", "/dashboard/aliases", "/dashboard/denied", "/dashboard/landing"} {
		name := strings.NewReplacer("/", "_", "?", "_").Replace(strings.TrimPrefix(p, "/"))
		if name == "" {
			name = "home"
		}
		if i := strings.Index(name, "invite="); i >= 0 {
			name = name[:i] + "invite"
		}
		b.Run(name, func(b *testing.B) {
			req := httptest.NewRequest("GET", p, nil)
			req.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
			var worst time.Duration
			cpu0 := cpuTime()
			for b.Loop() {
				w := httptest.NewRecorder()
				t0 := time.Now()
				h.ServeHTTP(w, req)
				if d := time.Since(t0); d > worst {
					worst = d
				}
				if w.Code != 200 {
					b.Fatalf("%s: %d", p, w.Code)
				}
			}
			b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
			// CPU time per page: what the page costs the server, whatever
			// else the machine runs (wall time is what ns/op says).
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
