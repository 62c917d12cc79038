package sbot

import (
	"context"
	"net"
)

// Network is what the daemon's net: transport runs on: listening for
// peers and dialling them (the secret handshake runs on top). The default
// is the operating system's TCP; tests run many nodes in one process over
// a simulated network instead (internal/netsim), through the same
// listener, handshake and connection manager code.
type Network interface {
	// Listen listens on addr ("host:port", as in --listen).
	Listen(addr string) (net.Listener, error)
	// DialContext connects to addr ("host:port" of a net: address).
	DialContext(ctx context.Context, addr string) (net.Conn, error)
}

// tcpNetwork is the operating system's TCP.
type tcpNetwork struct{}

func (tcpNetwork) Listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

func (tcpNetwork) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}
