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
	return secretstream.NewListener(raw, secretstream.ListenerConfig{
		AppKey:    secretstream.AppKey(n.caps),
		Local:     n.keys.Private,
		Authorize: authorize,
		Logger:    n.log.With("component", "shs"),
	}), nil
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
	a, err := feeds.ParseAddress(address)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if a.Transport != "" && a.Transport != feeds.TransportNet {
		return fmt.Errorf("connect: transport %q is not supported (only net)", a.Transport)
	}
	n.mu.Lock()
	life := n.serveCtx
	n.mu.Unlock()
	if life == nil {
		return errors.New("connect: the node is not serving")
	}
	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sc, err := secretstream.Dial(dialCtx, "tcp", a.DialAddr(), secretstream.AppKey(n.caps), n.keys.Private, a.Key.PublicKey())
	if err != nil {
		n.log.Info("connect failed", "addr", address, "err", err)
		return fmt.Errorf("connect %s: %w", address, err)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.runPeer(life, sc, a.Key.PublicKey(), a.String(), "out")
	}()
	return nil
}
