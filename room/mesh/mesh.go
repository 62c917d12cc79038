// Package mesh joins several room nodes that share one identity and one
// database into one room (issue 16): each node keeps a mesh link to every
// other node, learns the attendants each holds, and forwards a tunnel to
// an attendant held elsewhere one hop, to the node holding it.
//
// Mesh connections use the secret handshake with the mesh key as the
// network key and the room's own key pair on both sides: a node without
// the mesh key fails the handshake, one without the room's secret is
// refused. Over them runs muxrpc with the methods of wire.go.
//
// Each node dials every address of Options.With and keeps that link up
// (reconnecting with back-off); on it, it subscribes to the far node's
// local attendants and pings it. A link that breaks drops that node's
// attendants at once. Every tunnel forwarded gets a mesh connection of its
// own: muxrpc pauses a whole connection when one stream's reader lags, so
// tunnels sharing a link would block each other; on a connection of its
// own a tunnel has TCP's flow control end to end and nothing else waits on
// it.
package mesh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	roomplug "github.com/cask-ssb/cask/plugins/room"
	"github.com/cask-ssb/cask/plugins/tunnel"
	"github.com/cask-ssb/cask/secretstream"
)

// Options configure a node.
type Options struct {
	// Listen is the mesh address ("": accept no mesh connections).
	Listen string
	// Listener, if set, is used instead of listening on Listen.
	Listener net.Listener
	// With lists the other nodes' mesh addresses (HOST:PORT).
	With []string
	Key  Key
	// Identity is the room's key pair, the same on every node.
	Identity feeds.KeyPair
	// Att is the room's attendant set: the node serves its local part
	// and adds the other nodes' attendants to it.
	Att    *roomplug.Attendants
	Logger *slog.Logger
	// RPCLogger is muxrpc's connection-level log (default: Logger).
	RPCLogger *slog.Logger
	// Solutions, if set, completes sign-ins other nodes received
	// solutions for (the web side).
	Solutions Solutions
	// Splice, if set, gives the caps and rate of a tunnel this node
	// forwards to one of its attendants (as for a local tunnel).
	Splice func() tunnel.SpliceOptions
	// MaxForwarded bounds the tunnels other nodes may have open to this
	// node's attendants at once (default 4096); over it: ErrLimit.
	MaxForwarded int
	// PingInterval is how often a link is pinged; a link that does not
	// answer within two intervals is closed (default 2s).
	PingInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait before redialling a node
	// (defaults 100ms and 5s).
	MinBackoff, MaxBackoff time.Duration
	// HandshakeTimeout bounds a mesh handshake (default 10s).
	HandshakeTimeout time.Duration
	// Metrics, if set, is told of mesh events.
	Metrics *Metrics
}

// Node is one room node's side of the mesh.
type Node struct {
	o    Options
	id   string // random, per process: tells this node from the others
	log  *slog.Logger
	mux  *muxrpc.Mux
	m    *Metrics
	ctx  context.Context // Run's; tunnel connections end with it
	fwd  atomic.Int64    // tunnels forwarded to our attendants, open
	addr atomic.Pointer[string]

	mu    sync.Mutex
	links map[string]*link // by far node id
	conns map[net.Conn]struct{}
}

// link is an up mesh link to another node.
type link struct {
	node string
	addr string
	ep   *muxrpc.Endpoint
}

// New checks o and returns a node; Run starts it.
func New(o Options) (*Node, error) {
	if o.Att == nil {
		return nil, errors.New("mesh: no attendant set")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RPCLogger == nil {
		o.RPCLogger = o.Logger
	}
	if o.MaxForwarded <= 0 {
		o.MaxForwarded = 4096
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 2 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(5*time.Second, o.MinBackoff)
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	for _, a := range o.With {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("mesh-with %q: want HOST:PORT: %w", a, err)
		}
	}
	var rb [8]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return nil, fmt.Errorf("mesh: node id: %w", err)
	}
	n := &Node{o: o, id: hex.EncodeToString(rb[:]), log: o.Logger.With("component", "mesh"), m: o.Metrics,
		links: make(map[string]*link), conns: make(map[net.Conn]struct{})}
	if n.m == nil {
		n.m = NewMetrics()
	}
	n.mux = n.services()
	return n, nil
}

// ID is this node's id in the mesh (random, per process).
func (n *Node) ID() string { return n.id }

// Addr is the mesh listener's address once Run listens ("" before, or
// without a listener).
func (n *Node) Addr() string {
	if p := n.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// Links returns the ids of the nodes whose link is up, and their count.
func (n *Node) Links() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.links))
	for id := range n.links {
		out = append(out, id)
	}
	return out
}

// Metrics are the node's series.
func (n *Node) Metrics() *Metrics { return n.m }

