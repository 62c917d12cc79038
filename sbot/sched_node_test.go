package sbot

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// dialCounter counts the dials of a node's net transport, per peer.
type dialCounter struct {
	mu sync.Mutex
	n  map[feeds.FeedRef]int
}

func (d *dialCounter) wrap(next dialer) dialer {
	return func(ctx context.Context, a feeds.Address) (net.Conn, ed25519.PublicKey, error) {
		d.mu.Lock()
		d.n[a.Key]++
		d.mu.Unlock()
		return next(ctx, a)
	}
}

func (d *dialCounter) count(id feeds.FeedRef) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[id]
}

// runSchedNode runs a node with opts, counting its TCP dials.
func runSchedNode(t *testing.T, opts Options) (*Node, *dialCounter) {
	t.Helper()
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	dc := &dialCounter{n: map[feeds.FeedRef]int{}}
	n.dialers[""] = dc.wrap(n.dialers[""])
	n.dialers[feeds.TransportNet] = dc.wrap(n.dialers[feeds.TransportNet])
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	return n, dc
}

func publishJSON(t *testing.T, n *Node, content string) {
	t.Helper()
	if _, err := n.writer.Publish(context.Background(), json.RawMessage(content)); err != nil {
		t.Fatal(err)
	}
}

// deadAddr is an address where nothing listens (a peer that is gone).
func deadAddr(t *testing.T) feeds.Address {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	kp, err := feeds.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	return feeds.Address{Host: "127.0.0.1", Port: port, Key: kp.ID, Transport: feeds.TransportNet}
}

