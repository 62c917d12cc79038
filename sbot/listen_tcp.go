package sbot

import (
	"crypto/ed25519"
	"fmt"
	"net"
	"strconv"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/secretstream"
)

// listener is one transport the node accepts connections on. Serve
// supervises each: a listener whose Accept fails is reopened, and one that
// cannot be reopened stops the daemon.
type listener struct {
	name string // "unix", "net"
	// open starts listening (again, after a failure).
	open func() (net.Listener, error)
	// accepted tells who an accepted connection is: its authenticated key
	// (nil for the owner's unix socket) and its address.
	accepted func(c net.Conn) (remote ed25519.PublicKey, address string, err error)
	// address is the multiserver address to publish in status.
	address func(l net.Listener) string
}

// transports lists the listeners of the configuration.
func (n *Node) transports() []*listener {
	ls := []*listener{n.unixListener()}
	if n.cfg.Listen != "" && n.cfg.Listen != "off" {
		ls = append(ls, n.tcpListener())
	}
	if n.cfg.WSListen != "" && n.cfg.WSListen != "off" {
		ls = append(ls, n.wsListener())
	}
	return ls
}

// tcpListener listens with the secret handshake: every accepted connection
// is authenticated with our network key; anything else never reaches
// muxrpc. Blocked peers are refused during the handshake; the connection
// limit is checked after it (see connManager.admitLocked), so a full
// daemon can say so.
func (n *Node) tcpListener() *listener {
	addr := n.cfg.Listen
	return &listener{
		name: "net",
		open: func() (net.Listener, error) {
			raw, err := n.network.Listen(addr)
			if err != nil {
				return nil, fmt.Errorf("listen on %s: %w", addr, err)
			}
			// A restart binds the same port, even when the first bind
			// picked one (":0").
			addr = raw.Addr().String()
			return secretstream.NewListener(raw, n.limits.listenerConfig(secretstream.ListenerConfig{
				AppKey:    secretstream.AppKey(n.caps),
				Local:     n.keys.Private,
				Authorize: n.authorizePeer,
				Logger:    n.log.With("component", "shs"),
				Refused:   n.metrics.refused(feeds.TransportNet),
			})), nil
		},
		accepted: func(c net.Conn) (ed25519.PublicKey, string, error) {
			sc, ok := c.(*secretstream.Conn)
			if !ok {
				return nil, "", fmt.Errorf("tcp listener returned a %T", c)
			}
			n.metrics.handshake(feeds.TransportNet, "in", "ok")
			return sc.RemoteKey(), "net:" + c.RemoteAddr().String(), nil
		},
		address: func(l net.Listener) string {
			if a, ok := l.Addr().(*net.TCPAddr); ok {
				return feeds.Address{Host: a.IP.String(), Port: a.Port, Key: n.keys.ID}.String()
			}
			// Another Network (a simulated one): its "host:port".
			host, port, _ := net.SplitHostPort(l.Addr().String())
			p, _ := strconv.Atoi(port)
			return feeds.Address{Host: host, Port: p, Key: n.keys.ID}.String()
		},
	}
}

// parseNetAddr returns "host:port" of a net: multiserver address.
func parseNetAddr(s string) (string, error) {
	a, err := feeds.ParseAddress(s)
	if err != nil {
		return "", err
	}
	if a.Transport != "" && a.Transport != feeds.TransportNet {
		return "", fmt.Errorf("%s is not a net: address", s)
	}
	return a.DialAddr(), nil
}
