package netsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of the simulated network.
var (
	// ErrUnreachable: the host is down, not listening, or on the other
	// side of a partition.
	ErrUnreachable = errors.New("netsim: host unreachable")
	// ErrReset: the connection was cut (connection loss, partition, a
	// host killed).
	ErrReset = errors.New("netsim: connection reset")
)

// Link is the shape of the path between two hosts, both directions.
type Link struct {
	Latency time.Duration // one way
	// Bandwidth in bytes per second, each direction (0: unlimited).
	Bandwidth int64
}

// window is how many bytes one direction of a connection queues before a
// writer blocks, like a TCP socket's buffers.
const window = 256 << 10

// Network is an in-memory network of named hosts. Every connection is a
// pair of buffered pipes that deliver bytes after the link's latency, at
// its bandwidth; connections can be cut one by one, by a partition or by
// a host going down. It counts the connections made and the bytes sent.
type Network struct {
	mu        sync.Mutex
	listeners map[string]*listener // "host:port"
	down      map[string]bool      // host
	group     map[string]int       // host -> partition group (absent: 0)
	links     func(a, b string) Link
	conns     map[*pipeConn]struct{}
	nextPort  int
	met       map[[2]string]bool // hosts that had a connection (sorted pair)
	sent      map[string]int64   // bytes sent, by sending host

	// Counters.
	bytesSent atomic.Int64
	dials     atomic.Int64
	accepted  atomic.Int64
	cuts      atomic.Int64
}

// NewNetwork returns an empty network; links gives the shape of the path
// between two hosts (nil: no latency, unlimited bandwidth).
func NewNetwork(links func(a, b string) Link) *Network {
	if links == nil {
		links = func(string, string) Link { return Link{} }
	}
	return &Network{
		listeners: map[string]*listener{}, down: map[string]bool{}, group: map[string]int{},
		links: links, conns: map[*pipeConn]struct{}{}, nextPort: 40000,
		met: map[[2]string]bool{}, sent: map[string]int64{},
	}
}

// Stats are the network's counters.
type Stats struct {
	BytesSent   int64 // every byte written on every connection
	Dials       int64 // connection attempts
	Connections int64 // connections established
	Cuts        int64 // connections cut by the network
}

// Stats returns the counters so far.
func (nw *Network) Stats() Stats {
	return Stats{BytesSent: nw.bytesSent.Load(), Dials: nw.dials.Load(), Connections: nw.accepted.Load(), Cuts: nw.cuts.Load()}
}

// Host is one host's view of the network: it implements sbot.Network.
func (nw *Network) Host(name string) *Host { return &Host{nw: nw, name: name} }

// Host dials and listens as one named host.
type Host struct {
	nw   *Network
	name string
}

// Name is the host's name.
func (h *Host) Name() string { return h.name }

// Listen listens on addr; its host part must be the host's name.
func (h *Host) Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("netsim: listen %s: %w", addr, err)
	}
	if host != h.name {
		return nil, fmt.Errorf("netsim: host %s cannot listen on %s", h.name, addr)
	}
	nw := h.nw
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.listeners[addr] != nil {
		return nil, fmt.Errorf("netsim: listen %s: address in use", addr)
	}
	l := &listener{nw: nw, addr: simAddr(addr), accept: make(chan net.Conn, 64), done: make(chan struct{})}
	nw.listeners[addr] = l
	return l, nil
}

// DialContext connects to addr, a listening host, unless either end is
// down or a partition separates them. The connection is ready after one
// round trip of the link.
func (h *Host) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	nw := h.nw
	nw.dials.Add(1)
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("netsim: dial %s: %w", addr, err)
	}
	link := nw.links(h.name, host)
	select {
	case <-time.After(2 * link.Latency):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	nw.mu.Lock()
	l := nw.listeners[addr]
	if l == nil || !nw.reachableLocked(h.name, host) {
		nw.mu.Unlock()
		return nil, fmt.Errorf("netsim: dial %s from %s: %w", addr, h.name, ErrUnreachable)
	}
	nw.nextPort++
	local := simAddr(fmt.Sprintf("%s:%d", h.name, nw.nextPort))
	a, b := newPipe(nw, link, local, l.addr)
	nw.conns[a] = struct{}{}
	nw.conns[b] = struct{}{}
	nw.met[pair(h.name, host)] = true
	nw.mu.Unlock()
	select {
	case l.accept <- b:
	case <-l.done:
		a.reset()
		return nil, fmt.Errorf("netsim: dial %s: %w", addr, ErrUnreachable)
	case <-ctx.Done():
		a.reset()
		return nil, ctx.Err()
	}
	nw.accepted.Add(1)
	return a, nil
}

