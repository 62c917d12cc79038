package sbot

import (
	"context"
	"time"

	"github.com/cask-ssb/cask/plugins/ebt"
	"github.com/cask-ssb/cask/plugins/service"
)

// replicationService starts replication on every peer connection:
//   - when we dialled, we open an EBT session (the dialler does, in
//     ssb-ebt); a peer without EBT gets legacy replication instead;
//   - when the peer dialled, it opens EBT itself if it speaks it; a legacy
//     peer (ssb-replicate) calls createHistoryStream first. Legacy
//     replication starts only after the peer's own calls: the JS legacy
//     replicator misses a createHistoryStream that arrives before its
//     connect hook ran, and then never asks us for a feed.
func (n *Node) replicationService() service.Service {
	return service.Service{Name: "replication", OnConnect: n.startReplication}
}

func (n *Node) startReplication(ctx context.Context, p service.Peer) {
	log := n.log.With("peer", p.ID().String())
	e := p.Endpoint()
	if p.Dialled() {
		// The session runs inside Start: it is EBT unless the peer
		// refuses ebt.replicate, which it does at once.
		up := time.AfterFunc(time.Second, func() { replicating(p, "ebt") })
		err := n.ebt.Start(ctx, e, p.ID())
		up.Stop()
		switch {
		case ebt.IsMissing(err):
			log.Debug("peer has no EBT: legacy replication")
			replicating(p, "legacy")
			n.replicateFeed(ctx, e, p.ID(), log)
		case IsFull(err):
			log.Warn("peer refused us: it is full", "err", err)
			n.conns.dropPeer(p.ID(), "peer is full: "+err.Error())
		case err != nil:
			log.Debug("ebt session ended", "err", err)
		}
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	name, err := p.WaitCall(wctx, "ebt.replicate", "createHistoryStream")
	cancel()
	switch {
	case name == "ebt.replicate":
		replicating(p, "ebt")
		return // the peer runs the EBT session
	case ctx.Err() != nil:
		return
	case err != nil && wctx.Err() == nil:
		return // the connection ended
	}
	replicating(p, "legacy")
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	if wctx.Err() != nil {
		// The peer called neither within the wait: on a loaded machine an
		// EBT peer's call may come later. When it does, legacy
		// replication stops (both would send every message of the
		// peer's feed, netsim counted it).
		watched := make(chan struct{})
		defer func() { stop(); <-watched }()
		go func() {
			defer close(watched)
			if name, _ := p.WaitCall(lctx, "ebt.replicate"); name == "ebt.replicate" {
				log.Debug("peer started EBT late: legacy replication stops")
				stop()
			}
		}()
	}
	n.replicateFeed(lctx, e, p.ID(), log)
}

// replicating notes the replication kind of a connection (for its log
// lines), when p is one of the connection manager's connections.
func replicating(p service.Peer, kind string) {
	if c, ok := p.(*conn); ok {
		c.replicating(kind)
	}
}
