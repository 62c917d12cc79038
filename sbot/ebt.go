package sbot

import (
	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/store"
)

// ebtPolicy: with a peer we replicate our own feed, the peer's feed, the
// feeds within --hops follow hops of ours and every feed we already hold,
// never a feed we block.
type ebtPolicy struct{ n *Node }

func (p ebtPolicy) Feeds(peer feeds.FeedRef) []feeds.FeedRef {
	self := p.n.keys.ID
	seen := map[feeds.FeedRef]bool{self: true}
	out := []feeds.FeedRef{self}
	add := func(f feeds.FeedRef) {
		if !seen[f] && !p.n.graph.Blocks(self, f) {
			seen[f] = true
			out = append(out, f)
		}
	}
	add(peer)
	for f := range p.n.graph.Hops(self, p.n.cfg.Hops) {
		add(f)
	}
	for fl, err := range p.n.store.Feeds() {
		if err != nil {
			break
		}
		add(fl.Author)
	}
	return out
}

func (p ebtPolicy) Replicates(peer, feed feeds.FeedRef) bool {
	self := p.n.keys.ID
	if feed == self {
		return true
	}
	if p.n.graph.Blocks(self, feed) {
		return false
	}
	if feed == peer {
		return true
	}
	if _, ok := p.n.graph.Hops(self, p.n.cfg.Hops)[feed]; ok {
		return true
	}
	_, _, ok, err := p.n.store.Latest(feed)
	return err == nil && ok
}

// forkRecorder keeps fork evidence in the store (sbot status lists it).
type forkRecorder struct{ n *Node }

func (f forkRecorder) RecordFork(author feeds.FeedRef, sequence int64, peer feeds.FeedRef, reason string) {
	err := f.n.store.RecordFork(store.Fork{Author: author, Sequence: sequence, Peer: peer, Reason: reason, At: f.n.now().UnixMilli()})
	if err != nil {
		f.n.log.Error("record fork", "feed", author.String(), "sequence", sequence, "err", err)
	}
}
