package sbot

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/plugins/status"
)

// syncProgressInterval is how often replication progress is logged while
// messages from other feeds arrive.
const syncProgressInterval = 5 * time.Second

// syncProgress counts the messages of other feeds that replication
// stores, and logs a line at info every interval in which some arrived
// (initial sync shows it is moving; an idle node logs nothing).
type syncProgress struct {
	self feeds.FeedRef
	// sync, if set, compares the peers' EBT clocks with ours; its figures
	// join the line once a peer's clock is known. Set before run.
	sync func() status.Sync

	mu     sync.Mutex
	count  int // messages since the last line
	total  int // messages since start
	active map[feeds.FeedRef]struct{}
}

func newSyncProgress(self feeds.FeedRef) *syncProgress {
	return &syncProgress{self: self, active: map[feeds.FeedRef]struct{}{}}
}

// add records one stored message.
func (p *syncProgress) add(author feeds.FeedRef) {
	if author == p.self {
		return
	}
	p.mu.Lock()
	p.count++
	p.total++
	p.active[author] = struct{}{}
	p.mu.Unlock()
}

// take returns and resets the counts of the current interval.
func (p *syncProgress) take() (count, total, feedsActive int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	count, total, feedsActive = p.count, p.total, len(p.active)
	p.count = 0
	clear(p.active)
	return count, total, feedsActive
}

// run logs progress every interval until ctx ends. missing, if set,
// counts the feeds we want (within hops) of which we hold nothing yet.
func (p *syncProgress) run(ctx context.Context, interval time.Duration, log *slog.Logger, missing func() int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		count, total, active := p.take()
		if count == 0 {
			continue
		}
		args := []any{"received", count, "per_second", float64(count) / interval.Seconds(), "feeds_receiving", active, "total", total}
		if missing != nil {
			args = append(args, "feeds_not_started", missing())
		}
		if p.sync != nil {
			if s := p.sync(); s.Peers > 0 {
				args = append(args, "known", s.Known, "held", s.Held, "feeds_behind", s.FeedsBehind)
			}
		}
		log.Info("replication progress", args...)
	}
}

// missingFeeds counts the feeds within --hops of which we hold no message.
func (n *Node) missingFeeds() int {
	count := 0
	for f := range n.graph.Hops(n.keys.ID, n.cfg.Hops) {
		if f == n.keys.ID {
			continue
		}
		if _, _, ok, err := n.store.Latest(f); err == nil && !ok {
			count++
		}
	}
	return count
}
