package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
)

// Address returns the tunnel address of target behind room:
// "tunnel:@ROOM:@TARGET~shs:KEY" (protocol.md §7.3).
func Address(room, target feeds.FeedRef) string {
	s := target.String()
	return "tunnel:" + room.String() + ":" + s + "~shs:" + s[1:len(s)-len(".ed25519")]
}

// Dial opens a tunnel to target through the room on roomConn (whose id is
// portal) and returns the byte pipe; run the secret handshake client over
// it. The pipe ends when ctx ends.
func Dial(ctx context.Context, roomConn *muxrpc.Endpoint, portal, target feeds.FeedRef) (*muxrpc.StreamConn, error) {
	src, snk, err := roomConn.Duplex(ctx, muxrpc.Method{"tunnel", "connect"},
		map[string]string{"portal": portal.String(), "target": target.String()})
	if err != nil {
		return nil, fmt.Errorf("tunnel to %s: %w", target, err)
	}
	return muxrpc.NewStreamConn(src, snk, nil, muxrpc.StreamAddr(Address(portal, target))), nil
}

// Incoming is a tunnel a room opened to us.
type Incoming struct {
	Conn   *muxrpc.StreamConn
	Origin feeds.FeedRef
	Portal feeds.FeedRef
}

// Acceptor answers the tunnel.connect calls rooms make on us: it accepts
// those whose target is self and whose caller is a room we joined
// (IsRoom), and hands the byte pipe to Accept. Register it on the mux that
// serves our room connections.
type Acceptor struct {
	Self   feeds.FeedRef
	IsRoom func(feeds.FeedRef) bool // nil: any caller
	ch     chan Incoming
}

// NewAcceptor returns an Acceptor with a queue of backlog pending tunnels.
func NewAcceptor(self feeds.FeedRef, isRoom func(feeds.FeedRef) bool, backlog int) *Acceptor {
	return &Acceptor{Self: self, IsRoom: isRoom, ch: make(chan Incoming, max(backlog, 1))}
}

// Register adds tunnel.connect (target side) to m.
func (a *Acceptor) Register(m *muxrpc.Mux) {
	m.RegisterDuplex(muxrpc.Method{"tunnel", "connect"}, a.serve)
}

func (a *Acceptor) serve(ctx context.Context, req *muxrpc.Request, in *muxrpc.Source, out *muxrpc.Sink) error {
	args, err := ParseConnectArgs(req.Args)
	if err != nil {
		return err
	}
	k := req.RemoteKey()
	if k == nil {
		return errors.New("tunnel.connect: caller has no identity")
	}
	portal, err := feeds.FeedRefFromPublicKey(k)
	if err != nil {
		return err
	}
	if args.Target != a.Self || args.Origin == nil || (a.IsRoom != nil && !a.IsRoom(portal)) {
		return fmt.Errorf("could not connect to %s", args.Target)
	}
	conn := muxrpc.NewStreamConn(in, out, nil, muxrpc.StreamAddr(Address(portal, *args.Origin)))
	select {
	case a.ch <- Incoming{Conn: conn, Origin: *args.Origin, Portal: portal}:
	default:
		return fmt.Errorf("could not connect to %s: too many pending tunnels", args.Target)
	}
	// The stream lives as long as this handler: wait for the conn's end.
	select {
	case <-conn.Done():
	case <-ctx.Done():
		_ = conn.Close()
	}
	return nil
}

// Accept waits for the next incoming tunnel.
func (a *Acceptor) Accept(ctx context.Context) (Incoming, error) {
	select {
	case in := <-a.ch:
		return in, nil
	case <-ctx.Done():
		return Incoming{}, ctx.Err()
	}
}

// A tunnel's byte pipe is a net.Conn: the secret handshake runs on it.
var _ net.Conn = (*muxrpc.StreamConn)(nil)
