// Package wsconn is the WebSocket transport of SSB (multiserver "ws",
// protocol.md §7.2) shared by the daemon and the room: a net.Listener of
// byte streams made from WebSocket upgrades (binary messages carry the raw
// stream; the secret handshake runs inside, wrapped by the caller), and
// the client side. It knows nothing of SSB beyond that.
package wsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// ReadLimit caps one WebSocket message. The messages carry the raw byte
// stream (box-stream frames of at most 4 KiB plus headers), so a peer has
// no reason to send more in one message.
const ReadLimit = 1 << 20

// Dial opens a WebSocket to url through client (nil: a default one) and
// returns it as a byte stream that lives until closed.
func Dial(ctx context.Context, url string, client *http.Client) (net.Conn, error) {
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient:      client,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: HTTP %s: %w", url, resp.Status, err)
		}
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	c.SetReadLimit(ReadLimit)
	return websocket.NetConn(context.WithoutCancel(ctx), c, websocket.MessageBinary), nil
}

// Listener turns WebSocket upgrades on an HTTP server into a
// net.Listener of byte-stream connections (binary messages), for a
// secret-handshake listener to wrap. It serves HTTP on l itself (NewListener),
// or is mounted as a handler on another server (NewHandler, the room's).
type Listener struct {
	conns   chan net.Conn
	done    chan struct{}
	once    sync.Once
	ctx     context.Context // ends the connections' contexts on Close
	cancel  context.CancelFunc
	addr    net.Addr
	srv     *http.Server
	trusted []netip.Prefix
	log     *slog.Logger
}

// NewListener serves HTTP on l; every request that is a WebSocket upgrade
// (any path) becomes an accepted connection. X-Forwarded-For is honoured
// only from a peer in trusted.
func NewListener(l net.Listener, trusted []netip.Prefix, log *slog.Logger) *Listener {
	w := NewHandler(l.Addr(), trusted, log)
	w.srv = &http.Server{
		Handler:           w,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		err := w.srv.Serve(l)
		if !errors.Is(err, http.ErrServerClosed) {
			log.Warn("websocket server stopped", "err", err)
		}
		w.Close()
	}()
	return w
}

// NewHandler returns a Listener with no server of its own: mount it
// (ServeHTTP) on an HTTP server and Accept its connections.
func NewHandler(addr net.Addr, trusted []netip.Prefix, log *slog.Logger) *Listener {
	ctx, cancel := context.WithCancel(context.Background())
	return &Listener{
		conns: make(chan net.Conn), done: make(chan struct{}),
		ctx: ctx, cancel: cancel, addr: addr, trusted: trusted, log: log,
	}
}

// IsUpgrade reports whether r asks for a WebSocket upgrade.
func IsUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

// ServeHTTP upgrades r and hands the connection to Accept; a request that
// is not an upgrade gets 426 Upgrade Required.
func (w *Listener) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if !IsUpgrade(r) {
		rw.Header().Set("Upgrade", "websocket")
		http.Error(rw, "this endpoint speaks SSB over WebSocket only", http.StatusUpgradeRequired)
		return
	}
	c, err := websocket.Accept(rw, r, &websocket.AcceptOptions{
		// Peers authenticate with the secret handshake, not cookies: an
		// Origin check would only refuse browser apps served elsewhere.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		w.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	c.SetReadLimit(ReadLimit)
	nc := &wsConn{Conn: websocket.NetConn(w.ctx, c, websocket.MessageBinary), remote: w.RemoteAddr(r)}
	select {
	case w.conns <- nc:
	case <-w.done:
		nc.Close()
	}
}

// RemoteAddr is the client's address: the request's peer, or the last
// X-Forwarded-For hop when that peer is a trusted proxy.
func (w *Listener) RemoteAddr(r *http.Request) net.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return wsAddr(r.RemoteAddr)
	}
	addr := net.Addr(net.TCPAddrFromAddrPort(peer))
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 || !inPrefixes(w.trusted, peer.Addr()) {
		return addr
	}
	// The last hop is the one our trusted proxy appended.
	hops := strings.Split(strings.Join(xff, ","), ",")
	ip, err := netip.ParseAddr(strings.TrimSpace(hops[len(hops)-1]))
	if err != nil {
		w.log.Debug("ignoring a malformed X-Forwarded-For", "value", strings.Join(xff, ","), "proxy", r.RemoteAddr)
		return addr
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip.Unmap(), 0))
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Accept returns the next upgraded connection.
func (w *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-w.conns:
		return c, nil
	case <-w.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting (and the HTTP server, if it has one); connections
// already accepted end too.
func (w *Listener) Close() error {
	var err error
	w.once.Do(func() {
		close(w.done)
		w.cancel()
		if w.srv != nil {
			err = w.srv.Close()
		}
	})
	return err
}

// Addr is the address of the HTTP server.
func (w *Listener) Addr() net.Addr { return w.addr }

// wsConn is a WebSocket byte stream with the client's address.
type wsConn struct {
	net.Conn
	remote net.Addr
}

func (c *wsConn) RemoteAddr() net.Addr { return c.remote }

type wsAddr string

func (a wsAddr) Network() string { return "websocket" }
func (a wsAddr) String() string  { return string(a) }

// ParseTrustedProxies parses comma-separated CIDRs (or single addresses).
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR (10.0.0.0/8) or an IP address", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
