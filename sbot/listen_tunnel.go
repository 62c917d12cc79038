package sbot

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/tunnel"
	"github.com/cask-ssb/cask/secretstream"
)

// tunnelHandshakeTimeout bounds the inner secret handshake of a tunnel.
const tunnelHandshakeTimeout = 15 * time.Second

// serveTunnel answers tunnel.connect from a room we joined (the service
// declaration checks the caller): the room relays a peer (origin) to us
// (target). Following ssb-room-client, only target == us is accepted. We
// run the secret handshake as server inside the duplex stream; the
// peer's key must be the origin the room named, and (tunneled
// authentication, rooms2 spec) with tunnel-accept "followed" we keep the
// connection only from a peer we follow. The connection then goes to the
// connection manager; this handler lasts as long as it does.
func (n *Node) serveTunnel(ctx context.Context, req *muxrpc.Request, in *muxrpc.Source, out *muxrpc.Sink) error {
	args, err := tunnel.ParseConnectArgs(req.Args)
	if err != nil {
		return err
	}
	portal := refOf(req.RemoteKey())
	if args.Target != n.keys.ID || args.Origin == nil || args.Portal != portal || *args.Origin == n.keys.ID {
		return fmt.Errorf("could not connect to %s", args.Target)
	}
	origin := *args.Origin
	address := tunnel.Address(portal, origin)
	pipe := muxrpc.NewStreamConn(in, out, nil, muxrpc.StreamAddr(address))
	authorize := func(remote ed25519.PublicKey) error {
		id := refOf(remote)
		switch {
		case id != origin:
			n.log.Warn("refused tunneled connection: its key is not the origin the room named", "room", portal.String(), "origin", origin.String(), "key", id.String())
			return errors.New("not the origin")
		case n.graph.Blocks(n.keys.ID, id):
			n.log.Info("refused tunneled connection: we block this peer", "room", portal.String(), "origin", id.String())
			return errors.New("blocked")
		case n.cfg.TunnelAccept != TunnelAcceptAnyone && !n.graph.Follows(n.keys.ID, id):
			n.log.Info("refused tunneled connection: we do not follow the origin (tunnel-accept followed)", "room", portal.String(), "origin", id.String())
			return errors.New("not followed")
		}
		return nil
	}
	hctx, cancel := context.WithTimeout(ctx, tunnelHandshakeTimeout)
	sc, err := secretstream.Server(hctx, pipe, secretstream.AppKey(n.caps), n.keys.Private, authorize)
	cancel()
	if err != nil {
		pipe.Close()
		n.metrics.handshake(feeds.TransportTunnel, "in", "failed")
		n.log.Debug("tunnel handshake failed", "room", portal.String(), "origin", origin.String(), "err", err)
		return nil
	}
	n.metrics.handshake(feeds.TransportTunnel, "in", "ok")
	if _, err := n.conns.accept(sc, sc.RemoteKey(), address, feeds.TransportTunnel, "in"); err != nil {
		return nil // refused (full, closing): the manager answered and closes it
	}
	select {
	case <-pipe.Done():
	case <-ctx.Done():
		sc.Close()
	}
	return nil
}
