package sbot

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/plugins/status"
	"github.com/cask-ssb/cask/room"
	"github.com/cask-ssb/cask/sbot/client"
)

// startTestRoom runs our room server in mode on 127.0.0.1 until the test
// ends (keepalive 5 s).
func startTestRoom(t testing.TB, mode string) *room.Server {
	t.Helper()
	cfg := room.Defaults(t.TempDir())
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTPListen = "off"
	cfg.DebugListen = "off"
	cfg.Mode = mode
	cfg.KeepAlive = 5 * time.Second
	s, err := room.New(room.Options{Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("room did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("room Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("room did not stop within 15 s")
		}
	})
	return s
}

func post(t testing.TB, c *client.Client, content map[string]any) {
	t.Helper()
	if _, err := c.Publish(context.Background(), content); err != nil {
		t.Fatal(err)
	}
}

func follow(t testing.TB, c *client.Client, id feeds.FeedRef) {
	t.Helper()
	post(t, c, map[string]any{"type": "contact", "contact": id.String(), "following": true})
}

func statusOf(t testing.TB, c *client.Client) status.Report {
	t.Helper()
	raw, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var r status.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRoomTunnelReplication: two daemons without any TCP listener join our
// room, find each other as attendants, tunnel through the room and
// replicate both ways, live included.
func TestRoomTunnelReplication(t *testing.T) {
	start := time.Now()
	defer logStep(t, start, "done")
	r := startTestRoom(t, "open")
	edit := func(c *Config) { c.Listen = "off"; c.Rooms = []string{r.Address()} }
	a, ca := startNodeWith(t, t.TempDir(), edit)
	b, cb := startNodeWith(t, t.TempDir(), edit)
	follow(t, ca, b.ID())
	follow(t, cb, a.ID())
	for i := range 20 {
		post(t, ca, map[string]any{"type": "post", "text": fmt.Sprint("a", i)})
		post(t, cb, map[string]any{"type": "post", "text": fmt.Sprint("b", i)})
	}
	waitLatest(t, a, b.ID(), 21)
	waitLatest(t, b, a.ID(), 21)
	logStep(t, start, "replicated")

	// The connection is a tunnel through the room, on both sides, and the
	// status shows the room with the friend as a followed attendant.
	for _, side := range []struct {
		c      *client.Client
		friend feeds.FeedRef
	}{{ca, b.ID()}, {cb, a.ID()}} {
		st := statusOf(t, side.c)
		var found bool
		for _, p := range st.Peers {
			if p.ID == side.friend.String() {
				found = true
				if p.Transport != feeds.TransportTunnel || p.Room != r.ID().String() {
					t.Errorf("peer %s: transport %q via %q, want tunnel via %s", p.ID, p.Transport, p.Room, r.ID())
				}
			}
		}
		if !found {
			t.Errorf("status peers %+v lack %s", st.Peers, side.friend)
		}
		if len(st.Rooms) != 1 || st.Rooms[0].State != "attendant" || st.Rooms[0].Version != "2" {
			t.Fatalf("status rooms = %+v, want one rooms 2.0 room, attendant", st.Rooms)
		}
		if fl := st.Rooms[0].Followed; len(fl) != 1 || fl[0] != side.friend.String() {
			t.Errorf("followed attendants = %v, want [%s]", fl, side.friend)
		}
	}

	// Live: a message published now arrives through the tunnel.
	post(t, cb, map[string]any{"type": "post", "text": "live from b"})
	post(t, ca, map[string]any{"type": "post", "text": "live from a"})
	waitLatest(t, a, b.ID(), 22)
	waitLatest(t, b, a.ID(), 22)
}

func logStep(t testing.TB, start time.Time, what string) {
	t.Logf("%6.2fs %s", time.Since(start).Seconds(), what)
}

// TestTunnelAcceptFollowed: with tunnel-accept "followed" (the default) a
// tunneled connection from a peer we do not follow is refused during the
// inner handshake and logged; once we follow it, it is accepted. A tunnel
// address to a peer that is not in the room fails.
func TestTunnelAcceptFollowed(t *testing.T) {
	r := startTestRoom(t, "open")
	edit := func(c *Config) { c.Listen = "off"; c.Rooms = []string{r.Address()} }
	a, ca := startNodeWith(t, t.TempDir(), edit)
	b, cb := startNodeWith(t, t.TempDir(), edit)
	ctx := context.Background()
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, c := range []*client.Client{ca, cb} {
		eventually("both attendants", func() bool {
			st := statusOf(t, c)
			return len(st.Rooms) == 1 && len(st.Rooms[0].Attendants) == 2
		})
	}
	addrB := feeds.Address{Key: b.ID(), Portal: r.ID(), Transport: feeds.TransportTunnel}.String()
	if err := a.ConnectAddress(ctx, addrB); err == nil {
		t.Fatal("B kept a tunneled connection from A, which it does not follow")
	}
	if b.conns.peer(a.ID()) != nil {
		t.Fatal("B has a connection with A")
	}
	follow(t, cb, a.ID())
	if err := a.ConnectAddress(ctx, addrB); err != nil {
		t.Fatalf("tunnel to B after B follows A: %v", err)
	}
	eventually("B to hold the tunneled connection", func() bool {
		c := b.conns.peer(a.ID())
		return c != nil && c.transport == feeds.TransportTunnel && c.direction == "in"
	})
	ghost := feeds.Address{Key: feeds.FeedRef{9}, Portal: r.ID(), Transport: feeds.TransportTunnel}.String()
	if err := a.ConnectAddress(ctx, ghost); err == nil {
		t.Fatal("a tunnel to a peer that is not in the room succeeded")
	}
	other := feeds.Address{Key: feeds.FeedRef{8}, Portal: feeds.FeedRef{7}, Transport: feeds.TransportTunnel}
	if _, err := a.conns.dial(ctx, other); err == nil {
		t.Fatal("a tunnel through a room we are not in succeeded")
	}
}

// TestTunnelAndDirectCollapse: one peer, one connection. A dial through
// the room to a peer connected directly returns the direct connection,
// and a direct dial to a peer connected through a tunnel keeps the tunnel.
func TestTunnelAndDirectCollapse(t *testing.T) {
	r := startTestRoom(t, "open")
	edit := func(c *Config) {
		c.Listen = "127.0.0.1:0"
		c.Rooms = []string{r.Address()}
		c.TunnelAccept = TunnelAcceptAnyone
	}
	a, ca := startNodeWith(t, t.TempDir(), edit)
	b, _ := startNodeWith(t, t.TempDir(), edit)
	c, _ := startNodeWith(t, t.TempDir(), edit)
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := statusOf(t, ca)
		if len(st.Rooms) == 1 && len(st.Rooms[0].Attendants) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("attendants: %+v", st.Rooms)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tun := func(id feeds.FeedRef) string {
		return feeds.Address{Key: id, Portal: r.ID(), Transport: feeds.TransportTunnel}.String()
	}
	for _, step := range []struct {
		addr, want string
		peer       *Node
	}{
		{tcpAddr(t, b), "net", b}, {tun(b.ID()), "net", b}, // direct first
		{tun(c.ID()), "tunnel", c}, {tcpAddr(t, c), "tunnel", c}, // tunnel first
	} {
		if err := a.ConnectAddress(ctx, step.addr); err != nil {
			t.Fatalf("connect %s: %v", step.addr, err)
		}
		p := a.conns.peer(step.peer.ID())
		if p == nil || p.transport != step.want {
			t.Fatalf("after connect %s: connection %+v, want one over %s", step.addr, p, step.want)
		}
	}
	// A has exactly the room, B and C; B and C each have the room and A.
	if got := len(a.conns.connected()); got != 3 {
		t.Errorf("A has %d connections, want 3 (room, B, C)", got)
	}
	// (The accepting side registers a connection just after the dialler.)
	for _, n := range []*Node{b, c} {
		deadline := time.Now().Add(5 * time.Second)
		for len(n.conns.connected()) != 2 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := len(n.conns.connected()); got != 2 {
			t.Errorf("%s has %d connections, want 2 (room, A)", n.ID(), got)
		}
	}
}
