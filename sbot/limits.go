package sbot

import (
	"time"

	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/secretstream"
)

// PeerLimits bound what one TCP peer connection may cost the daemon. Zero
// fields take the defaults of the muxrpc and secretstream packages.
type PeerLimits struct {
	// HelloTimeout: a client that sends no handshake hello within it is
	// dropped (secretstream.DefaultHelloTimeout).
	HelloTimeout time.Duration
	// MaxPendingHandshakes and MaxPendingPerIP bound handshakes in
	// progress (secretstream defaults); beyond them the oldest idle one
	// is evicted.
	MaxPendingHandshakes int
	MaxPendingPerIP      int
	// PacketTimeout: a peer that stalls inside a packet for this long is
	// disconnected (muxrpc.DefaultPacketTimeout).
	PacketTimeout time.Duration
	// WriteTimeout: a peer that takes none of our bytes for this long is
	// disconnected (muxrpc.DefaultWriteTimeout).
	WriteTimeout time.Duration
	// IdleTimeout: a peer that sends nothing for this long is
	// disconnected. Zero disables it (the default: the daemon does not
	// open gossip.ping itself, so an idle Go peer is silent).
	IdleTimeout time.Duration
	// MaxQueuedBytes and MaxHeldBytes bound the bytes queued for the peer
	// and held from it (muxrpc defaults).
	MaxQueuedBytes int
	MaxHeldBytes   int
	// BodyBudget bounds the bytes of packets being received from all
	// peers at once (DefaultBodyBudget).
	BodyBudget int64

	budget *muxrpc.Budget // shared by all peers of a node
}

// muxrpcOptions applies the limits to the options of a peer's endpoint.
func (l PeerLimits) muxrpcOptions(o muxrpc.Options) muxrpc.Options {
	o.PacketTimeout = l.PacketTimeout
	o.WriteTimeout = l.WriteTimeout
	o.IdleTimeout = l.IdleTimeout
	o.MaxQueuedBytes = l.MaxQueuedBytes
	o.MaxHeldBytes = l.MaxHeldBytes
	o.BodyBudget = l.budget
	return o
}

// listenerConfig applies the limits to the secret-handshake listener.
func (l PeerLimits) listenerConfig(c secretstream.ListenerConfig) secretstream.ListenerConfig {
	c.HelloTimeout = l.HelloTimeout
	c.MaxPending = l.MaxPendingHandshakes
	c.MaxPendingPerIP = l.MaxPendingPerIP
	return c
}

// DefaultBodyBudget bounds the bytes of packet bodies all TCP peers are
// sending us at once (see muxrpc.Budget): 16 packets of the 4 MiB maximum.
const DefaultBodyBudget = 64 << 20
