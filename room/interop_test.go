package room

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/internal/interop"
	"github.com/cask-ssb/cask/muxrpc"
)

// callLog records the calls each peer made on the room, in order.
type callLog struct {
	mu    sync.Mutex
	calls map[string][]string
}

func (l *callLog) record(peer feeds.FeedRef, m muxrpc.Method) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.calls == nil {
		l.calls = map[string][]string{}
	}
	l.calls[peer.String()] = append(l.calls[peer.String()], m.String())
}

func (l *callLog) of(peer string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls[peer])
}

// inOrder checks that want appear in calls in this order (first
// occurrences), with room.metadata the first room call.
func inOrder(calls []string, want ...string) bool {
	last := -1
	for _, w := range want {
		i := slices.Index(calls, w)
		if i < 0 || i < last {
			return false
		}
		last = i
	}
	return true
}

func waitEv(t *testing.T, p *interop.Peer, what string, timeout time.Duration, pred func(interop.Event) bool) interop.Event {
	t.Helper()
	ev, err := p.WaitEvent(timeout, pred)
	if err != nil {
		t.Fatalf("JS peer %s: waiting for %s: %v\nstderr: %s", p.ID, what, err, p.Stderr())
	}
	return ev
}

func named(name string) func(interop.Event) bool {
	return func(e interop.Event) bool { return e.Name() == name }
}

// adminCall calls an admin method on the room's unix socket, as
// `room admin` does.
func adminCall(t *testing.T, s *Server, method string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := net.Dial("unix", s.cfg.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	ep := muxrpc.NewEndpoint(ctx, c, nil, muxrpc.Options{})
	defer ep.Close()
	if err := ep.Async(ctx, nil, muxrpc.ParseMethod(method), args...); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

// TestInteropJSPeersTunnelAndReplicate: two ssb-room-client peers join our
// room, see each other, B tunnels to A through it and replicates A's feed,
// with EBT and with legacy replication. They must take the rooms 2.0
// path: room.metadata, then room.attendants, then tunnel.connect.
func TestInteropJSPeersTunnelAndReplicate(t *testing.T) {
	interop.Kit(t)
	for _, mode := range []string{"ebt", "legacy"} {
		t.Run(mode, func(t *testing.T) {
			var log callLog
			s := startRoomTraced(t, nil, log.record)
			const n = 100
			common := []string{"--replication", mode, "--progress-ms", "0", "--room", s.Address(), "--trace"}
			a := interop.StartPeer(t, append([]string{"--publish", "100"}, common...)...)
			ra := waitEv(t, a, "room", 30*time.Second, named("room"))
			if ra.String("room") != s.ID().String() {
				t.Fatalf("A joined room %v, want %s", ra["room"], s.ID())
			}
			feats, _ := ra["features"].([]any)
			if !slices.Contains(feats, any("room2")) || ra["room1"] == true {
				t.Fatalf("A sees the room as %v (features %v): not rooms 2.0", ra, feats)
			}
			b := interop.StartPeer(t, append([]string{"--follow", a.ID, "--tunnel", a.ID}, common...)...)
			waitEv(t, b, "room", 30*time.Second, named("room"))
			waitEv(t, b, "attendant A", 30*time.Second, func(e interop.Event) bool { return e.Name() == "attendant" && e.String("key") == a.ID })
			waitEv(t, a, "attendant B", 30*time.Second, func(e interop.Event) bool { return e.Name() == "attendant" && e.String("key") == b.ID })
			waitEv(t, b, "tunnel_opened", 30*time.Second, named("tunnel_opened"))
			waitEv(t, a, "incoming tunnel from B", 30*time.Second, func(e interop.Event) bool { return e.Name() == "tunnel" && e.String("peer") == b.ID })
			// A's trace: the room called tunnel.connect on A, with origin B.
			in := waitEv(t, a, "rpc_in tunnel.connect", 10*time.Second, func(e interop.Event) bool {
				return e.Name() == "rpc_in" && strings.Contains(strings.ReplaceAll(anyString(e["name"]), ",", "."), "tunnel.connect")
			})
			if !strings.Contains(anyString(in["args"]), b.ID) {
				t.Errorf("tunnel.connect on A has args %v, want origin %s", in["args"], b.ID)
			}
			waitEv(t, b, "A's feed replicated through the tunnel", 60*time.Second, func(e interop.Event) bool {
				return e.Name() == "progress" && e.String("feed") == a.ID && e.Int("seq") >= n
			})
			for name, p := range map[string]*interop.Peer{"A": a, "B": b} {
				calls := log.of(p.ID)
				if !inOrder(calls, "room.metadata", "room.attendants") || slices.Contains(calls, "tunnel.isRoom") || slices.Contains(calls, "tunnel.endpoints") {
					t.Errorf("%s's calls on the room: %v; want room.metadata then room.attendants (rooms 2.0), no rooms 1.0 fallback", name, calls)
				}
			}
			if calls := log.of(b.ID); !inOrder(calls, "room.metadata", "room.attendants", "tunnel.connect") {
				t.Errorf("B's calls on the room: %v; want room.metadata, room.attendants, tunnel.connect", calls)
			}
			t.Logf("%s: A calls %v; B calls %v", mode, log.of(a.ID), log.of(b.ID))
		})
	}
}

func anyString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = anyString(p)
		}
		return strings.Join(parts, ",")
	case map[string]any:
		var parts []string
		for k, p := range x {
			parts = append(parts, k+"="+anyString(p))
		}
		return strings.Join(parts, ",")
	}
	return ""
}

