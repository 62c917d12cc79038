package ebt

import (
	"context"
	"time"

	"github.com/cask-ssb/cask/feeds"
)

// watchStalls runs checkStalls a few times per StallTimeout until ctx
// ends.
func (s *session) watchStalls(ctx context.Context) {
	every := max(s.r.stallTimeout()/4, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.checkStalls(now)
		}
	}
}

// checkStalls moves away the feeds this session receives (partitioning:
// rxFrom) that its peer has not sent for StallTimeout while some connected
// peer, this one included, is known to hold more of them than we do. A feed
// goes to the session whose peer is furthest ahead of us; this peer is told
// to stop sending it. With no other peer ahead, the feed stays and the wait
// starts again. Without it, a peer that claims a feed and never sends it
// would keep every other peer from being asked for it.
func (s *session) checkStalls(now time.Time) {
	r := s.r
	r.mu.Lock()
	var owned []feeds.FeedRef
	for f, o := range r.rxFrom {
		if o == s {
			owned = append(owned, f)
		}
	}
	r.mu.Unlock()
	lseqs, err := s.latest(owned)
	if err != nil {
		s.log.Debug("ebt: stall check", "err", err)
		return
	}
	timeout := r.stallTimeout()
	r.mu.Lock()
	defer r.mu.Unlock()
	s.mu.Lock()
	for f := range s.waiting {
		if r.rxFrom[f] != s {
			delete(s.waiting, f) // no longer ours to wait for
		}
	}
	s.mu.Unlock()
	moved := 0
	for i, f := range owned {
		if r.rxFrom[f] != s {
			continue
		}
		lseq := lseqs[i]
		if !r.aheadLocked(f, lseq) {
			s.mu.Lock()
			delete(s.waiting, f)
			s.mu.Unlock()
			continue
		}
		s.mu.Lock()
		since, ok := s.waiting[f]
		if !ok {
			s.waiting[f] = now
		}
		s.mu.Unlock()
		if !ok || now.Sub(since) < timeout {
			continue
		}
		delete(r.rxFrom, f)
		if !r.handOverLocked(f, s) {
			r.rxFrom[f] = s // nobody else can send it: keep waiting here
			s.mu.Lock()
			s.waiting[f] = now
			s.mu.Unlock()
			continue
		}
		s.mu.Lock()
		s.rx[f] = false
		s.queued[f] = Note(lseq, false)
		delete(s.waiting, f)
		s.mu.Unlock()
		s.log.Debug("ebt: feed stalled; asking another peer", "feed", f.String(), "waited", now.Sub(since), "held", lseq)
		r.stats.stalls.Add(1)
		moved++
	}
	if moved > 0 {
		s.signal()
	}
}

// aheadLocked reports whether a session's peer is known to hold more of
// f than our lseq (and replicates it). r.mu is held; no session's lock is.
func (r *Replicator) aheadLocked(f feeds.FeedRef, lseq int64) bool {
	for t := range r.sessions {
		t.mu.Lock()
		c, ok := t.clock[f]
		t.mu.Unlock()
		if ok && c > lseq {
			return true
		}
	}
	return false
}
