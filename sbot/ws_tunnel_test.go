package sbot

import (
	"fmt"
	"testing"

	"github.com/cask-ssb/cask/feeds"
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
			ws, tcp := startWSRoom(t)
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
