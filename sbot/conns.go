package sbot

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
)

// The connection manager owns every connection of the node, whatever its
// transport: it admits a new connection (one per peer, within
// --max-conns, atomically), starts the services' OnConnect hooks in
// goroutines owned by that connection and waits for all of them (and for
// the calls the peer made) before the connection is gone. It keeps the
// configured and remembered peers connected, with back-off, and at
// shutdown says goodbye to every peer in parallel.

// ErrFull is how a full daemon refuses a peer: the handshake succeeds,
// then every call of the peer is answered with this error text and the
// connection is closed, so the peer can tell "full" from a wrong key or
// being blocked (both refused during the handshake).
var ErrFull = errors.New("server full")

// errClosing: the node is shutting down.
var errClosing = errors.New("sbot: shutting down")

// IsFull reports whether err is a peer's "server full" refusal.
func IsFull(err error) bool {
	var ce *muxrpc.CallError
	if errors.As(err, &ce) {
		return strings.HasPrefix(ce.Message, ErrFull.Error())
	}
	return errors.Is(err, ErrFull)
}

// peerClass decides who gets a slot when the node is full.
type peerClass int

const (
	classAnonymous peerClass = iota
	// classFollowed: a feed we follow, a configured or remembered peer, or
	// a peer we dialled ourselves.
	classFollowed
	// classOwner: the unix socket, or our own key over TCP. Never
	// refused, never counted.
	classOwner
)

func (c peerClass) String() string {
	return [...]string{"anonymous", "followed", "owner"}[c]
}

// young: two connections with the same peer opened within this long are a
// simultaneous dial, resolved the same way on both sides.
const young = 5 * time.Second

// conn is one connection. It implements service.Peer.
type conn struct {
	id        feeds.FeedRef
	class     peerClass
	address   string
	transport string // "net", "unix", ...
	direction string // "in", "out" ("in" for the unix socket)
	since     time.Time
	e         *muxrpc.Endpoint
	log       *slog.Logger
	lastCall  atomic.Int64 // unix ns of the peer's latest call
	calls     gate         // the peer's calls being served

	callsMu  sync.Mutex
	called   map[string]bool // method names the peer called (first 64)
	callWake chan struct{}   // closed and replaced when called grows

	reason atomic.Pointer[string] // why we closed it
	// repl is the replication kind (ebt, legacy), set once it is known:
	// the one "peer connected" line at info is logged then.
	repl atomic.Pointer[string]
}

// replicating records the connection's replication kind and logs the
// one "peer connected" line at info; later calls do nothing.
func (c *conn) replicating(kind string) {
	if c.repl.CompareAndSwap(nil, &kind) {
		c.log.Info("peer connected", "direction", c.direction, "transport", c.transport, "class", c.class.String(), "replication", kind)
	}
}

func (c *conn) ID() feeds.FeedRef                { return c.id }
func (c *conn) Endpoint() *muxrpc.Endpoint       { return c.e }
func (c *conn) Dialled() bool                    { return c.direction == "out" }
func (c *conn) idle(now time.Time) time.Duration { return now.Sub(time.Unix(0, c.lastCall.Load())) }

// WaitCall implements service.Peer.
func (c *conn) WaitCall(ctx context.Context, names ...string) (string, error) {
	for {
		c.callsMu.Lock()
		for _, nm := range names {
			if c.called[nm] {
				c.callsMu.Unlock()
				return nm, nil
			}
		}
		wake := c.callWake
		c.callsMu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return "", ctx.Err()
		case <-c.e.Done():
			return "", muxrpc.ErrClosed
		}
	}
}

func (c *conn) noteCall(name string) {
	c.callsMu.Lock()
	defer c.callsMu.Unlock()
	if c.called[name] || len(c.called) >= 64 {
		return
	}
	c.called[name] = true
	close(c.callWake)
	c.callWake = make(chan struct{})
}

// gate counts running calls and, once closed, lets no new one in, so
// that closeAndWait really waits for all of them.
type gate struct {
	mu     sync.Mutex
	n      int
	closed bool
	zero   chan struct{}
}

