package sbot

import (
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/plugins/status"
)

// TestSyncTotals: the known/held arithmetic of sync progress, one row per
// rule.
func TestSyncTotals(t *testing.T) {
	f := func(b byte) feeds.FeedRef { var r feeds.FeedRef; r[0] = b; return r }
	p1, p2, p3 := f(101), f(102), f(103)
	type clk = map[feeds.FeedRef]int64
	for _, c := range []struct {
		name   string
		ours   map[feeds.FeedRef]int64
		peers  []peerClock
		want   status.Sync
		byPeer []status.PeerSync // Known, Held, FeedsBehind, Clock checked
	}{
		{
			name: "no peers: nothing known, not caught up",
			ours: clk{f(1): 10},
			want: status.Sync{},
		},
		{
			name:   "one peer ahead on one feed",
			ours:   clk{f(1): 10},
			peers:  []peerClock{{id: p1, clock: clk{f(1): 25}}},
			want:   status.Sync{Known: 25, Held: 10, FeedsBehind: 1, Peers: 1},
			byPeer: []status.PeerSync{{Known: 25, Held: 10, FeedsBehind: 1, Clock: true}},
		},
		{
			name:   "a feed where we are ahead counts as held, not behind",
			ours:   clk{f(1): 30, f(2): 5},
			peers:  []peerClock{{id: p1, clock: clk{f(1): 25, f(2): 5}}},
			want:   status.Sync{Known: 35, Held: 35, Peers: 1, CaughtUp: true},
			byPeer: []status.PeerSync{{Known: 35, Held: 35, Clock: true}},
		},
		{
			name:   "a feed we hold nothing of",
			ours:   clk{},
			peers:  []peerClock{{id: p1, clock: clk{f(3): 7}}},
			want:   status.Sync{Known: 7, Held: 0, FeedsBehind: 1, Peers: 1},
			byPeer: []status.PeerSync{{Known: 7, FeedsBehind: 1, Clock: true}},
		},
		{
			name: "two peers: per feed the highest clock counts once in the total",
			ours: clk{f(1): 10, f(2): 10},
			peers: []peerClock{
				{id: p1, clock: clk{f(1): 20, f(2): 10}},
				{id: p2, clock: clk{f(1): 15, f(2): 12}},
			},
			want: status.Sync{Known: 32, Held: 20, FeedsBehind: 2, Peers: 2},
			byPeer: []status.PeerSync{
				{Known: 30, Held: 20, FeedsBehind: 1, Clock: true},
				{Known: 27, Held: 20, FeedsBehind: 2, Clock: true},
			},
		},
		{
			name: "a peer whose clock has not arrived keeps it from being caught up",
			ours: clk{f(1): 10},
			peers: []peerClock{
				{id: p1, clock: clk{f(1): 10}},
				{id: p2, waiting: true},
			},
			want:   status.Sync{Known: 10, Held: 10, Peers: 1, Waiting: 1},
			byPeer: []status.PeerSync{{Known: 10, Held: 10, Clock: true}, {}},
		},
		{
			name: "a legacy peer (no clock) is neither counted nor waited for",
			ours: clk{f(1): 10},
			peers: []peerClock{
				{id: p1, clock: clk{f(1): 10}},
				{id: p3},
			},
			want:   status.Sync{Known: 10, Held: 10, Peers: 1, CaughtUp: true},
			byPeer: []status.PeerSync{{Known: 10, Held: 10, Clock: true}, {}},
		},
		{
			name:   "an empty clock: caught up with a peer that has nothing",
			ours:   clk{f(1): 3},
			peers:  []peerClock{{id: p1, clock: clk{}}},
			want:   status.Sync{Peers: 1, CaughtUp: true},
			byPeer: []status.PeerSync{{Clock: true}},
		},
		{
			name:   "a peer at sequence 0 of a feed (it wants it, holds none)",
			ours:   clk{},
			peers:  []peerClock{{id: p1, clock: clk{f(4): 0}}},
			want:   status.Sync{Peers: 1, CaughtUp: true},
			byPeer: []status.PeerSync{{Clock: true}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls := map[feeds.FeedRef]int{}
			got := syncTotals(func(fr feeds.FeedRef) int64 { calls[fr]++; return c.ours[fr] }, c.peers)
			if got.Sync != c.want {
				t.Errorf("totals = %+v, want %+v", got.Sync, c.want)
			}
			if len(got.ByPeer) != len(c.peers) {
				t.Fatalf("%d peers reported, want %d", len(got.ByPeer), len(c.peers))
			}
			for i, w := range c.byPeer {
				g := got.ByPeer[i]
				if g.ID != c.peers[i].id.String() || g.Known != w.Known || g.Held != w.Held || g.FeedsBehind != w.FeedsBehind || g.Clock != w.Clock {
					t.Errorf("peer %d = %+v, want %+v", i, g, w)
				}
			}
			for fr, n := range calls {
				if n != 1 {
					t.Errorf("our sequence of %v read %d times, want once", fr, n)
				}
			}
		})
	}
}
