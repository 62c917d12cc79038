package sbot

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"github.com/cask-ssb/cask/feeds"
	"net"
	"time"

	"github.com/cask-ssb/cask/secretstream"
)

// listenTCP listens with the secret handshake: every accepted connection is
// authenticated with our network key; anything else never reaches muxrpc.
func (n *Node) listenTCP() (net.Listener, error) {
	raw, err := net.Listen("tcp", n.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", n.cfg.Listen, err)
	}
	authorize := func(remote ed25519.PublicKey) error {
		if n.graph.Blocks(n.keys.ID, refOf(remote)) {
			n.log.Info("refused connection: we block this peer", "peer", refOf(remote).String())
			return errors.New("blocked")
		}
		n.mu.Lock()
		count := 0
		for _, p := range n.peers {
			if p.direction != "unix" {
				count++
			}
		}
		n.mu.Unlock()
		if count >= n.cfg.MaxConns && !n.isOwner(remote) {
			n.log.Warn("refused connection: too many peers", "peer", refOf(remote).String(), "max", n.cfg.MaxConns)
			return fmt.Errorf("too many connections (%d)", n.cfg.MaxConns)
		}
		return nil
	}
	return secretstream.NewListener(raw, n.limits.listenerConfig(secretstream.ListenerConfig{
		AppKey:    secretstream.AppKey(n.caps),
		Local:     n.keys.Private,
		Authorize: authorize,
		Logger:    n.log.With("component", "shs"),
	})), nil
}

func (n *Node) serveTCP(ctx context.Context, l net.Listener) {
	defer n.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				n.log.Error("tcp accept failed", "err", err)
			}
			return
		}
		sc, ok := c.(*secretstream.Conn)
		if !ok {
			c.Close()
			continue
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.runPeer(ctx, sc, sc.RemoteKey(), "net:"+c.RemoteAddr().String(), "in")
		}()
	}
}

// Connect dials a peer (host:port, with its ed25519 key) and serves the
// connection until ctx ends or the peer goes away.
func (n *Node) Connect(ctx context.Context, addr string, remote ed25519.PublicKey) error {
	sc, err := secretstream.Dial(ctx, "tcp", addr, secretstream.AppKey(n.caps), n.keys.Private, remote)
	if err != nil {
		return fmt.Errorf("connect %s: %w", addr, err)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.runPeer(ctx, sc, remote, "net:"+addr, "out")
	}()
	return nil
}

// ConnectAddress implements gossip.Connector: it dials a multiserver
// address ("net:HOST:PORT~shs:KEY") for the owner. The connection lives
// as long as the node serves, not as long as the call that asked for it.
func (n *Node) ConnectAddress(ctx context.Context, address string) error {
	n.mu.Lock()
	life := n.serveCtx
	n.mu.Unlock()
	if life == nil {
		return errors.New("connect: the node is not serving")
	}
	sc, a, err := n.dialAddress(ctx, address)
	if err != nil {
		return err
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.runPeer(life, sc, a.Key.PublicKey(), a.String(), "out")
	}()
	return nil
}

// dialAddress parses a multiserver address and runs the client handshake.
func (n *Node) dialAddress(ctx context.Context, address string) (*secretstream.Conn, feeds.Address, error) {
	a, err := feeds.ParseAddress(address)
	if err != nil {
		return nil, a, fmt.Errorf("connect: %w", err)
	}
	if a.Transport != "" && a.Transport != feeds.TransportNet {
		return nil, a, fmt.Errorf("connect: transport %q is not supported (only net)", a.Transport)
	}
	if a.Key == n.keys.ID {
		return nil, a, errors.New("connect: that is our own address")
	}
	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sc, err := secretstream.Dial(dialCtx, "tcp", a.DialAddr(), secretstream.AppKey(n.caps), n.keys.Private, a.Key.PublicKey())
	if err != nil {
		n.log.Info("connect failed", "addr", address, "err", err)
		return nil, a, fmt.Errorf("connect %s: %w", address, err)
	}
	return sc, a, nil
}

// keepConnected dials address and, whenever the connection ends or a dial
// fails, dials again after a back-off (1 s doubling to 1 min; reset after a
// connection that lasted a minute) until ctx ends. It serves the
// configured peers (--peers).
func (n *Node) keepConnected(ctx context.Context, address string) {
	defer n.wg.Done()
	const minWait, maxWait = time.Second, time.Minute
	wait := minWait
	for ctx.Err() == nil {
		if n.connectedTo(address) {
			// Already connected (e.g. the peer dialled us): check later.
			wait = minWait
		} else if sc, a, err := n.dialAddress(ctx, address); err == nil {
			start := time.Now()
			n.runPeer(ctx, sc, a.Key.PublicKey(), a.String(), "out")
			if time.Since(start) > maxWait {
				wait = minWait
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, maxWait)
	}
}

// connectedTo reports whether we have a connection with the key of address.
func (n *Node) connectedTo(address string) bool {
	a, err := feeds.ParseAddress(address)
	if err != nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.peers {
		if p.id == a.Key && p.direction != "unix" {
			return true
		}
	}
	return false
}
