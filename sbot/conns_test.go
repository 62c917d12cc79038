package sbot

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/sbot/client"
)

// runNode serves a node on cfg until stop is called (or the test ends).
func runNode(t *testing.T, cfg Config) (n *Node, stop func()) {
	t.Helper()
	n, err := New(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	return n, stop
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitFor(t, 15*time.Second, what, cond)
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// peersOf counts n's connections with id.
func peersOf(n *Node, id feeds.FeedRef) int {
	k := 0
	for _, p := range n.Status().Peers {
		if p.ID == id.String() {
			k++
		}
	}
	return k
}

// legacyAddr writes a node's address in the legacy HOST:PORT:@KEY form.
func legacyAddr(t *testing.T, n *Node) string {
	t.Helper()
	a, err := feeds.ParseAddress(tcpAddr(t, n))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s:%d:%s", a.Host, a.Port, a.Key.String())
}

// TestOneConnectionPerPeer (issue 8.1): repeated and concurrent dials to a
// connected peer, in either address form, and the peer dialling back, all
// end with exactly one connection on each side.
func TestOneConnectionPerPeer(t *testing.T) {
	a, _ := startNode(t)
	b, _ := startNode(t)
	ctx := context.Background()
	if err := a.ConnectAddress(ctx, tcpAddr(t, b)); err != nil {
		t.Fatal(err)
	}
	first := a.conns.peer(b.ID())
	if first == nil {
		t.Fatal("no connection after ConnectAddress returned")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := tcpAddr(t, b)
			if i%2 == 1 {
				addr = legacyAddr(t, b)
			}
			errs <- a.ConnectAddress(ctx, addr)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("second dial: %v", err)
		}
	}
	if got := a.conns.peer(b.ID()); got != first {
		t.Fatal("a second dial replaced the existing connection")
	}
	// B dials A while they are connected: still one connection.
	if err := b.ConnectAddress(ctx, legacyAddr(t, a)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let any duplicate register
	if k := peersOf(a, b.ID()); k != 1 {
		t.Fatalf("A has %d connections with B, want 1", k)
	}
	if k := peersOf(b, a.ID()); k != 1 {
		t.Fatalf("B has %d connections with A, want 1", k)
	}
}

// TestSimultaneousDial: both sides dial each other at once; both end with
// the same single connection (the one dialled by the smaller key).
func TestSimultaneousDial(t *testing.T) {
	for round := range 5 {
		a, _ := startNode(t)
		b, _ := startNode(t)
		ctx := context.Background()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); a.ConnectAddress(ctx, tcpAddr(t, b)) }()
		go func() { defer wg.Done(); b.ConnectAddress(ctx, tcpAddr(t, a)) }()
		wg.Wait()
		waitUntil(t, "one connection each side", func() bool {
			ca, cb := a.conns.peer(b.ID()), b.conns.peer(a.ID())
			return ca != nil && cb != nil && ca.direction != cb.direction && peersOf(a, b.ID()) == 1
		})
		time.Sleep(200 * time.Millisecond)
		ca, cb := a.conns.peer(b.ID()), b.conns.peer(a.ID())
		if ca == nil || cb == nil || ca.direction == cb.direction {
			t.Fatalf("round %d: connections do not match: %v %v", round, ca, cb)
		}
	}
}

