package sbot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
)

// listenUnix opens REPO/socket with mode 0600. Connections on it are the
// owner's: no handshake, every method allowed. We hold the repo lock, so a
// socket file left behind by a killed daemon can safely be removed.
func (n *Node) listenUnix() (net.Listener, error) {
	path := n.cfg.SocketPath()
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
}

func (n *Node) serveUnix(ctx context.Context, l net.Listener) {
	defer n.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				n.log.Error("unix socket accept failed", "err", err)
			}
			return
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.runPeer(ctx, c, nil, "unix", "in")
		}()
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
