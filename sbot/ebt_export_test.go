package sbot

import (
	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/plugins/ebt"
)

// What the external EBT tests (ebt_*_test.go, package sbot_test, which
// use bench/fill) look at inside a node.

// EBTStats returns the node's EBT counters.
func (n *Node) EBTStats() ebt.Stats { return n.ebt.Stats() }

// EBTSessions returns the peers of the node's running EBT sessions.
func (n *Node) EBTSessions() []feeds.FeedRef { return n.ebt.Sessions() }

// EBTReceivingFrom tells the peer the node asks to send feed.
func (n *Node) EBTReceivingFrom(feed feeds.FeedRef) (feeds.FeedRef, bool) {
	return n.ebt.ReceivingFrom(feed)
}

// DropPeer disconnects a peer.
func (n *Node) DropPeer(peer feeds.FeedRef) bool { return n.conns.dropPeer(peer, "test") }
