package sbot

import (
	"context"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/indexes/pubs"
	"github.com/cask-ssb/cask/plugins/service"
)

// Pub announcements ({type: pub, address: {host, port, key}}, what an
// accepted invite publishes) become known addresses: the pubs index
// (indexes/pubs, one of the views) records them in the append batch;
// PubAddresses reads it, and the pubs service hands them to the
// scheduler's address book (AddKnown, source "pub").

// pubsRefresh is how often every known pub address is handed to the
// scheduler again (a new follow brings other feeds' pubs within hops).
const pubsRefresh = time.Minute

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
	include := n.pubAuthorFilter()
	var out []KnownPub
	for _, an := range n.views.Pubs.Addresses(include) {
		if !n.usablePub(an.Address) {
			continue
		}
		out = append(out, KnownPub{Address: an.Address, By: an.By})
	}
	return out
}

// pubAuthorFilter: our feed and the feeds within --hops we do not block.
func (n *Node) pubAuthorFilter() func(feeds.FeedRef) bool {
	me := n.keys.ID
	hops := n.graph.Hops(me, n.cfg.Hops)
	return func(author feeds.FeedRef) bool {
		if author == me {
			return true
		}
		_, in := hops[author]
		return in && !n.graph.Blocks(me, author)
	}
}

func (n *Node) usablePub(a feeds.Address) bool {
	return a.Key != n.keys.ID && !n.graph.Blocks(n.keys.ID, a.Key)
}

// pubsService hands the known pub addresses to the scheduler: all of them
// at start and every pubsRefresh, and a new one as soon as it is stored.
func (n *Node) pubsService() service.Service {
	feed := func() {
		for _, p := range n.PubAddresses() {
			n.AddKnown(p.Address, SourcePub)
		}
	}
	return service.Service{
		Name: "pubs",
		OnAppend: func(m *classic.Message) {
			if m.ContentType() != "pub" {
				return
			}
			a, ok := pubs.ParseContent(m.ContentJSON())
			if ok && n.usablePub(a) && n.pubAuthorFilter()(m.Author) {
				n.AddKnown(a, SourcePub)
			}
		},
		Run: func(ctx context.Context) error {
			feed()
			t := time.NewTicker(pubsRefresh)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
					feed()
				}
			}
		},
	}
}
