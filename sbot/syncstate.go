package sbot

import (
	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/plugins/status"
)

// peerClock is what one connected peer told us it holds.
type peerClock struct {
	id feeds.FeedRef
	// waiting: its replication kind is not known yet, or it is EBT and
	// its notes have not arrived.
	waiting bool
	// clock is its latest sequence per feed we replicate with it (nil for
	// a peer on legacy replication, which advertises nothing).
	clock map[feeds.FeedRef]int64
}

// syncTotals compares the peers' clocks with ours (ours returns our
// latest sequence of a feed, 0 for none). Per feed a peer names, the
// messages known to exist are the highest sequence among the peers and
// us, and we hold our latest sequence of them: a feed where we are ahead
// counts as held, never as behind. Per peer the same is done with that
// peer's clock alone.
func syncTotals(ours func(feeds.FeedRef) int64, peers []peerClock) status.Progress {
	p := status.Progress{ByPeer: make([]status.PeerSync, 0, len(peers))}
	known := map[feeds.FeedRef]int64{}
	held := map[feeds.FeedRef]int64{}
	our := func(f feeds.FeedRef) int64 {
		if h, ok := held[f]; ok {
			return h
		}
		h := max(ours(f), 0)
		held[f] = h
		return h
	}
	for _, pc := range peers {
		ps := status.PeerSync{ID: pc.id.String(), Clock: !pc.waiting && pc.clock != nil}
		switch {
		case pc.waiting:
			p.Waiting++
		case pc.clock != nil:
			p.Peers++
		}
		for f, seq := range pc.clock {
			o := our(f)
			k := max(seq, o)
			ps.Known += k
			ps.Held += o
			if seq > o {
				ps.FeedsBehind++
			}
			known[f] = max(known[f], k)
		}
		p.ByPeer = append(p.ByPeer, ps)
	}
	for f, k := range known {
		o := our(f)
		p.Known += k
		p.Held += o
		if k > o {
			p.FeedsBehind++
		}
	}
	p.CaughtUp = p.Peers > 0 && p.Waiting == 0 && p.Held >= p.Known
	return p
}

// syncProgress gathers the connected peers' clocks and compares them
// with ours.
func (n *Node) syncProgress() (status.Sync, []status.PeerSync) {
	conns := n.conns.connected()
	peers := make([]peerClock, 0, len(conns))
	for _, c := range conns {
		pc := peerClock{id: c.id}
		kind := ""
		if r := c.repl.Load(); r != nil {
			kind = *r
		}
		clock, ok := n.ebt.PeerClock(c.id)
		switch {
		case ok:
			pc.clock = clock
			if pc.clock == nil {
				pc.clock = map[feeds.FeedRef]int64{}
			}
		case kind == "" || kind == kindEBT:
			pc.waiting = true
		}
		peers = append(peers, pc)
	}
	p := syncTotals(func(f feeds.FeedRef) int64 {
		seq, _, _, err := n.store.Latest(f)
		if err != nil {
			return 0
		}
		return seq
	}, peers)
	return p.Sync, p.ByPeer
}

// SyncProgress implements status.SyncSource.
func (n *Node) SyncProgress() status.Progress {
	s, byPeer := n.syncProgress()
	return status.Progress{Sync: s, ByPeer: byPeer}
}