func (nw *Network) reachableLocked(a, b string) bool {
	return !nw.down[a] && !nw.down[b] && nw.group[a] == nw.group[b]
}

// cutWhere resets every connection for which drop is true (at either
// end) and returns how many it reset.
func (nw *Network) cutWhere(drop func(c *pipeConn) bool) int {
	nw.mu.Lock()
	var cut []*pipeConn
	seen := map[*pipeConn]bool{}
	for c := range nw.conns {
		if !seen[c] && !seen[c.peer] && drop(c) {
			seen[c] = true
			cut = append(cut, c)
		}
	}
	nw.mu.Unlock()
	for _, c := range cut {
		c.reset()
	}
	return len(cut)
}

// SetDown takes a host off the network (every connection of it is reset,
// no goodbye reaches anyone) or brings it back.
func (nw *Network) SetDown(host string, down bool) {
	nw.mu.Lock()
	nw.down[host] = down
	nw.mu.Unlock()
	if down {
		n := nw.cutWhere(func(c *pipeConn) bool { return c.local.host() == host || c.remote.host() == host })
		nw.cuts.Add(int64(n))
	}
}

// Partition splits the network: hosts of different groups cannot reach
// each other (their connections are reset). Hosts not named are in group 0.
func (nw *Network) Partition(groups map[string]int) {
	nw.mu.Lock()
	nw.group = map[string]int{}
	for h, g := range groups {
		nw.group[h] = g
	}
	nw.mu.Unlock()
	n := nw.cutWhere(func(c *pipeConn) bool {
		return groups[c.local.host()] != groups[c.remote.host()]
	})
	nw.cuts.Add(int64(n))
}

// Heal ends every partition.
func (nw *Network) Heal() { nw.Partition(nil) }

// Cut resets the connections between hosts a and b (connection loss).
func (nw *Network) Cut(a, b string) int {
	n := nw.cutWhere(func(c *pipeConn) bool {
		x, y := c.local.host(), c.remote.host()
		return (x == a && y == b) || (x == b && y == a)
	})
	nw.cuts.Add(int64(n))
	return n
}

// Peers lists the hosts host has open connections with (each once).
func (nw *Network) Peers(host string) []string {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for c := range nw.conns {
		if c.local.host() == host && !seen[c.remote.host()] {
			seen[c.remote.host()] = true
			out = append(out, c.remote.host())
		}
	}
	return out
}

// Met reports whether hosts a and b ever had a connection.
func (nw *Network) Met(a, b string) bool {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.met[pair(a, b)]
}

func (nw *Network) meet(a, b string) {
	nw.mu.Lock()
	nw.met[pair(a, b)] = true
	nw.mu.Unlock()
}

// SentBy is the bytes host wrote on its connections so far.
func (nw *Network) SentBy(host string) int64 {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.sent[host]
}

func (nw *Network) countSent(host string, n int) {
	nw.bytesSent.Add(int64(n))
	nw.mu.Lock()
	nw.sent[host] += int64(n)
	nw.mu.Unlock()
}

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// OpenConns is the number of connection ends not closed yet.
func (nw *Network) OpenConns() int {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return len(nw.conns)
}

func (nw *Network) forget(c *pipeConn) {
	nw.mu.Lock()
	delete(nw.conns, c)
	nw.mu.Unlock()
}

// simAddr is "host:port".
type simAddr string

func (a simAddr) Network() string { return "netsim" }
func (a simAddr) String() string  { return string(a) }
func (a simAddr) host() string {
	h, _, _ := net.SplitHostPort(string(a))
	return h
}

// listener accepts the connections dialled to its address.
type listener struct {
	nw     *Network
	addr   simAddr
	accept chan net.Conn
	once   sync.Once
	done   chan struct{}
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error {
	l.once.Do(func() {
		l.nw.mu.Lock()
		if l.nw.listeners[string(l.addr)] == l {
			delete(l.nw.listeners, string(l.addr))
		}
		l.nw.mu.Unlock()
		close(l.done)
		for {
			select {
			case c := <-l.accept:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

func (l *listener) Addr() net.Addr { return l.addr }
