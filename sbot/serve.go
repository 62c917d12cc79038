package sbot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sync/errgroup"
)

// Serve listens on every transport (unix socket, and TCP unless Listen is
// "" or "off") and serves until ctx is cancelled or a listener fails for
// good; then it stops accepting, says goodbye to every peer, lets the
// writer finish what it acknowledged and closes the store. It returns nil
// after a clean shutdown. Ready is closed once every listener is open.
func (n *Node) Serve(ctx context.Context) error {
	n.started = n.now()
	opened := make([]net.Listener, 0, len(n.listeners))
	for _, t := range n.listeners {
		l, err := t.open()
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return errors.Join(err, n.Close())
		}
		opened = append(opened, l)
		n.mu.Lock()
		n.listen = append(n.listen, t.address(l))
		n.mu.Unlock()
	}
	dbg, derr := n.openDebug()
	if derr != nil {
		for _, o := range opened {
			o.Close()
		}
		return errors.Join(derr, n.Close())
	}
	g, gctx := errgroup.WithContext(ctx)
	if err := n.conns.start(gctx); err != nil {
		for _, o := range opened {
			o.Close()
		}
		if dbg != nil {
			dbg.Close()
		}
		return errors.Join(err, n.Close())
	}
	if dbg != nil {
		g.Go(func() error { return n.serveDebug(gctx, dbg) })
	}
	for i, t := range n.listeners {
		g.Go(func() error { return n.supervise(gctx, i, t, opened[i]) })
	}
	for _, s := range n.services {
		if s.Run != nil {
			g.Go(func() error {
				if err := s.Run(gctx); err != nil && gctx.Err() == nil {
					return fmt.Errorf("service %s: %w", s.Name, err)
				}
				return nil
			})
		}
	}
	g.Go(func() error {
		n.progress.run(gctx, syncProgressInterval, n.log, n.missingFeeds)
		return nil
	})
	close(n.ready)
	n.log.Info("sbot serving", "id", n.keys.ID.String(), "listen", n.Listen(), "repo", n.cfg.Repo)
	err := g.Wait()
	if err != nil {
		n.log.Error("stopping the daemon", "err", err)
	} else {
		n.log.Info("shutting down")
	}
	return errors.Join(err, n.Close())
}

// supervise accepts on l until ctx ends. When Accept fails it reopens the
// listener (5 attempts, backing off from 100 ms); when that fails too it
// returns the error, which stops the daemon: a listener is never silently
// gone.
func (n *Node) supervise(ctx context.Context, i int, t *listener, l net.Listener) error {
	for {
		stop := context.AfterFunc(ctx, func() { l.Close() })
		err := n.acceptLoop(t, l)
		stop()
		l.Close()
		if ctx.Err() != nil {
			return nil
		}
		n.log.Error("listener failed, restarting it", "transport", t.name, "err", err)
		wait := 100 * time.Millisecond
		for attempt := 1; ; attempt++ {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			var oerr error
			if l, oerr = t.open(); oerr == nil {
				break
			}
			if attempt == 5 {
				return fmt.Errorf("%s listener failed (%w) and could not be restarted: %w", t.name, err, oerr)
			}
			wait *= 2
		}
		n.mu.Lock()
		n.listen[i] = t.address(l)
		n.mu.Unlock()
		n.log.Info("listener restarted", "transport", t.name, "listen", t.address(l))
	}
}

// acceptLoop hands every accepted connection to the connection manager
// until Accept fails.
func (n *Node) acceptLoop(t *listener, l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		remote, address, err := t.accepted(c)
		if err != nil {
			n.log.Warn("dropping an accepted connection", "transport", t.name, "err", err)
			c.Close()
			continue
		}
		// Errors (full, closing) are logged and answered by the manager.
		_, _ = n.conns.accept(c, remote, address, t.name, "in")
	}
}

// Listen returns the addresses the node listens on (after Serve started).
func (n *Node) Listen() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.listen...)
}

// TCPAddr returns the TCP listen address ("host:port"), or "" if none.
func (n *Node) TCPAddr() string {
	for _, l := range n.Listen() {
		if a, err := parseNetAddr(l); err == nil {
			return a
		}
	}
	return ""
}

// Close shuts the node down: every connection (goodbyes in parallel),
// writer, store, socket file and repo lock. Serve calls it when ctx ends;
// it is safe to call more than once.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	n.conns.shutdown(5 * time.Second)
	var errs []error
	n.writer.Close()
	// Remove the socket while we still hold the repo (store) lock.
	_ = os.Remove(n.cfg.SocketPath())
	errs = append(errs, n.store.Close())
	return errors.Join(errs...)
}
