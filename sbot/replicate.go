package sbot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/muxrpc"
)

// replicateFeed is legacy (createHistoryStream) replication of one feed
// from a connected peer: it asks for everything after our latest message,
// live, and appends what validates. A peer that sends an invalid message
// is disconnected; the valid messages it sent before stay stored.
//
// Calling createHistoryStream on a JS peer also matters for interop: the
// JS legacy replicator (ssb-replicate) only asks us for feeds once we have
// called it at least once.
func (n *Node) replicateFeed(ctx context.Context, e *muxrpc.Endpoint, feed feeds.FeedRef, log *slog.Logger) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // also stops the reader goroutine below
	seq, _, _, err := n.store.Latest(feed)
	if err != nil {
		log.Error("replicate: read latest", "err", err)
		return
	}
	src, err := e.Source(ctx, muxrpc.Method{"createHistoryStream"}, map[string]any{
		"id": feed.String(), "seq": seq + 1, "live": true, "keys": false,
	})
	if err != nil {
		log.Debug("replicate: createHistoryStream refused", "err", err)
		return
	}
	defer src.Close()

	// A reader goroutine parses what the peer sends; this goroutine takes
	// everything that has arrived (up to maxBatch), verifies the signatures
	// as one parallel batch and hands the batch to the writer, which
	// commits it with one fsync.
	type item struct {
		m   *classic.Message
		err error
	}
	items := make(chan item, maxBatch)
	go func() {
		defer close(items)
		for body, err := range src.All(ctx) {
			if err != nil {
				var ce *muxrpc.CallError
				if errors.As(err, &ce) {
					log.Debug("replicate: peer ended the stream with an error", "err", err)
				}
				return
			}
			m, err := classic.Parse(body)
			if err == nil && m.Author != feed {
				err = errors.New("message of another feed in the stream")
			}
			select {
			case items <- item{m, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	got := 0
	defer func() {
		if got > 0 {
			log.Info("replicated", "feed", feed.String(), "messages", got)
		}
	}()
	batch := make([]*classic.Message, 0, maxBatch)
	for it := range items {
		batch = append(batch[:0], it.m)
		bad := it.err
	more:
		for bad == nil && len(batch) < maxBatch {
			select {
			case it, ok := <-items:
				if !ok {
					break more
				}
				if it.err != nil {
					bad = it.err
					break more
				}
				batch = append(batch, it.m)
			default:
				break more
			}
		}
		if it.err != nil {
			batch = batch[:0]
		}
		// Signatures: parallel batch verification; the first bad one cuts
		// the batch there (the valid messages before it are kept).
		for i, ok := range n.verifier.VerifySignatures(ctx, batch) {
			if !ok {
				if bad == nil {
					bad = fmt.Errorf("message %d of %s: invalid signature", batch[i].Sequence, feed)
				}
				batch = batch[:i]
				break
			}
		}
		for i, err := range n.writer.AddVerifiedBatch(ctx, batch) {
			if errors.Is(err, ErrAlreadyStored) {
				continue // another peer sent it first
			}
			if err != nil {
				if errors.Is(err, ErrClosing) || errors.Is(err, context.Canceled) {
					return
				}
				if bad == nil {
					bad = fmt.Errorf("message %d of %s: %w", batch[i].Sequence, feed, err)
				}
				break
			}
			got++
		}
		if bad != nil {
			log.Warn("replicate: invalid message from peer, disconnecting", "feed", feed.String(), "err", bad)
			e.Close()
			return
		}
	}
}