// TestBlockEndsConnection (issue 8.2): blocking a connected peer ends the
// connection at once, its new messages are not stored even when another
// peer relays them, it cannot reconnect, and it gets none of our new
// messages.
func TestBlockEndsConnection(t *testing.T) {
	a, ca := startNode(t)
	b, cb := startNode(t)
	c, _ := startNode(t)
	ctx := context.Background()
	post := func(cl *client.Client, text string) {
		t.Helper()
		if _, err := cl.Publish(ctx, map[string]any{"type": "post", "text": text}); err != nil {
			t.Fatal(err)
		}
	}
	post(cb, "b1")
	post(ca, "a1")
	// C relays B's feed: B-C, and A-B, A-C.
	for _, pair := range [][2]*Node{{c, b}, {a, b}, {a, c}} {
		if err := pair[0].ConnectAddress(ctx, tcpAddr(t, pair[1])); err != nil {
			t.Fatal(err)
		}
	}
	waitLatest(t, a, b.ID(), 1)
	waitLatest(t, b, a.ID(), 1)
	waitLatest(t, c, b.ID(), 1)
	if _, err := ca.Publish(ctx, map[string]any{"type": "contact", "contact": b.ID().String(), "blocking": true}); err != nil {
		t.Fatal(err)
	}
	blockSeq, _, _, _ := a.Store().Latest(a.ID())
	waitUntil(t, "A to drop B", func() bool { return a.conns.peer(b.ID()) == nil && b.conns.peer(a.ID()) == nil })
	post(cb, "b2") // reaches C, which still replicates with A
	waitLatest(t, c, b.ID(), 2)
	// C would relay our feed to B: only A's own connection matters here.
	if _, err := c.conns.Disconnect(ctx, b.ID().String(), false); err != nil {
		t.Fatal(err)
	}
	post(ca, "a2")
	if err := b.ConnectAddress(ctx, tcpAddr(t, a)); err == nil {
		t.Error("a blocked peer could connect again")
	}
	time.Sleep(time.Second)
	if seq, _, _, _ := a.Store().Latest(b.ID()); seq != 1 {
		t.Errorf("A stored B's feed up to %d after blocking B, want 1", seq)
	}
	// B may have got the block message itself, nothing after it.
	if seq, _, _, _ := b.Store().Latest(a.ID()); seq > blockSeq {
		t.Errorf("B got A's feed up to %d after A blocked B at %d", seq, blockSeq)
	}
}