func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.n == 0 && g.zero != nil {
		close(g.zero)
		g.zero = nil
	}
}

func (g *gate) closeAndWait() {
	g.mu.Lock()
	g.closed = true
	if g.n == 0 {
		g.mu.Unlock()
		return
	}
	z := make(chan struct{})
	g.zero = z
	g.mu.Unlock()
	<-z
}

// dialCall is a dial in progress; a second dial to the same peer waits
// for it instead of opening another connection.
type dialCall struct {
	done chan struct{}
	c    *conn
	err  error
}

type connManager struct {
	n   *Node
	log *slog.Logger
	// max bounds connections with remote peers (owner connections are not
	// counted); anonMax is the anonymous peers' share of it.
	max, anonMax int

	mu      sync.Mutex
	life    context.Context // while the node serves
	peers   map[feeds.FeedRef]*conn
	owners  map[*conn]struct{}
	dials   map[feeds.FeedRef]*dialCall
	targets map[feeds.FeedRef]*target
	peak    int // most peers connected at once (tests)
	closed  bool
	wg      sync.WaitGroup // connections, refusals, closes and keepers
}

func newConnManager(n *Node) (*connManager, error) {
	max := n.cfg.MaxConns
	if max <= 0 {
		return nil, fmt.Errorf("max-conns %d: want a positive number", max)
	}
	reserve := max / 4
	if reserve == 0 && max >= 2 {
		reserve = 1
	}
	return &connManager{
		n: n, log: n.log, max: max, anonMax: max - reserve,
		peers: map[feeds.FeedRef]*conn{}, owners: map[*conn]struct{}{},
		dials: map[feeds.FeedRef]*dialCall{}, targets: map[feeds.FeedRef]*target{},
	}, nil
}

// start begins serving: connections live as long as ctx. It starts the
// keepers of the configured and remembered peers.
func (m *connManager) start(ctx context.Context) error {
	m.mu.Lock()
	m.life = ctx
	m.mu.Unlock()
	for _, p := range m.n.cfg.Peers {
		a, err := feeds.ParseAddress(p)
		if err != nil {
			return fmt.Errorf("peers: %w", err)
		}
		m.n.addrs.AddKnown(a, SourceConfig)
		m.keep(a, "config")
	}
	remembered, err := m.loadRemembered()
	if err != nil {
		return err
	}
	for _, a := range remembered {
		m.keep(a, "remembered")
	}
	return nil
}

// classify says which slots a peer may take.
func (m *connManager) classify(id feeds.FeedRef, direction string) peerClass {
	switch {
	case id == m.n.keys.ID:
		return classOwner
	case direction == "out", m.n.graph.Follows(m.n.keys.ID, id):
		return classFollowed
	}
	m.mu.Lock()
	_, configured := m.targets[id]
	m.mu.Unlock()
	if configured {
		return classFollowed
	}
	return classAnonymous
}

// admission is the decision on a new connection.
type admission struct {
	existing *conn // a duplicate: keep existing, close the new one
	closeOld *conn // the new connection replaces (or evicts) this one
	full     bool
}

// admitLocked decides on c and registers it when admitted: the limit check
// and the registration happen under one lock, so concurrent handshakes
// can never exceed max.
func (m *connManager) admitLocked(c *conn) admission {
	if c.class == classOwner {
		m.owners[c] = struct{}{}
		return admission{}
	}
	if old := m.peers[c.id]; old != nil {
		if m.keepOld(old, c) {
			return admission{existing: old}
		}
		m.peers[c.id] = c
		return admission{closeOld: old}
	}
	total, anon := len(m.peers), 0
	for _, p := range m.peers {
		if p.class == classAnonymous {
			anon++
		}
	}
	var adm admission
	switch {
	case total < m.max && (c.class != classAnonymous || anon < m.anonMax):
	case c.class != classAnonymous && anon > 0:
		// Full: a followed peer takes the slot of the longest-idle
		// anonymous one.
		now := m.n.now()
		var victim *conn
		for _, p := range m.peers {
			if p.class == classAnonymous && (victim == nil || p.idle(now) > victim.idle(now)) {
				victim = p
			}
		}
		delete(m.peers, victim.id)
		adm.closeOld = victim
	default:
		return admission{full: true}
	}
	m.peers[c.id] = c
	m.peak = max(m.peak, len(m.peers))
	return adm
}