// Run listens on Options.Listen, keeps a link to every node of
// Options.With, and serves until ctx ends; then it closes every mesh
// connection. ready, if not nil, is called once listening.
func (n *Node) Run(ctx context.Context, ready func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n.mu.Lock()
	n.ctx = ctx
	n.mu.Unlock()
	var wg sync.WaitGroup
	if n.o.Listen != "" || n.o.Listener != nil {
		l := n.o.Listener
		if l == nil {
			var err error
			if l, err = net.Listen("tcp", n.o.Listen); err != nil {
				return fmt.Errorf("mesh: listen on %s: %w", n.o.Listen, err)
			}
		}
		a := l.Addr().String()
		n.addr.Store(&a)
		n.log.Info("mesh listening", "address", a, "node", n.id)
		wg.Add(1)
		go func() { defer wg.Done(); n.accept(ctx, l) }()
		context.AfterFunc(ctx, func() { l.Close() })
	}
	for _, addr := range n.o.With {
		wg.Add(1)
		go func() { defer wg.Done(); n.keepLink(ctx, addr) }()
	}
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	n.closeConns()
	wg.Wait()
	return nil
}

// Abort closes every mesh connection at once, without a muxrpc goodbye,
// as if the process had died (tests).
func (n *Node) Abort() { n.closeConns() }

func (n *Node) track(c net.Conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ctx != nil && n.ctx.Err() != nil {
		return false
	}
	n.conns[c] = struct{}{}
	return true
}

func (n *Node) untrack(c net.Conn) {
	n.mu.Lock()
	delete(n.conns, c)
	n.mu.Unlock()
}

func (n *Node) closeConns() {
	n.mu.Lock()
	cs := make([]net.Conn, 0, len(n.conns))
	for c := range n.conns {
		cs = append(cs, c)
	}
	n.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// dial opens an authenticated mesh connection to addr.
func (n *Node) dial(ctx context.Context, addr string) (*secretstream.Conn, net.Conn, error) {
	hctx, cancel := context.WithTimeout(ctx, n.o.HandshakeTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(hctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("mesh: dial %s: %w", addr, err)
	}
	if !n.track(raw) {
		raw.Close()
		return nil, nil, ctx.Err()
	}
	sc, err := secretstream.Client(hctx, raw, secretstream.AppKey(n.o.Key), n.o.Identity.Private, n.o.Identity.ID.PublicKey())
	if err != nil {
		n.untrack(raw)
		raw.Close()
		return nil, nil, fmt.Errorf("mesh: handshake with %s (same mesh key and room secret?): %w", addr, err)
	}
	return sc, raw, nil
}

func (n *Node) accept(ctx context.Context, l net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		raw, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				n.log.Error("mesh accept failed", "err", err)
				select {
				case <-time.After(50 * time.Millisecond):
					continue
				case <-ctx.Done():
				}
			}
			return
		}
		if !n.track(raw) {
			raw.Close()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer n.untrack(raw)
			n.serveConn(ctx, raw)
		}()
	}
}

