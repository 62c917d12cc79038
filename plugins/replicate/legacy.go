package replicate

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
)

// Latest is what Legacy reads of the store.
type Latest interface {
	Latest(author feeds.FeedRef) (seq int64, key feeds.MessageRef, ok bool, err error)
}

// Legacy is legacy (createHistoryStream) replication of one feed from a
// connected peer: it asks for everything after our latest message, live,
// and hands what arrives to the Ingester in batches.
//
// Calling createHistoryStream on a JS peer also matters for interop: the
// JS legacy replicator (ssb-replicate) only asks us for feeds once we have
// called it at least once.
type Legacy struct {
	Store    Latest
	Ingester *Ingester
	// MaxBatch caps the messages of one ingest batch (default 1000).
	MaxBatch int
}

// Replicate runs until the stream or ctx ends. A peer that sends an
// invalid message is disconnected (e.Close); the valid messages it sent
// before stay stored.
func (l *Legacy) Replicate(ctx context.Context, e *muxrpc.Endpoint, peer, feed feeds.FeedRef, log *slog.Logger) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // also stops the reader goroutine below
	maxBatch := l.MaxBatch
	if maxBatch <= 0 {
		maxBatch = 1000
	}
	seq, _, _, err := l.Store.Latest(feed)
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

	// A reader goroutine collects what the peer sends; this goroutine takes
	// everything that has arrived (up to maxBatch) and ingests it as one
	// batch (parallel signature verification, one fsync).
	items := make(chan json.RawMessage, maxBatch)
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
			select {
			case items <- append(json.RawMessage(nil), body...):
			case <-ctx.Done():
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
	batch := make([]json.RawMessage, 0, maxBatch)
	for it := range items {
		batch = append(batch[:0], it)
	more:
		for len(batch) < maxBatch {
			select {
			case it, ok := <-items:
				if !ok {
					break more
				}
				batch = append(batch, it)
			default:
				break more
			}
		}
		out, err := l.Ingester.IngestBatch(ctx, peer, &feed, batch)
		got += out.Kept
		if errors.Is(err, ErrInvalid) {
			log.Warn("replicate: invalid message from peer, disconnecting", "feed", feed.String(), "err", err)
			e.Close()
			return
		}
		if err != nil {
			return
		}
	}
}