// keepOld resolves two connections with one peer. Within a simultaneous
// dial (both young) the one dialled by the smaller key wins, on both
// sides alike. Otherwise a second dial of ours keeps the existing
// connection, and a new dial of the peer replaces the old one (the peer
// lost it, e.g. it restarted).
func (m *connManager) keepOld(old, c *conn) bool {
	now := m.n.now()
	if old.direction != c.direction && now.Sub(old.since) < young {
		dialer := func(x *conn) feeds.FeedRef {
			if x.direction == "out" {
				return m.n.keys.ID
			}
			return x.id
		}
		a, b := dialer(old), dialer(c)
		return bytes.Compare(a[:], b[:]) < 0
	}
	return c.direction == "out"
}

// accept takes a connection whose handshake is done (remote nil: the
// unix socket, which is the owner's) and returns the connection that now
// serves that peer: c, or the one it duplicates.
func (m *connManager) accept(raw net.Conn, remote ed25519.PublicKey, address, transport, direction string) (*conn, error) {
	id := m.n.keys.ID
	if remote != nil {
		id = refOf(remote)
	}
	now := m.n.now()
	c := &conn{
		id: id, class: m.classify(id, direction), address: address, transport: transport,
		direction: direction, since: now, called: map[string]bool{}, callWake: make(chan struct{}),
	}
	c.lastCall.Store(now.UnixNano())
	c.log = m.log.With("addr", address)
	if c.class != classOwner {
		c.log = c.log.With("peer", id.String())
	}
	m.mu.Lock()
	life := m.life
	if m.closed || life == nil {
		m.mu.Unlock()
		raw.Close()
		return nil, errClosing
	}
	adm := m.admitLocked(c)
	switch {
	case adm.existing != nil:
		m.mu.Unlock()
		c.log.Debug("second connection with a connected peer: keeping the first", "direction", direction)
		m.refuse(life, raw, remote, "already connected")
		return adm.existing, nil
	case adm.full:
		total := len(m.peers)
		m.mu.Unlock()
		m.log.Warn("refused connection: too many peers", "peer", id.String(), "class", c.class.String(), "connected", total, "max", m.max, "anonymousMax", m.anonMax)
		m.refuse(life, raw, remote, fmt.Sprintf("%s: %d peers connected (max-conns %d)", ErrFull, total, m.max))
		return nil, fmt.Errorf("%w: %d peers connected (max-conns %d)", ErrFull, total, m.max)
	}
	opts := muxrpc.Options{
		Logger:     c.log.With("component", "muxrpc"),
		MaxStreams: m.n.cfg.MaxStreams,
		RemoteKey:  remote,
	}
	if remote != nil {
		opts = m.n.limits.muxrpcOptions(opts) // peers over the network
	} else {
		// The unix socket is the owner's: a script may pause reading
		// (`sbot log | less`) as long as it likes.
		opts.WriteTimeout, opts.PacketTimeout = -1, -1
	}
	c.e = muxrpc.NewEndpoint(life, raw, m.handler(c), opts)
	m.wg.Add(1)
	m.mu.Unlock()
	go m.run(life, c, adm.closeOld)
	return c, nil
}