func (n *Node) serveConn(ctx context.Context, raw net.Conn) {
	hctx, cancel := context.WithTimeout(ctx, n.o.HandshakeTimeout)
	own := n.o.Identity.ID.PublicKey()
	sc, err := secretstream.Server(hctx, raw, secretstream.AppKey(n.o.Key), n.o.Identity.Private, func(remote ed25519.PublicKey) error {
		if !own.Equal(remote) {
			return errors.New("mesh: not the room's key")
		}
		return nil
	})
	cancel()
	if err != nil {
		n.m.handshakes.WithLabelValues("failed").Inc()
		n.log.Debug("mesh handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		raw.Close()
		return
	}
	n.m.handshakes.WithLabelValues("ok").Inc()
	ep := muxrpc.NewEndpoint(ctx, sc, n.mux, muxrpc.Options{RemoteKey: sc.RemoteKey(), Logger: n.o.RPCLogger})
	<-ep.Done()
}

// keepLink keeps a control link to addr up until ctx ends.
func (n *Node) keepLink(ctx context.Context, addr string) {
	wait := n.o.MinBackoff
	for ctx.Err() == nil {
		up, err := n.runLink(ctx, addr)
		if errors.Is(err, errSelf) {
			n.log.Warn("mesh-with lists this node itself: not dialling it", "address", addr)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if up {
			wait = n.o.MinBackoff
		}
		n.log.Warn("mesh link down", "address", addr, "err", err, "retry-in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait = min(wait*2, n.o.MaxBackoff)
	}
}

var errSelf = errors.New("mesh: dialled ourselves")

// runLink runs one control link until it breaks. up says it got as far as
// subscribing.
func (n *Node) runLink(ctx context.Context, addr string) (up bool, err error) {
	sc, raw, err := n.dial(ctx, addr)
	if err != nil {
		return false, err
	}
	defer n.untrack(raw)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc := &readClock{Conn: sc}
	rc.touch()
	ep := muxrpc.NewEndpoint(lctx, rc, n.mux, muxrpc.Options{RemoteKey: sc.RemoteKey(), Logger: n.o.RPCLogger})
	defer ep.Close()
	var hb json.RawMessage
	hctx, hcancel := context.WithTimeout(lctx, n.o.HandshakeTimeout)
	err = ep.Async(hctx, &hb, MethodHello, Hello{Node: n.id, Protocol: Protocol})
	hcancel()
	if err != nil {
		return false, fmt.Errorf("mesh.hello to %s: %w", addr, err)
	}
	h, err := ParseHello(hb)
	if err != nil {
		return false, err
	}
	if h.Node == n.id {
		return false, errSelf
	}
	src, err := ep.Source(lctx, MethodAttendants)
	if err != nil {
		return false, fmt.Errorf("mesh.attendants from %s: %w", addr, err)
	}
	l := &link{node: h.Node, addr: addr, ep: ep}
	name := nodeKey(h.Node)
	n.mu.Lock()
	old := n.links[h.Node]
	n.links[h.Node] = l
	n.mu.Unlock()
	if old != nil {
		n.log.Warn("two mesh-with addresses reach the same node", "node", h.Node, "addresses", []string{old.addr, addr})
	}
	n.m.links.Inc()
	n.log.Info("mesh link up", "address", addr, "node", h.Node)
	defer func() {
		n.mu.Lock()
		if n.links[h.Node] == l {
			delete(n.links, h.Node)
		}
		n.mu.Unlock()
		n.o.Att.RemoteDrop(name)
		n.m.links.Dec()
	}()
	go n.pingLoop(lctx, ep, rc, cancel)
	for {
		b, err := src.Next(lctx)
		if err != nil {
			return true, fmt.Errorf("mesh.attendants from %s ended: %w", addr, err)
		}
		ev, err := ParseEvent(b)
		if err != nil {
			return true, err
		}
		switch ev.Kind {
		case EventState:
			n.o.Att.RemoteState(name, ev.IDs)
		case EventJoined:
			n.o.Att.RemoteJoin(name, ev.ID)
		case EventLeft:
			n.o.Att.RemoteLeave(name, ev.ID)
		}
	}
}

// nodeKey names a far node in the attendant set.
func nodeKey(id string) string { return "mesh:" + id }

// pingLoop measures the link's round-trip time and ends the link
// (cancel) when the far node has sent nothing at all, not even the
// answer to a ping, for three intervals. A busy link (a burst of
// attendant events) is alive as long as bytes arrive, however slow the
// ping's answer.
func (n *Node) pingLoop(ctx context.Context, ep *muxrpc.Endpoint, rc *readClock, cancel func()) {
	iv := n.o.PingInterval
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ep.Done():
			cancel()
			return
		case <-t.C:
		}
		start := time.Now()
		pctx, pcancel := context.WithTimeout(ctx, 2*iv)
		var ms int64
		err := ep.Async(pctx, &ms, MethodPing)
		pcancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			n.m.rtt.Observe(time.Since(start).Seconds())
			continue
		}
		if silent := time.Since(rc.lastRead()); silent >= 3*iv {
			n.log.Warn("mesh link: nothing received, closing it", "silent-for", silent.Round(time.Millisecond), "err", err)
			cancel()
			return
		}
	}
}

// readClock records when the connection last read something.
type readClock struct {
	net.Conn
	last atomic.Int64 // unix nanos
}

func (c *readClock) touch() { c.last.Store(time.Now().UnixNano()) }

func (c *readClock) lastRead() time.Time { return time.Unix(0, c.last.Load()) }

func (c *readClock) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	if k > 0 {
		c.touch()
	}
	return k, err
}

// services are what a node serves to the other nodes.
func (n *Node) services() *muxrpc.Mux {
	m := muxrpc.NewMux()
	m.RegisterAsync(MethodHello, func(context.Context, *muxrpc.Request) (any, error) {
		return Hello{Node: n.id, Protocol: Protocol}, nil
	})
	m.RegisterAsync(MethodPing, func(context.Context, *muxrpc.Request) (any, error) {
		return time.Now().UnixMilli(), nil
	})
	m.RegisterSource(MethodAttendants, n.serveAttendants)
	m.RegisterDuplex(MethodConnect, n.serveConnect)
	n.registerSignIn(m)
	return m
}

