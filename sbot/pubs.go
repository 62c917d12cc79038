package sbot

import (
	"github.com/cask-ssb/cask/feeds"
)

// Pub announcements ({type: pub, address: {host, port, key}}, what an
// accepted invite publishes) become known addresses: the pubs index
// (indexes/pubs) records them in the append batch; PubAddresses reads it.

// KnownPub is a pub address announced in a feed within our hops.
type KnownPub struct {
	Address feeds.Address
	// By are the feeds that announced it (our own included).
	By []feeds.FeedRef
}

// PubAddresses returns the pub addresses announced by our own feed and the
// feeds within --hops of ours, most recently announced first. Pubs we
// block, our own address and pubs announced only by feeds we block are
// left out. It reads an in-memory index: cheap enough for a scheduler to
// call on every round.
func (n *Node) PubAddresses() []KnownPub {
	me := n.keys.ID
	hops := n.graph.Hops(me, n.cfg.Hops)
	include := func(author feeds.FeedRef) bool {
		if author == me {
			return true
		}
		_, in := hops[author]
		return in && !n.graph.Blocks(me, author)
	}
	var out []KnownPub
	for _, an := range n.pubs.Addresses(include) {
		if an.Address.Key == me || n.graph.Blocks(me, an.Address.Key) {
			continue
		}
		out = append(out, KnownPub{Address: an.Address, By: an.By})
	}
	return out
}
