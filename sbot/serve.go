package sbot

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/ebt"
)

// Serve listens (unix socket, and TCP unless Listen is "" or "off") and
// serves until ctx is cancelled; then it stops accepting, says goodbye to
// every peer, lets the writer finish what it acknowledged and closes the
// store. It returns nil after a clean shutdown.
func (n *Node) Serve(ctx context.Context) error {
	n.started = n.now()
	n.mu.Lock()
	n.serveCtx = ctx
	n.mu.Unlock()
	ul, err := n.listenUnix()
	if err != nil {
		n.Close()
		return err
	}
	n.mu.Lock()
	n.listeners = append(n.listeners, ul)
	n.listen = append(n.listen, "unix:"+n.cfg.SocketPath())
	n.mu.Unlock()
	if n.cfg.Listen != "" && n.cfg.Listen != "off" {
		tl, err := n.listenTCP()
		if err != nil {
			ul.Close()
			n.Close()
			return err
		}
		addr := tl.Addr().(*net.TCPAddr)
		n.mu.Lock()
		n.listeners = append(n.listeners, tl)
		n.listen = append(n.listen, feeds.Address{Host: addr.IP.String(), Port: addr.Port, Key: n.keys.ID}.String())
		n.mu.Unlock()
		n.wg.Add(1)
		go n.serveTCP(ctx, tl)
	}
	n.wg.Add(1)
	go n.serveUnix(ctx, ul)
	for _, p := range n.cfg.Peers {
		n.wg.Add(1)
		go n.keepConnected(ctx, p)
	}
	n.log.Info("sbot serving", "id", n.keys.ID.String(), "listen", n.Listen(), "repo", n.cfg.Repo)
	<-ctx.Done()
	n.log.Info("shutting down")
	return n.Close()
}

// Listen returns the addresses the node listens on (after Serve started).
func (n *Node) Listen() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.listen...)
}

// TCPAddr returns the TCP listen address, or "" if none.
func (n *Node) TCPAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.listeners {
		if a, ok := l.Addr().(*net.TCPAddr); ok {
			return a.String()
		}
	}
	return ""
}

// Close shuts the node down: listeners, peers (goodbye), writer, store,
// socket file and repo lock. It is safe to call more than once.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	ls := n.listeners
	eps := make([]*muxrpc.Endpoint, 0, len(n.peers))
	for e := range n.peers {
		eps = append(eps, e)
	}
	n.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	done := make(chan struct{})
	go func() {
		for _, e := range eps {
			e.Close()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		n.log.Warn("some peers did not say goodbye in time")
	}
	waited := make(chan struct{})
	go func() { n.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		n.log.Warn("some connections are still closing")
	}
	var errs []error
	if n.writer != nil {
		n.writer.Close()
	}
	// Remove the socket while we still hold the repo (store) lock.
	_ = os.Remove(n.cfg.SocketPath())
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	return errors.Join(errs...)
}

// runPeer serves one connection until it ends.
func (n *Node) runPeer(ctx context.Context, conn net.Conn, remote ed25519.PublicKey, address, direction string) {
	log := n.log.With("addr", address)
	var id feeds.FeedRef
	if remote != nil {
		id = refOf(remote)
		log = log.With("peer", id.String())
	} else {
		id = n.keys.ID
		direction = "unix"
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		conn.Close()
		return
	}
	// calls reports the names of the peer's first calls: they tell which
	// replication it speaks (see startReplication).
	calls := make(chan string, 32)
	debug := log.Enabled(ctx, slog.LevelDebug)
	handler := muxrpc.HandlerFunc(func(ctx context.Context, req *muxrpc.Request) {
		select {
		case calls <- req.Method.String():
		default:
		}
		if debug {
			log.Debug("call", "method", req.Method.String(), "type", req.Type, "args", string(req.Args))
		}
		n.mux.HandleCall(ctx, req)
	})
	e := muxrpc.NewEndpoint(ctx, conn, handler, muxrpc.Options{
		Logger:     log.With("component", "muxrpc"),
		MaxStreams: n.cfg.MaxStreams,
		RemoteKey:  remote,
	})
	n.peers[e] = &peerInfo{id: id, address: address, direction: direction, since: n.now()}
	n.mu.Unlock()
	if direction != "unix" {
		log.Info("peer connected", "direction", direction)
		if !n.isOwner(remote) {
			go n.startReplication(ctx, e, id, direction, calls, log)
			go n.blobs.Connected(ctx, e)
		}
	} else {
		log.Debug("local client connected")
	}
	<-e.Done()
	n.mu.Lock()
	delete(n.peers, e)
	n.mu.Unlock()
	if direction != "unix" {
		if err := e.Err(); err != nil {
			log.Info("peer disconnected", "err", err)
		} else {
			log.Info("peer disconnected")
		}
	}
}

// startReplication picks how to replicate with a peer:
//   - when we dialled, we open an EBT session (the dialler does, in
//     ssb-ebt); a peer without EBT gets legacy replication instead;
//   - when the peer dialled, it opens EBT itself if it speaks it; a legacy
//     peer (ssb-replicate) calls createHistoryStream first. Legacy
//     replication starts only after the peer's own calls: the JS legacy
//     replicator misses a createHistoryStream that arrives before its
//     connect hook ran, and then never asks us for a feed.
func (n *Node) startReplication(ctx context.Context, e *muxrpc.Endpoint, peer feeds.FeedRef, direction string, calls <-chan string, log *slog.Logger) {
	if direction == "out" {
		err := n.ebt.Start(ctx, e, peer)
		if ebt.IsMissing(err) {
			log.Debug("peer has no EBT: legacy replication")
			n.replicateFeed(ctx, e, peer, log)
		} else if err != nil {
			log.Debug("ebt session ended", "err", err)
		}
		return
	}
	timer := time.NewTimer(2 * time.Second)
	defer timer.Stop()
	for {
		select {
		case m := <-calls:
			switch m {
			case "ebt.replicate":
				return // the peer runs the EBT session
			case "createHistoryStream":
				n.replicateFeed(ctx, e, peer, log)
				return
			}
		case <-timer.C:
			n.replicateFeed(ctx, e, peer, log)
			return
		case <-e.Done():
			return
		}
	}
}
