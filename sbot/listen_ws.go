package sbot

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/secretstream"
)

// wsReadLimit caps one WebSocket message. The messages carry the raw byte
// stream (box-stream frames of at most 4 KiB plus headers), so a peer has
// no reason to send more in one message.
const wsReadLimit = 1 << 20

// wsListener accepts WebSocket connections (multiserver "ws", protocol.md
// §7.2) on n.cfg.WSListen: any path upgrades, a plain request gets 426,
// binary messages carry the raw byte stream, and the secret handshake and
// everything above it run inside exactly as over TCP, through the same
// listener configuration and authorization.
func (n *Node) wsListener() *listener {
	addr := n.cfg.WSListen
	trusted, _ := parseTrustedProxies(n.cfg.WSTrustedProxies) // validated by Config.Validate
	return &listener{
		name: feeds.TransportWS,
		open: func() (net.Listener, error) {
			raw, err := n.network.Listen(addr)
			if err != nil {
				return nil, fmt.Errorf("listen on %s: %w", addr, err)
			}
			addr = raw.Addr().String()
			wl := NewWSListener(raw, trusted, n.log.With("component", "ws"))
			return secretstream.NewListener(wl, n.limits.listenerConfig(secretstream.ListenerConfig{
				AppKey:    secretstream.AppKey(n.caps),
				Local:     n.keys.Private,
				Authorize: n.authorizePeer,
				Logger:    n.log.With("component", "shs", "transport", "ws"),
			})), nil
		},
		accepted: func(c net.Conn) (ed25519.PublicKey, string, error) {
			sc, ok := c.(*secretstream.Conn)
			if !ok {
				return nil, "", fmt.Errorf("ws listener returned a %T", c)
			}
			return sc.RemoteKey(), "ws:" + c.RemoteAddr().String(), nil
		},
		address: func(l net.Listener) string {
			host, port, _ := net.SplitHostPort(l.Addr().String())
			p, _ := strconv.Atoi(port)
			return feeds.Address{Transport: feeds.TransportWS, Host: host, Port: p, Key: n.keys.ID}.String()
		},
	}
}

// authorizePeer refuses, during the handshake, a peer we block.
func (n *Node) authorizePeer(remote ed25519.PublicKey) error {
	if n.graph.Blocks(n.keys.ID, refOf(remote)) {
		n.log.Info("refused connection: we block this peer", "peer", refOf(remote).String())
		return errors.New("blocked")
	}
	return nil
}

// WSListener turns WebSocket upgrades on an HTTP server into a
// net.Listener of byte-stream connections (binary messages), for a
// secret-handshake listener to wrap. It serves HTTP on l itself (NewWSListener),
// or is mounted as a handler on another server (NewWSHandler, the room's).
type WSListener struct {
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

// NewWSListener serves HTTP on l; every request that is a WebSocket upgrade
// (any path) becomes an accepted connection. X-Forwarded-For is honoured
// only from a peer in trusted.
func NewWSListener(l net.Listener, trusted []netip.Prefix, log *slog.Logger) *WSListener {
	w := NewWSHandler(l.Addr(), trusted, log)
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

// NewWSHandler returns a WSListener with no server of its own: mount it
// (ServeHTTP) on an HTTP server and Accept its connections.
func NewWSHandler(addr net.Addr, trusted []netip.Prefix, log *slog.Logger) *WSListener {
	ctx, cancel := context.WithCancel(context.Background())
	return &WSListener{
		conns: make(chan net.Conn), done: make(chan struct{}),
		ctx: ctx, cancel: cancel, addr: addr, trusted: trusted, log: log,
	}
}

// IsWebSocketUpgrade reports whether r asks for a WebSocket upgrade.
func IsWebSocketUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

// ServeHTTP upgrades r and hands the connection to Accept; a request that
// is not an upgrade gets 426 Upgrade Required.
func (w *WSListener) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if !IsWebSocketUpgrade(r) {
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
	c.SetReadLimit(wsReadLimit)
	nc := &wsConn{Conn: websocket.NetConn(w.ctx, c, websocket.MessageBinary), remote: w.remoteAddr(r)}
	select {
	case w.conns <- nc:
	case <-w.done:
		nc.Close()
	}
}

// remoteAddr is the client's address: the request's peer, or the last
// X-Forwarded-For hop when that peer is a trusted proxy.
func (w *WSListener) remoteAddr(r *http.Request) net.Addr {
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
func (w *WSListener) Accept() (net.Conn, error) {
	select {
	case c := <-w.conns:
		return c, nil
	case <-w.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting (and the HTTP server, if it has one); connections
// already accepted end too.
func (w *WSListener) Close() error {
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
func (w *WSListener) Addr() net.Addr { return w.addr }

// wsConn is a WebSocket byte stream with the client's address.
type wsConn struct {
	net.Conn
	remote net.Addr
}

func (c *wsConn) RemoteAddr() net.Addr { return c.remote }

type wsAddr string

func (a wsAddr) Network() string { return "websocket" }
func (a wsAddr) String() string  { return string(a) }

// parseTrustedProxies parses comma-separated CIDRs (or single addresses).
func parseTrustedProxies(list []string) ([]netip.Prefix, error) {
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
