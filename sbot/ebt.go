package sbot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
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

// ebtIngester validates and stores what an EBT peer sends.
type ebtIngester struct{ n *Node }

// Ingest parses the messages, verifies their signatures as one parallel
// batch and appends them in order with one fsync. Messages we hold already
// and messages that do not follow our latest (a gap) are skipped; a bad
// signature, a message that does not parse or a fork is an error.
func (g ebtIngester) Ingest(ctx context.Context, peer feeds.FeedRef, raw []json.RawMessage) error {
	msgs := make([]*classic.Message, 0, len(raw))
	for _, b := range raw {
		m, err := classic.Parse(b)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	for i, ok := range g.n.verifier.VerifySignatures(ctx, msgs) {
		if !ok {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("message %d of %s: invalid signature", msgs[i].Sequence, msgs[i].Author)
		}
	}
	for i, err := range g.n.writer.AddVerifiedBatch(ctx, msgs) {
		switch {
		case err == nil, errors.Is(err, ErrAlreadyStored):
		case errors.Is(err, ErrClosing), ctx.Err() != nil:
			return context.Canceled
		case !classic.IsFatal(err) && !errors.Is(err, ErrFork):
			// out of order: ignore, the peer will send it again in order
		default:
			return fmt.Errorf("message %d of %s: %w", msgs[i].Sequence, msgs[i].Author, err)
		}
	}
	return nil
}