func nodeAddr(t *testing.T, n *Node) feeds.Address {
	t.Helper()
	a, err := feeds.ParseAddress(tcpAddr(t, n))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// maxDials is the most dials the back-off allows within d: the first at
// once, each next one at least the shortest back-off (jitter at its
// lowest) after the one before.
func maxDials(p schedPolicy, d time.Duration) int {
	k, at := 1, time.Duration(0)
	for {
		at += p.backoff(k, 0)
		if at > d {
			return k
		}
		k++
	}
}

// TestSchedulerSettles (issue 11): with 20 known peers, of which 5 are
// followed and 3 are dead (one followed), and one more we block, the
// daemon settles on the followed live ones within --max-outgoing, backs
// off the dead ones (the dials are counted), never dials the blocked one,
// rotates the idle others, and reconnects to a followed peer after it
// restarts. The scheduler runs on a fake clock, one step at a time.
func TestSchedulerSettles(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 17 daemons")
	}
	const limit = 6
	clock := &fakeClock{t: time.UnixMilli(1700000000000)}
	cfg := Defaults(t.TempDir())
	cfg.Listen = "off"
	cfg.MaxOutgoing = limit
	a, dials := runSchedNode(t, Options{Config: cfg, Now: clock.Now, Sched: SchedOptions{Seed: 1, Tick: -1}})

	type peer struct {
		addr     feeds.Address
		followed bool
		dead     bool
		blocked  bool
		node     *Node
		stop     func()
		repo     string
	}
	var peers []*peer
	for i := range 17 {
		repo := t.TempDir()
		c := Defaults(repo)
		c.Listen = "127.0.0.1:0"
		n, stop := runNode(t, c)
		p := &peer{addr: nodeAddr(t, n), node: n, stop: stop, repo: repo, followed: i < 4, blocked: i == 16}
		publishJSON(t, n, fmt.Sprintf(`{"type":"post","text":"hello from %d"}`, i))
		peers = append(peers, p)
	}
	for i := range 3 {
		peers = append(peers, &peer{addr: deadAddr(t), dead: true, followed: i == 0})
	}
	// 5 followed (4 live, 1 dead), 12 live others, 2 dead others, 1 blocked.
	for _, p := range peers {
		switch {
		case p.followed:
			publishJSON(t, a, fmt.Sprintf(`{"type":"contact","contact":%q,"following":true}`, p.addr.Key.String()))
		case p.blocked:
			publishJSON(t, a, fmt.Sprintf(`{"type":"contact","contact":%q,"blocking":true}`, p.addr.Key.String()))
		}
	}
	// A friend nobody has: a feed stays missing, so the others are wanted.
	ghost, _ := feedOf(t, 1)
	publishJSON(t, a, fmt.Sprintf(`{"type":"contact","contact":%q,"following":true}`, ghost.ID.String()))
	order := rand.New(rand.NewPCG(7, 7)).Perm(len(peers))
	for _, i := range order {
		a.AddKnown(peers[i].addr, SourcePub)
	}

	s := a.sched
	const tick = 5 * time.Second
	step := func() {
		t.Helper()
		clock.Advance(tick)
		s.step()
		s.settle()
		if out := len(s.outgoing(clock.Now())); out > limit {
			t.Fatalf("%d outgoing connections, limit %d", out, limit)
		}
	}
	connected := func(p *peer) bool { return a.conns.peer(p.addr.Key) != nil }

	const settle = time.Hour
	for range int(settle / tick) {
		step()
	}
	for i, p := range peers {
		n := dials.count(p.addr.Key)
		switch {
		case p.followed && !p.dead:
			if !connected(p) || n != 1 {
				t.Errorf("followed peer %d: connected %v after %d dials, want connected after 1", i, connected(p), n)
			}
		case p.blocked:
			if n != 0 || connected(p) {
				t.Errorf("blocked peer: %d dials, connected %v", n, connected(p))
			}
		case p.dead:
			// The followed dead one is dialled whenever its back-off
			// ends; a dead other when it reaches a slot.
			if bound := maxDials(s.p, settle); n > bound || (p.followed && n < 5) {
				t.Errorf("dead peer %d (followed %v): %d dials in %v, want at most %d (and at least 5 if followed)", i, p.followed, n, settle, bound)
			}
		}
	}
	// The live others took turns in the two free slots.
	others := 0
	for _, p := range peers {
		if !p.followed && !p.dead && !p.blocked && dials.count(p.addr.Key) > 0 {
			others++
		}
	}
	if others <= limit-4 {
		t.Errorf("%d live others were dialled: no rotation", others)
	}
	t.Logf("in %v: dead peers dialled %d (followed), %d and %d times (at most %d each); %d of 12 live others took turns",
		settle, dials.count(peers[17].addr.Key), dials.count(peers[18].addr.Key), dials.count(peers[19].addr.Key), maxDials(s.p, settle), others)
	rep := a.conns.Peers()
	states := map[string]string{}
	for _, k := range rep.Known {
		states[k.ID] = k.State
	}
	if len(rep.Known) != len(peers) {
		t.Errorf("%d known addresses, want %d", len(rep.Known), len(peers))
	}
	for i, p := range peers {
		if p.dead && states[p.addr.Key.String()] != "backoff" && states[p.addr.Key.String()] != "ready" {
			t.Errorf("dead peer %d: state %q", i, states[p.addr.Key.String()])
		}
		if p.blocked && states[p.addr.Key.String()] != "blocked" {
			t.Errorf("blocked peer: state %q", states[p.addr.Key.String()])
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// A followed peer restarts: the daemon backs off while it is down and
	// dials it again once it is back.
	f := peers[0]
	port := strconv.Itoa(f.addr.Port)
	f.stop()
	waitUntil(t, "the daemon to see the followed peer go", func() bool { return !connected(f) })
	before := dials.count(f.addr.Key)
	for range 12 { // a minute down
		step()
	}
	down := dials.count(f.addr.Key) - before
	if down < 2 || down > maxDials(s.p, time.Minute) {
		t.Fatalf("%d dials while the peer was down a minute, want 2 to %d", down, maxDials(s.p, time.Minute))
	}
	c := Defaults(f.repo)
	c.Listen = "127.0.0.1:" + port
	f.node, f.stop = runNode(t, c)
	back := clock.Now()
	for !connected(f) {
		if clock.Now().Sub(back) > s.p.Cap+s.p.EvictAfter+time.Minute {
			t.Fatalf("not reconnected %v after the peer came back", clock.Now().Sub(back))
		}
		step()
	}
	t.Logf("reconnected %v (fake) after the peer came back; %d dials while down", clock.Now().Sub(back), down)
	for _, p := range peers[:4] {
		if !connected(p) {
			t.Errorf("followed peer %s not connected at the end", p.addr.Key)
		}
	}
}