// TestMaxConnsBurst (issue 9.3): 200 concurrent handshakes never exceed
// --max-conns, anonymous peers get only their share and are told the
// daemon is full; a followed peer still gets in, evicting the
// longest-idle anonymous peer.
func TestMaxConnsBurst(t *testing.T) {
	const max = 8
	n, c := startNodeWith(t, t.TempDir(), func(cfg *Config) { cfg.MaxConns = max })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	friend, _ := feeds.GenerateKeyPair(nil)
	if _, err := c.Publish(ctx, map[string]any{"type": "contact", "contact": friend.ID.String(), "following": true}); err != nil {
		t.Fatal(err)
	}
	caps, _ := Defaults("").CapsKey()
	addr := tcpAddr(t, n)
	var (
		mu   sync.Mutex
		in   []*client.Client
		full atomic.Int32 // told "server full"
		// handshakes that timed out on a loaded machine: they never got in
		// either (handshake floods are issue 9.1's business)
		shsFailed atomic.Int32
		closed    atomic.Int32 // closed before their call was answered (slow client)
		other     []error
		wg        sync.WaitGroup
		release   = make(chan struct{})
	)
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kp, _ := feeds.GenerateKeyPair(nil)
			cl, err := client.DialTCP(ctx, addr, kp, caps)
			if err != nil && strings.Contains(err.Error(), "handshake") {
				shsFailed.Add(1)
				return
			}
			if err != nil {
				mu.Lock()
				other = append(other, err)
				mu.Unlock()
				return
			}
			var has bool
			err = cl.Endpoint().Async(ctx, &has, muxrpc.Method{"blobs", "has"}, "&"+strings.Repeat("A", 43)+"=.sha256")
			switch {
			case err == nil:
				mu.Lock()
				in = append(in, cl)
				mu.Unlock()
				<-release
				return
			case IsFull(err):
				full.Add(1)
			case errors.Is(err, muxrpc.ErrClosed):
				closed.Add(1)
			default:
				mu.Lock()
				other = append(other, err)
				mu.Unlock()
			}
			cl.Close()
		}()
	}
	// 200 handshakes on a busy 2-core machine under -race: allow time.
	waitFor(t, 50*time.Second, "every dial to be answered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(in)+int(full.Load()+closed.Load()+shsFailed.Load())+len(other) == 200
	})
	anonMax := n.conns.anonMax
	if len(in) != anonMax || full.Load() == 0 || len(other) != 0 {
		t.Fatalf("%d in, %d told full, %d closed, %d handshakes timed out, other errors %v; want %d in (the anonymous share of %d), the rest told full", len(in), full.Load(), closed.Load(), shsFailed.Load(), other, anonMax, max)
	}
	t.Logf("%d in, %d told full, %d closed before they called, %d handshakes timed out", len(in), full.Load(), closed.Load(), shsFailed.Load())
	if p := n.conns.peakPeers(); p > max {
		t.Fatalf("peak of %d connections with --max-conns %d", p, max)
	}
	// Fill the reserved slots with followed peers (the owner's own dials
	// count as such), then the friend arrives: an idle anonymous peer is
	// evicted for it.
	var extra []*Node
	for range max - anonMax {
		x, _ := startNode(t)
		extra = append(extra, x)
		if err := n.ConnectAddress(ctx, tcpAddr(t, x)); err != nil {
			t.Fatal(err)
		}
	}
	if k := len(n.conns.connected()); k != max {
		t.Fatalf("%d connected, want %d", k, max)
	}
	fc, err := client.DialTCP(ctx, addr, friend, caps)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	var has bool
	if err := fc.Endpoint().Async(ctx, &has, muxrpc.Method{"blobs", "has"}, "&"+strings.Repeat("A", 43)+"=.sha256"); err != nil {
		t.Fatalf("a followed peer was refused by a full daemon: %v", err)
	}
	evicted := 0
	waitUntil(t, "an anonymous peer to be evicted", func() bool {
		evicted = 0
		for _, cl := range in {
			select {
			case <-cl.Endpoint().Done():
				evicted++
			default:
			}
		}
		return evicted >= 1
	})
	time.Sleep(100 * time.Millisecond)
	if k := len(n.conns.connected()); k > max || evicted != 1 {
		t.Fatalf("%d connected, %d evicted; want at most %d and 1", k, evicted, max)
	}
	if p := n.conns.peakPeers(); p > max {
		t.Fatalf("peak of %d connections with --max-conns %d", p, max)
	}
	close(release)
	for _, cl := range in {
		cl.Close()
	}
	wg.Wait()
}