// handler serves the peer's calls through the node's mux, counting them
// so the connection can wait for them.
func (m *connManager) handler(c *conn) muxrpc.Handler {
	debug := c.log.Enabled(context.Background(), slog.LevelDebug)
	return muxrpc.HandlerFunc(func(ctx context.Context, req *muxrpc.Request) {
		if !c.calls.enter() {
			_ = req.Fail(muxrpc.ErrClosed)
			return
		}
		defer c.calls.leave()
		c.lastCall.Store(m.n.now().UnixNano())
		c.noteCall(req.Method.String())
		if debug {
			c.log.Debug("call", "method", req.Method.String(), "type", req.Type, "args", string(req.Args))
		}
		m.n.mux.HandleCall(ctx, req)
	})
}

// refuseWindow is how long a refused connection waits for the peer's
// first call, to answer it with the reason.
const refuseWindow = 5 * time.Second

// refuse answers every call of a connection we do not keep with reason,
// then closes it: after the first answer, or after refuseWindow.
func (m *connManager) refuse(life context.Context, raw net.Conn, remote ed25519.PublicKey, reason string) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		var calls gate
		answered := make(chan struct{}, 1)
		h := muxrpc.HandlerFunc(func(ctx context.Context, req *muxrpc.Request) {
			if !calls.enter() {
				return
			}
			defer calls.leave()
			_ = req.Fail(errors.New(reason))
			select {
			case answered <- struct{}{}:
			default:
			}
		})
		e := muxrpc.NewEndpoint(life, raw, h, muxrpc.Options{RemoteKey: remote, MaxStreams: 4})
		t := time.NewTimer(refuseWindow)
		select {
		case <-answered:
			// Let the answer reach the peer before the goodbye.
			select {
			case <-time.After(100 * time.Millisecond):
			case <-e.Done():
			}
		case <-t.C:
		case <-e.Done():
		}
		t.Stop()
		e.Close()
		calls.closeAndWait()
	}()
}

// run owns a connection: it starts the OnConnect hooks of every service
// and, once the connection ends (context.AfterFunc: nothing waits while it
// is open), waits for every goroutine it started and every call being
// served, and unregisters it.
func (m *connManager) run(ctx context.Context, c *conn, old *conn) {
	if old != nil {
		reason := "replaced by a new connection from the same peer"
		if old.id != c.id {
			reason = "evicted: the longest-idle anonymous peer, for a followed peer"
		}
		m.close(old, reason)
	}
	if c.class == classOwner {
		c.log.Debug("owner connected", "transport", c.transport)
	} else {
		c.log.Debug("connection open", "direction", c.direction, "transport", c.transport, "class", c.class.String())
	}
	hctx, cancel := context.WithCancel(ctx)
	var g errgroup.Group
	if c.class != classOwner {
		for _, s := range m.n.services {
			if s.OnConnect != nil {
				g.Go(func() error {
					s.OnConnect(hctx, c)
					return nil
				})
			}
		}
	}
	// The rest runs when the connection ends, on a goroutine of its own
	// then: no goroutine waits for the end of an idle connection.
	context.AfterFunc(c.e.Context(), func() {
		defer m.wg.Done()
		cancel()
		c.e.Close() // waits for the read loop: no new calls after this
		_ = g.Wait()
		c.calls.closeAndWait()
		m.ended(c)
	})
}

// ended unregisters a connection that ended and logs it.
func (m *connManager) ended(c *conn) {

	m.mu.Lock()
	if m.peers[c.id] == c {
		delete(m.peers, c.id)
	}
	delete(m.owners, c)
	m.mu.Unlock()
	if c.class == classOwner {
		c.log.Debug("owner disconnected")
		return
	}
	repl := "none"
	if r := c.repl.Load(); r != nil {
		repl = *r
	}
	attrs := []any{"direction", c.direction, "replication", repl, "duration", time.Since(c.since).Round(time.Second)}
	if r := c.reason.Load(); r != nil {
		attrs = append(attrs, "reason", *r)
	} else if err := c.e.Err(); err != nil {
		attrs = append(attrs, "err", err)
	}
	c.log.Info("peer disconnected", attrs...)
}

// close ends c (goodbye included) in the background, noting why.
func (m *connManager) close(c *conn, reason string) {
	c.reason.CompareAndSwap(nil, &reason)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		c.e.Close()
	}()
}

