package sbot

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
)

// unixListener opens REPO/socket with mode 0600. Connections on it are the
// owner's: no handshake, every method allowed. We hold the repo lock, so a
// socket file left behind by a killed daemon can safely be removed.
func (n *Node) unixListener() *listener {
	path := n.cfg.SocketPath()
	return &listener{
		name: "unix",
		open: func() (net.Listener, error) {
			if err := checkSocketPath(path); err != nil {
				return nil, err
			}
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
			}
			// umask so the socket is never, even briefly, accessible to others.
			old := syscall.Umask(0o177)
			l, err := net.Listen("unix", path)
			syscall.Umask(old)
			if err != nil {
				return nil, fmt.Errorf("listen on unix socket %s: %w", path, err)
			}
			if err := os.Chmod(path, 0o600); err != nil {
				l.Close()
				return nil, fmt.Errorf("chmod socket: %w", err)
			}
			return l, nil
		},
		accepted: func(net.Conn) (ed25519.PublicKey, string, error) { return nil, "unix", nil },
		address:  func(net.Listener) string { return "unix:" + path },
	}
}

// maxSocketPath is the longest unix socket path the kernel takes: struct
// sockaddr_un has 108 bytes for the path and its terminating NUL.
const maxSocketPath = 107

// checkSocketPath says clearly when path cannot be a unix socket (the
// kernel would only say "bind: invalid argument").
func checkSocketPath(path string) error {
	if len(path) > maxSocketPath {
		return fmt.Errorf("unix socket path %s is too long (%d bytes, the limit is %d): use a repo directory with a shorter path (--repo or SSB_REPO)", path, len(path), maxSocketPath)
	}
	return nil
}
