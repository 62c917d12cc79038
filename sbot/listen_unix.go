package sbot

import (
	"crypto/ed25519"
	"net"

	"github.com/cask-ssb/cask/internal/unixsock"
)

// unixListener opens REPO/socket with mode 0600. Connections on it are the
// owner's: no handshake, every method allowed. We hold the repo lock, so a
// socket file left behind by a killed daemon can safely be removed.
func (n *Node) unixListener() *listener {
	path := n.cfg.SocketPath()
	return &listener{
		name:     "unix",
		open:     func() (net.Listener, error) { return unixsock.Listen(path) },
		accepted: func(net.Conn) (ed25519.PublicKey, string, error) { return nil, "unix", nil },
		address:  func(net.Listener) string { return "unix:" + path },
	}
}