// dropPeer closes the connection with peer, if any; it reports whether
// there was one. It returns once the goodbye is sent (or timed out).
func (m *connManager) dropPeer(peer feeds.FeedRef, reason string) bool {
	m.mu.Lock()
	c := m.peers[peer]
	m.mu.Unlock()
	if c == nil {
		return false
	}
	c.reason.CompareAndSwap(nil, &reason)
	c.e.Close()
	return true
}

// peakPeers is the most peers connected at once so far.
func (m *connManager) peakPeers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peak
}

// connected lists the connections with remote peers, oldest first.
func (m *connManager) connected() []*conn {
	m.mu.Lock()
	out := make([]*conn, 0, len(m.peers))
	for _, c := range m.peers {
		out = append(out, c)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].since.Before(out[j].since) })
	return out
}

// peer returns the connection with id, if any.
func (m *connManager) peer(id feeds.FeedRef) *conn {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peers[id]
}

// dial connects to a: it returns the existing connection when that peer
// is connected (whatever the address form or transport), joins a dial to
// it in progress, or dials with the transport's dialer.
func (m *connManager) dial(ctx context.Context, a feeds.Address) (c *conn, err error) {
	if a.Key == m.n.keys.ID {
		return nil, errors.New("connect: that is our own address")
	}
	if m.n.graph.Blocks(m.n.keys.ID, a.Key) {
		return nil, fmt.Errorf("connect %s: we block this peer", a)
	}
	m.mu.Lock()
	if m.closed || m.life == nil {
		m.mu.Unlock()
		return nil, errors.New("connect: the node is not serving")
	}
	if c := m.peers[a.Key]; c != nil {
		m.mu.Unlock()
		return c, nil
	}
	if d := m.dials[a.Key]; d != nil {
		m.mu.Unlock()
		select {
		case <-d.done:
			return d.c, d.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	d := &dialCall{done: make(chan struct{})}
	m.dials[a.Key] = d
	m.mu.Unlock()
	defer func() {
		d.c, d.err = c, err
		m.mu.Lock()
		delete(m.dials, a.Key)
		m.mu.Unlock()
		close(d.done)
	}()
	dial := m.n.dialers[a.Transport]
	if dial == nil {
		return nil, fmt.Errorf("connect %s: transport %q is not supported", a, a.Transport)
	}
	raw, remote, err := dial(ctx, a)
	if ctx.Err() == nil {
		m.n.addrs.dialled(a, err, m.n.now(), m.n.sched.backoffFn)
	}
	if err != nil {
		m.log.Info("connect failed", "addr", a.String(), "err", err)
		return nil, fmt.Errorf("connect %s: %w", a, err)
	}
	transport := a.Transport
	if transport == "" {
		transport = feeds.TransportNet
	}
	return m.accept(raw, remote, a.String(), transport, "out")
}

// shutdown stops every keeper, says goodbye to every peer in parallel and
// waits (up to timeout) for every connection's goroutines.
func (m *connManager) shutdown(timeout time.Duration) {
	m.mu.Lock()
	m.closed = true
	var all []*conn
	for _, c := range m.peers {
		all = append(all, c)
	}
	for c := range m.owners {
		all = append(all, c)
	}
	for _, t := range m.targets {
		t.cancel()
	}
	m.mu.Unlock()
	for _, c := range all {
		m.close(c, "shutting down")
	}
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		m.log.Warn("some connections are still closing")
	}
}

// peerOf returns the remote feed of a call from another peer.
func (n *Node) peerOf(req *muxrpc.Request) (feeds.FeedRef, bool) {
	rk := req.RemoteKey()
	if rk == nil || n.isOwner(rk) {
		return feeds.FeedRef{}, false
	}
	return refOf(rk), true
}

// drop disconnects peer (it sent something invalid).
func (n *Node) drop(peer feeds.FeedRef, err error) {
	n.log.Warn("disconnecting peer", "peer", peer.String(), "reason", err)
	n.conns.dropPeer(peer, err.Error())
}
