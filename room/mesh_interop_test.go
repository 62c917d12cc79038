package room

import (
	"testing"
	"time"

	"github.com/cask-ssb/cask/internal/interop"
)

// TestInteropMeshJSPeers: JS ssb-room-client peers on node 1 and node 3
// of a mesh sharing one PostgreSQL database see each other as attendants, and B (node 3) tunnels to A
// (node 1) through the mesh and replicates A's feed.
func TestInteropMeshJSPeers(t *testing.T) {
	interop.Kit(t)
	nodes := startMeshOn(t, dbPostgres, 3, nil)
	const n = 100
	a := interop.StartPeer(t, "--publish", "100", "--progress-ms", "0", "--room", nodes[0].s.Address())
	waitEv(t, a, "room (node 1)", 30*time.Second, named("room"))
	b := interop.StartPeer(t, "--follow", a.ID, "--tunnel", a.ID, "--progress-ms", "0", "--room", nodes[2].s.Address())
	waitEv(t, b, "room (node 3)", 30*time.Second, named("room"))
	waitEv(t, b, "attendant A (held by node 1)", 30*time.Second, func(e interop.Event) bool { return e.Name() == "attendant" && e.String("key") == a.ID })
	waitEv(t, a, "attendant B (held by node 3)", 30*time.Second, func(e interop.Event) bool { return e.Name() == "attendant" && e.String("key") == b.ID })
	waitEv(t, b, "tunnel_opened", 30*time.Second, named("tunnel_opened"))
	waitEv(t, a, "incoming tunnel from B", 30*time.Second, func(e interop.Event) bool { return e.Name() == "tunnel" && e.String("peer") == b.ID })
	waitEv(t, b, "A's feed replicated through the mesh", 60*time.Second, func(e interop.Event) bool {
		return e.Name() == "progress" && e.String("feed") == a.ID && e.Int("seq") >= n
	})
	if v := metricValue(nodes[2].s.Mesh().Metrics().Collectors()[1]); v < 1 {
		t.Fatalf("node 3 forwarded no tunnel (room_mesh_tunnels_total = %v): the tunnel did not go through the mesh", v)
	}
}