// TestInteropRestrictedMode: a JS peer that is not a member gets no room
// session; after `room admin members add` it joins and tunnels.
func TestInteropRestrictedMode(t *testing.T) {
	interop.Kit(t)
	var log callLog
	s := startRoomTraced(t, func(c *Config) { c.Mode = "restricted" }, log.record)
	member := interop.StartPeer(t, "--replication", "none")
	adminCall(t, s, "admin.members.add", member.ID, "member")
	if err := member.Send(map[string]string{"cmd": "room", "address": s.Address()}); err != nil {
		t.Fatal(err)
	}
	waitEv(t, member, "room (member)", 30*time.Second, named("room"))

	c := interop.StartPeer(t, "--replication", "none", "--room", s.Address())
	waitEv(t, c, "refused connection to the room", 30*time.Second, named("connected"))
	waitEv(t, c, "disconnect by the room", 30*time.Second, named("disconnected"))
	for _, e := range c.Events() {
		if e.Name() == "room" {
			t.Fatalf("a non-member got a room session in restricted mode: %v", e)
		}
	}
	if calls := log.of(c.ID); len(calls) != 0 {
		t.Fatalf("a refused peer reached the room's handlers: %v", calls)
	}

	adminCall(t, s, "admin.members.add", c.ID, "member")
	if err := c.Send(map[string]string{"cmd": "room", "address": s.Address()}); err != nil {
		t.Fatal(err)
	}
	rm := waitEv(t, c, "room after members add", 30*time.Second, named("room"))
	if rm.String("room") != s.ID().String() {
		t.Fatalf("room event %v", rm)
	}
	waitEv(t, c, "attendant (the other member)", 30*time.Second, func(e interop.Event) bool { return e.Name() == "attendant" && e.String("key") == member.ID })
	if err := c.Send(map[string]string{"cmd": "tunnel", "target": member.ID}); err != nil {
		t.Fatal(err)
	}
	waitEv(t, c, "tunnel_opened", 30*time.Second, named("tunnel_opened"))
	waitEv(t, member, "incoming tunnel", 30*time.Second, func(e interop.Event) bool { return e.Name() == "tunnel" && e.String("peer") == c.ID })
}

// TestInteropCommunityMode: a non-member cannot enumerate attendants but
// can tunnel to a member.
func TestInteropCommunityMode(t *testing.T) {
	interop.Kit(t)
	var log callLog
	s := startRoomTraced(t, func(c *Config) { c.Mode = "community" }, log.record)
	member := interop.StartPeer(t, "--replication", "none")
	adminCall(t, s, "admin.members.add", member.ID, "member")
	if err := member.Send(map[string]string{"cmd": "room", "address": s.Address()}); err != nil {
		t.Fatal(err)
	}
	waitEv(t, member, "room (member)", 30*time.Second, named("room"))

	outsider := interop.StartPeer(t, "--replication", "none", "--room", s.Address(), "--tunnel", member.ID)
	rm := waitEv(t, outsider, "room (outsider)", 30*time.Second, named("room"))
	if rm.String("room") != s.ID().String() {
		t.Fatalf("room event %v", rm)
	}
	waitEv(t, outsider, "tunnel_opened", 30*time.Second, named("tunnel_opened"))
	waitEv(t, member, "incoming tunnel", 30*time.Second, func(e interop.Event) bool { return e.Name() == "tunnel" && e.String("peer") == outsider.ID })
	for _, e := range outsider.Events() {
		if e.Name() == "attendant" {
			t.Fatalf("a non-member enumerated attendants: %v", e)
		}
	}
	if s.att.IsPresent(mustRef(t, outsider.ID)) {
		t.Fatal("a non-member became an attendant in community mode")
	}
	if calls := log.of(outsider.ID); !slices.Contains(calls, "room.attendants") || !slices.Contains(calls, "tunnel.connect") {
		t.Fatalf("outsider's calls %v: want a refused room.attendants and a tunnel.connect", calls)
	}
}

func mustRef(t *testing.T, s string) feeds.FeedRef {
	t.Helper()
	r, err := feeds.ParseFeedRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