// TestConnectToFullPeer: the owner's connect to a full daemon fails with
// the peer's "server full", not with an opaque handshake error.
func TestConnectToFullPeer(t *testing.T) {
	b, _ := startNodeWith(t, t.TempDir(), func(cfg *Config) { cfg.MaxConns = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	caps, _ := Defaults("").CapsKey()
	kp, _ := feeds.GenerateKeyPair(nil)
	filler, err := client.DialTCP(ctx, tcpAddr(t, b), kp, caps)
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()
	var has bool
	if err := filler.Endpoint().Async(ctx, &has, muxrpc.Method{"blobs", "has"}, "&"+strings.Repeat("A", 43)+"=.sha256"); err != nil {
		t.Fatal(err)
	}
	a, _ := startNode(t)
	err = a.ConnectAddress(ctx, tcpAddr(t, b))
	if !IsFull(err) || !strings.Contains(err.Error(), "max-conns 1") {
		t.Fatalf("connect to a full peer = %v, want its server full error", err)
	}
	waitUntil(t, "A to drop the refused connection", func() bool { return a.conns.peer(b.ID()) == nil })
}

// flakyListener fails its Accepts while fail is set.
type flakyListener struct {
	net.Listener
	fail *atomic.Bool
}

func (f flakyListener) Accept() (net.Conn, error) {
	if f.fail.Load() {
		return nil, errors.New("injected accept failure")
	}
	return f.Listener.Accept()
}

// TestListenerSupervised: a listener whose Accept fails is reopened; one
// that cannot be reopened stops the daemon with an error.
func TestListenerSupervised(t *testing.T) {
	newNode := func(t *testing.T, open func() (net.Listener, error)) (*Node, chan error, context.CancelFunc) {
		cfg := Defaults(t.TempDir())
		cfg.Listen = "off"
		n, err := New(Options{Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		n.listeners = append(n.listeners, &listener{
			name:     "fake",
			open:     open,
			accepted: func(c net.Conn) (ed25519.PublicKey, string, error) { return nil, "", errors.New("unused") },
			address:  func(l net.Listener) string { return "fake:" + l.Addr().String() },
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Serve(ctx) }()
		return n, done, cancel
	}
	t.Run("restarted", func(t *testing.T) {
		var opens atomic.Int32
		var fail atomic.Bool
		fail.Store(true)
		n, done, cancel := newNode(t, func() (net.Listener, error) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if opens.Add(1) > 1 {
				fail.Store(false)
			}
			return flakyListener{l, &fail}, err
		})
		<-n.Ready()
		waitUntil(t, "the failed listener to be reopened", func() bool { return opens.Load() == 2 })
		select {
		case err := <-done:
			t.Fatalf("the daemon stopped: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("stops the daemon", func(t *testing.T) {
		var opens atomic.Int32
		var fail atomic.Bool
		fail.Store(true)
		_, done, cancel := newNode(t, func() (net.Listener, error) {
			if opens.Add(1) > 1 {
				return nil, errors.New("injected listen failure")
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			return flakyListener{l, &fail}, err
		})
		defer cancel()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "could not be restarted") {
				t.Fatalf("serve = %v, want the listener failure", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the daemon kept running without its listener")
		}
	})
}

// TestRememberedPeerRedialled: connect --remember stores the peer in
// REPO/peers.json; after a restart the node dials it again, and
// disconnect --forget removes it.
func TestRememberedPeerRedialled(t *testing.T) {
	b, _ := startNode(t)
	repo := t.TempDir()
	cfg := Defaults(repo)
	cfg.Listen = "off"
	a, stop := runNode(t, cfg)
	ctx := context.Background()
	if err := a.conns.ConnectAddress(ctx, legacyAddr(t, b), true); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(peersFilePath(repo))
	if err != nil || !strings.Contains(string(data), tcpAddr(t, b)) {
		t.Fatalf("peers.json = %s, %v", data, err)
	}
	waitUntil(t, "B to see A", func() bool { return peersOf(b, a.ID()) == 1 })
	stop()
	waitUntil(t, "B to see A leave", func() bool { return peersOf(b, a.ID()) == 0 })

	a2, _ := runNode(t, cfg)
	waitUntil(t, "A to redial the remembered B after a restart", func() bool { return peersOf(b, a2.ID()) == 1 })
	waitUntil(t, "B's state to be connected", func() bool {
		rep := a2.conns.Peers()
		return len(rep.Configured) == 1 && rep.Configured[0].State == "connected"
	})
	rep := a2.conns.Peers()
	if len(rep.Configured) != 1 || rep.Configured[0].Source != "remembered" || rep.Configured[0].State != "connected" {
		t.Fatalf("configured peers = %+v", rep.Configured)
	}
	was, err := a2.conns.Disconnect(ctx, b.ID().String(), true)
	if err != nil || !was {
		t.Fatalf("disconnect = %v, %v", was, err)
	}
	waitUntil(t, "B to see A leave", func() bool { return peersOf(b, a2.ID()) == 0 })
	if rep := a2.conns.Peers(); len(rep.Configured) != 0 {
		t.Fatalf("configured peers after forget = %+v", rep.Configured)
	}
	var r peersFile
	data, _ = os.ReadFile(peersFilePath(repo))
	if err := json.Unmarshal(data, &r); err != nil || len(r.Peers) != 0 {
		t.Fatalf("peers.json after forget = %s, %v", data, err)
	}
}
