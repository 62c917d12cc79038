package sbot

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/internal/interop"
)

// jsRoom1 runs the kit's rooms 1.0 server (npm ssb-room) until the test
// ends and returns its address and id.
func jsRoom1(t *testing.T) (address, id string) {
	t.Helper()
	kit := interop.Kit(t)
	p, err := interop.Start(kit, "room1-server.js", "--path", t.TempDir())
	if err != nil {
		t.Fatalf("start room1-server.js: %v", err)
	}
	t.Cleanup(p.Stop)
	ev, err := p.WaitEvent(60*time.Second, func(e interop.Event) bool { return e.Name() == "ready" })
	if err != nil {
		t.Fatalf("room1-server.js not ready: %v\n%s", err, p.Stderr())
	}
	return ev.String("address"), ev.String("id")
}

// TestInteropRoomTunnels: our daemon (no TCP listener) and a JS peer
// (ssb-room-client, EBT) in a room, our rooms 2.0 server and the JS rooms
// 1.0 server. "js dials": the JS peer tunnels to us and replicates our
// feed while we replicate its. "go dials": we find the JS peer among the
// attendants, tunnel to it ourselves and replicate its feed (EBT, which
// the dialling side opens), live included.
func TestInteropRoomTunnels(t *testing.T) {
	interop.Kit(t)
	for _, roomKind := range []string{"room2-go", "room1-js"} {
		for _, who := range []string{"js dials", "go dials"} {
			t.Run(roomKind+"/"+who, func(t *testing.T) {
				var roomAddr, roomID string
				if roomKind == "room2-go" {
					r := startTestRoom(t, "open")
					roomAddr, roomID = r.Address(), r.ID().String()
				} else {
					roomAddr, roomID = jsRoom1(t)
				}
				// The JS peer's key is made first, so that we can follow it
				// before it joins. When the JS peer dials, we do not follow
				// it (else we would dial it too) and accept tunnels from
				// anyone.
				jsKeys := filepath.Join(t.TempDir(), "secret")
				kp, _, err := feeds.LoadOrCreateSecret(jsKeys)
				if err != nil {
					t.Fatal(err)
				}
				g, cg := startNodeWith(t, t.TempDir(), func(c *Config) {
					c.Listen, c.Rooms = "off", []string{roomAddr}
					if who == "js dials" {
						c.TunnelAccept = TunnelAcceptAnyone
					}
				})
				want, ours := int64(15), int64(10) // the JS peer's posts, ours
				if who == "go dials" {
					follow(t, cg, kp.ID)
					ours++
				}
				for i := range 10 {
					post(t, cg, map[string]any{"type": "post", "text": "from go", "n": i})
				}
				args := []string{"--keys", jsKeys, "--room", roomAddr, "--follow", g.ID().String(), "--publish", "15", "--progress-ms", "0"}
				if who == "js dials" {
					args = append(args, "--tunnel", g.ID().String())
				}
				js := interop.StartPeer(t, args...)
				if js.ID != kp.ID.String() {
					t.Fatalf("JS peer id %s, want %s", js.ID, kp.ID)
				}
				if _, err := js.WaitEvent(60*time.Second, func(e interop.Event) bool {
					return e.Name() == "progress" && e.String("feed") == g.ID().String() && e.Int("seq") >= ours
				}); err != nil {
					t.Fatalf("JS peer did not replicate our feed through the tunnel: %v\n%s", err, js.Stderr())
				}
				want++ // and its follow of us
				waitLatest(t, g, kp.ID, want)
				var tun bool
				for _, p := range statusOf(t, cg).Peers {
					if p.ID == js.ID {
						tun = p.Transport == feeds.TransportTunnel && p.Room == roomID
						dir := map[string]string{"js dials": "in", "go dials": "out"}[who]
						if p.Direction != dir {
							t.Errorf("connection with the JS peer: direction %s, want %s", p.Direction, dir)
						}
					}
				}
				if !tun {
					t.Fatalf("no tunnel via %s with the JS peer in status %+v", roomID, statusOf(t, cg).Peers)
				}
				st := statusOf(t, cg)
				wantVersion := map[string]string{"room2-go": "2", "room1-js": "1"}[roomKind]
				if len(st.Rooms) != 1 || st.Rooms[0].Version != wantVersion || st.Rooms[0].State != "attendant" {
					t.Errorf("status rooms %+v, want one attendant of a rooms %s.0 room", st.Rooms, wantVersion)
				}
				if who == "js dials" {
					if _, err := js.WaitEvent(5*time.Second, func(e interop.Event) bool { return e.Name() == "tunnel_opened" }); err != nil {
						t.Errorf("the JS peer did not report its tunnel: %v", err)
					}
				}
				// Live, both ways.
				if err := js.Send(map[string]any{"cmd": "publish", "n": 1}); err != nil {
					t.Fatal(err)
				}
				post(t, cg, map[string]any{"type": "post", "text": "live from go"})
				waitLatest(t, g, kp.ID, want+1)
				if _, err := js.WaitEvent(30*time.Second, func(e interop.Event) bool {
					return e.Name() == "progress" && e.String("feed") == g.ID().String() && e.Int("seq") >= ours+1
				}); err != nil {
					t.Fatalf("JS peer did not get our live message: %v", err)
				}
			})
		}
	}
}
