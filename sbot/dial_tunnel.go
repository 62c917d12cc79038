package sbot

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/plugins/tunnel"
	"github.com/cask-ssb/cask/secretstream"
)

// dialTunnel dials tunnel:@ROOM:@TARGET addresses: it opens tunnel.connect
// on our connection with the room (dialling a room we joined if it is not
// connected) and runs the secret handshake as client inside the pipe
// (protocol.md §8.5). The pipe lives as long as the node serves and the
// room connection lasts; the resulting connection is managed like any
// other.
func (n *Node) dialTunnel(ctx context.Context, a feeds.Address) (net.Conn, ed25519.PublicKey, error) {
	room := n.conns.peer(a.Portal)
	if room == nil {
		ra, ok := n.rooms.roomAddress(a.Portal)
		if !ok {
			return nil, nil, fmt.Errorf("not connected to room %s", a.Portal)
		}
		var err error
		if room, err = n.conns.dial(ctx, ra); err != nil {
			return nil, nil, fmt.Errorf("room %s: %w", a.Portal, err)
		}
	}
	n.conns.mu.Lock()
	life := n.conns.life
	n.conns.mu.Unlock()
	if life == nil {
		return nil, nil, errors.New("the node is not serving")
	}
	pipe, err := tunnel.Dial(life, room.e, a.Portal, a.Key)
	if err != nil {
		return nil, nil, err
	}
	sc, err := secretstream.Client(ctx, pipe, secretstream.AppKey(n.caps), n.keys.Private, a.Key.PublicKey())
	if err != nil {
		pipe.Close()
		return nil, nil, fmt.Errorf("tunnel handshake: %w", err)
	}
	return sc, sc.RemoteKey(), nil
}
