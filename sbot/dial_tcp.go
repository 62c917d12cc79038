package sbot

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"strconv"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/secretstream"
)

// dialer opens a connection to a and runs the client handshake; it
// returns the authenticated connection and the peer's key.
type dialer func(ctx context.Context, a feeds.Address) (net.Conn, ed25519.PublicKey, error)

// dialTCP dials net: addresses (and the legacy HOST:PORT:@KEY form).
func (n *Node) dialTCP(ctx context.Context, a feeds.Address) (net.Conn, ed25519.PublicKey, error) {
	raw, err := n.network.DialContext(ctx, a.DialAddr())
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", a.DialAddr(), err)
	}
	sc, err := secretstream.Client(ctx, raw, secretstream.AppKey(n.caps), n.keys.Private, a.Key.PublicKey())
	if err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("handshake with %s: %w", a.DialAddr(), err)
	}
	return sc, sc.RemoteKey(), nil
}

// Connect dials a peer (host:port, with its ed25519 key); the connection
// lives until the node stops or the peer goes away. A peer already
// connected is not dialled again.
func (n *Node) Connect(ctx context.Context, addr string, remote ed25519.PublicKey) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("connect %s: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("connect %s: bad port: %w", addr, err)
	}
	_, err = n.conns.dial(ctx, feeds.Address{Host: host, Port: p, Key: refOf(remote), Transport: feeds.TransportNet})
	return err
}

// ConnectAddress dials a multiserver address for the owner (see
// gossip.Connector); a connected peer is not dialled again.
func (n *Node) ConnectAddress(ctx context.Context, address string) error {
	return n.conns.ConnectAddress(ctx, address, false)
}
