package sbot

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/internal/wsconn"
	"github.com/cask-ssb/cask/secretstream"
)

// wsListener accepts WebSocket connections (multiserver "ws", protocol.md
// §7.2) on n.cfg.WSListen: any path upgrades, a plain request gets 426,
// binary messages carry the raw byte stream, and the secret handshake and
// everything above it run inside exactly as over TCP, through the same
// listener configuration and authorization.
func (n *Node) wsListener() *listener {
	addr := n.cfg.WSListen
	trusted, _ := wsconn.ParseTrustedProxies(n.cfg.WSTrustedProxies) // validated by Config.Validate
	return &listener{
		name: feeds.TransportWS,
		open: func() (net.Listener, error) {
			raw, err := n.network.Listen(addr)
			if err != nil {
				return nil, fmt.Errorf("listen on %s: %w", addr, err)
			}
			addr = raw.Addr().String()
			wl := wsconn.NewListener(raw, trusted, n.log.With("component", "ws"))
			return secretstream.NewListener(wl, n.limits.listenerConfig(secretstream.ListenerConfig{
				AppKey:    secretstream.AppKey(n.caps),
				Local:     n.keys.Private,
				Authorize: n.authorizePeer,
				Logger:    n.log.With("component", "shs", "transport", "ws"),
				Refused:   n.metrics.refused(feeds.TransportWS),
			})), nil
		},
		accepted: func(c net.Conn) (ed25519.PublicKey, string, error) {
			sc, ok := c.(*secretstream.Conn)
			if !ok {
				return nil, "", fmt.Errorf("ws listener returned a %T", c)
			}
			n.metrics.handshake(feeds.TransportWS, "in", "ok")
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
