package sbot

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/internal/interop"
)

// TestWSRoomTunnel: two daemons without any listener of their own join
// our room, at least one of them over WebSocket on the room's HTTP port,
// tunnel to each other through the room and replicate both ways, live
// included; each sees the other as a tunnel peer through the room and the
// room itself over the transport it used.
func TestWSRoomTunnel(t *testing.T) {
	tests := []struct {
		name     string
		aWS, bWS bool
	}{
		{name: "ws and tcp", aWS: true, bWS: false},
		{name: "both ws", aWS: true, bWS: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws, tcp, _ := startWSRoom(t)
			via := func(useWS bool) func(*Config) {
				addr := tcp
				if useWS {
					addr = ws
				}
				return func(c *Config) { c.Listen = "off"; c.Rooms = []string{addr} }
			}
			a, ca := startNodeWith(t, t.TempDir(), via(tc.aWS))
			b, cb := startNodeWith(t, t.TempDir(), via(tc.bWS))
			follow(t, ca, b.ID())
			follow(t, cb, a.ID())
			for i := range 30 {
				post(t, ca, map[string]any{"type": "post", "text": fmt.Sprint("a", i)})
				post(t, cb, map[string]any{"type": "post", "text": fmt.Sprint("b", i)})
			}
			waitLatest(t, a, b.ID(), 31)
			waitLatest(t, b, a.ID(), 31)

			roomID := statusOf(t, ca).Rooms[0].ID
			for _, side := range []struct {
				n      *Node
				friend feeds.FeedRef
				useWS  bool
			}{{a, b.ID(), tc.aWS}, {b, a.ID(), tc.bWS}} {
				wantRoomTransport := feeds.TransportNet
				if side.useWS {
					wantRoomTransport = feeds.TransportWS
				}
				var tunnel, toRoom bool
				for _, p := range side.n.Status().Peers {
					switch {
					case p.ID == side.friend.String():
						tunnel = true
						if p.Transport != feeds.TransportTunnel || p.Room != roomID {
							t.Errorf("%s: peer %s over %q via %q, want a tunnel via the room %s", side.n.ID(), p.ID, p.Transport, p.Room, roomID)
						}
					case p.ID == roomID:
						toRoom = true
						if p.Transport != wantRoomTransport {
							t.Errorf("%s: the room over %q, want %q", side.n.ID(), p.Transport, wantRoomTransport)
						}
					}
				}
				if !tunnel || !toRoom {
					t.Errorf("%s: peers %+v: want the friend through a tunnel and the room", side.n.ID(), side.n.Status().Peers)
				}
			}

			// Live, both ways, through the tunnel.
			post(t, ca, map[string]any{"type": "post", "text": "live from a"})
			post(t, cb, map[string]any{"type": "post", "text": "live from b"})
			waitLatest(t, a, b.ID(), 32)
			waitLatest(t, b, a.ID(), 32)
		})
	}
}

// TestInteropWSRoomTunnel: a JS peer (secret-stack with the multiserver ws
// transport, ssb-room-client) joins our room over WebSocket on its HTTP
// port, a daemon joins it over TCP; the JS peer tunnels through the room
// to the daemon and they replicate each other's feeds (EBT), live
// included.
func TestInteropWSRoomTunnel(t *testing.T) {
	interop.Kit(t) // fails (not skips) if the kit is unusable; skips only with -short
	ws, tcp, _ := startWSRoom(t)
	g, cg := startNodeWith(t, t.TempDir(), func(c *Config) {
		c.Listen, c.Rooms = "off", []string{tcp}
		c.TunnelAccept = TunnelAcceptAnyone
	})
	const theirs, ours = 15, 10
	for i := range ours {
		post(t, cg, map[string]any{"type": "post", "text": "from go", "n": i})
	}
	js := interop.StartPeer(t, "--room", ws, "--follow", g.ID().String(), "--tunnel", g.ID().String(),
		"--publish", fmt.Sprint(theirs), "--progress-ms", "0")
	room, err := js.WaitEvent(60*time.Second, func(e interop.Event) bool { return e.Name() == "room" })
	if err != nil {
		t.Fatalf("the JS peer did not join our room over ws: %v\n%s", err, js.Stderr())
	}
	if a := room.String("address"); !strings.HasPrefix(a, "ws:") {
		t.Errorf("the JS peer joined the room at %q, want its ws address", a)
	}
	if _, err := js.WaitEvent(60*time.Second, func(e interop.Event) bool {
		return e.Name() == "progress" && e.String("feed") == g.ID().String() && e.Int("seq") >= ours
	}); err != nil {
		t.Fatalf("the JS peer did not replicate our feed through the tunnel: %v\n%s", err, js.Stderr())
	}
	jsID, err := feeds.ParseFeedRef(js.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitLatestWithin(t, g, jsID, theirs+1, 60*time.Second) // its posts and its follow of us
	var tunnel bool
	for _, p := range g.Status().Peers {
		if p.ID == js.ID {
			tunnel = p.Transport == feeds.TransportTunnel && p.Direction == "in"
		}
	}
	if !tunnel {
		t.Fatalf("no incoming tunnel from the JS peer in %+v", g.Status().Peers)
	}
	if err := js.Send(map[string]any{"cmd": "publish", "n": 1}); err != nil {
		t.Fatal(err)
	}
	post(t, cg, map[string]any{"type": "post", "text": "live from go"})
	waitLatestWithin(t, g, jsID, theirs+2, 60*time.Second)
	if _, err := js.WaitEvent(30*time.Second, func(e interop.Event) bool {
		return e.Name() == "progress" && e.String("feed") == g.ID().String() && e.Int("seq") >= ours+1
	}); err != nil {
		t.Fatalf("the JS peer did not get our live message: %v", err)
	}
}

// waitLatestWithin waits up to d until n holds feed up to seq.
func waitLatestWithin(t *testing.T, n *Node, feed feeds.FeedRef, seq int64, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		got, _, _, err := n.Store().Latest(feed)
		if err != nil {
			t.Fatal(err)
		}
		if got == seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s at %d, want %d", feed, got, seq)
		}
	}
}
