// Package unixsock opens the owner-only unix socket a daemon (sbot, room)
// serves its local clients on. It never accepts or serves connections.
package unixsock

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
)

// MaxPath is the longest unix socket path the kernel takes: struct
// sockaddr_un has 108 bytes for the path and its terminating NUL.
const MaxPath = 107

// CheckPath says clearly when path cannot be a unix socket (the kernel
// would only say "bind: invalid argument").
func CheckPath(path string) error {
	if len(path) > MaxPath {
		return fmt.Errorf("unix socket path %s is too long (%d bytes, the limit is %d): use a repo directory with a shorter path (--repo)", path, len(path), MaxPath)
	}
	return nil
}

// Listen removes a stale socket file at path (the caller holds the repo's
// lock, so nobody else serves on it) and listens there with mode 0600. The
// umask is set while the socket is created, so it is never, even briefly,
// open to others.
func Listen(path string) (net.Listener, error) {
	if err := CheckPath(path); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on unix socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod socket %s: %w", path, err)
	}
	return l, nil
}