// serveAttendants sends this node's local attendants, then every change.
func (n *Node) serveAttendants(ctx context.Context, _ *muxrpc.Request, out *muxrpc.Sink) error {
	state, sub := n.o.Att.SubscribeLocal(nil)
	defer sub.Close()
	if err := out.Write(Event{Kind: EventState, IDs: state}); err != nil {
		return nil
	}
	for {
		select {
		case <-sub.Wait():
			for _, ev := range sub.Take() {
				kind := EventLeft
				if ev.Joined {
					kind = EventJoined
				}
				if err := out.Write(Event{Kind: kind, ID: ev.ID}); err != nil {
					return nil
				}
			}
		case <-sub.Dead():
			// The far node fell too far behind: it resubscribes and gets
			// the full list again.
			return errors.New("mesh.attendants: subscriber fell too far behind")
		case <-out.Done():
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// serveConnect is the far end of a forwarded tunnel: it opens
// tunnel.connect on its attendant and splices it with the mesh stream.
func (n *Node) serveConnect(ctx context.Context, req *muxrpc.Request, in *muxrpc.Source, out *muxrpc.Sink) error {
	args, err := ParseConnectArgs(req.Args)
	if err != nil {
		return err
	}
	ep, ok := n.o.Att.Lookup(args.Target)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotHere, args.Target)
	}
	if n.fwd.Add(1) > int64(n.o.MaxForwarded) {
		n.fwd.Add(-1)
		return fmt.Errorf("%w: at most %d forwarded tunnels to this node", ErrLimit, n.o.MaxForwarded)
	}
	defer n.fwd.Add(-1)
	bIn, bOut, err := ep.Duplex(ctx, muxrpc.Method{"tunnel", "connect"},
		map[string]string{"origin": args.Origin.String(), "portal": n.o.Identity.ID.String(), "target": args.Target.String()})
	if err != nil {
		return fmt.Errorf("%w: %s", ErrGone, args.Target)
	}
	if err := out.Write(openItem{Type: "open"}); err != nil {
		_ = bIn.Close()
		return nil
	}
	n.m.tunnels.WithLabelValues("in").Inc()
	var so tunnel.SpliceOptions
	if n.o.Splice != nil {
		so = n.o.Splice()
	}
	count := so.Count
	so.Count = func(k int) {
		n.m.bytes.Add(float64(k))
		if count != nil {
			count(k)
		}
	}
	nb, err := tunnel.Splice(ctx, in, out, bIn, bOut, so)
	n.log.Debug("forwarded tunnel closed", "origin", args.Origin.String(), "target", args.Target.String(), "bytes", nb, "err", err)
	return nil
}

// Forward opens a tunnel from origin to target, an attendant of another
// node, on a mesh connection of its own; it is tunnel.ServerOptions.Forward.
// It tries each node that holds target; the error says why none took it
// (ErrNotHere when no node holds it).
func (n *Node) Forward(ctx context.Context, origin, target feeds.FeedRef) (*muxrpc.Source, *muxrpc.Sink, func(), error) {
	holders := n.o.Att.Holders(target)
	errs := []error{fmt.Errorf("%w: no node holds %s", ErrNotHere, target)}
	for _, h := range holders {
		node := h[len("mesh:"):]
		n.mu.Lock()
		l := n.links[node]
		n.mu.Unlock()
		if l == nil {
			continue
		}
		src, snk, done, err := n.forwardTo(ctx, l.addr, origin, target)
		if err == nil {
			n.m.tunnels.WithLabelValues("out").Inc()
			return src, snk, done, nil
		}
		errs = append(errs, err)
		if errors.Is(err, ErrLimit) {
			break
		}
	}
	if len(errs) > 1 {
		errs = errs[1:]
	}
	n.m.failed.Inc()
	return nil, nil, nil, errors.Join(errs...)
}

func (n *Node) forwardTo(ctx context.Context, addr string, origin, target feeds.FeedRef) (*muxrpc.Source, *muxrpc.Sink, func(), error) {
	n.mu.Lock()
	base := n.ctx
	n.mu.Unlock()
	if base == nil {
		return nil, nil, nil, errors.New("mesh: not running")
	}
	sc, raw, err := n.dial(ctx, addr)
	if err != nil {
		return nil, nil, nil, err
	}
	ep := muxrpc.NewEndpoint(base, sc, nil, muxrpc.Options{RemoteKey: sc.RemoteKey(), Logger: n.o.RPCLogger, MaxStreams: 4})
	done := func() { _ = ep.Close(); n.untrack(raw) }
	src, snk, err := ep.Duplex(ctx, MethodConnect, map[string]string{"origin": origin.String(), "target": target.String()})
	if err != nil {
		done()
		return nil, nil, nil, fmt.Errorf("mesh.connect to %s: %w", addr, err)
	}
	octx, cancel := context.WithTimeout(ctx, n.o.HandshakeTimeout)
	first, err := src.Next(octx)
	cancel()
	if err == nil {
		err = parseOpen(first)
	} else {
		err = failure(err)
	}
	if err != nil {
		done()
		return nil, nil, nil, fmt.Errorf("mesh.connect to %s: %w", addr, err)
	}
	return src, snk, done, nil
}
