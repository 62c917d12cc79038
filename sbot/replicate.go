package sbot

import (
	"context"
	"errors"
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
	got := 0
	for body, err := range src.All(ctx) {
		if err != nil {
			var ce *muxrpc.CallError
			if errors.As(err, &ce) {
				log.Debug("replicate: peer ended the stream with an error", "err", err)
			}
			break
		}
		m, err := classic.Parse(body)
		if err == nil && m.Author != feed {
			err = errors.New("message of another feed in the stream")
		}
		if err == nil {
			err = m.VerifySignature(nil)
		}
		if err == nil {
			_, err = n.writer.AddVerified(ctx, m)
		}
		if err != nil {
			if errors.Is(err, ErrClosing) || errors.Is(err, context.Canceled) {
				return
			}
			log.Warn("replicate: invalid message from peer, disconnecting", "feed", feed.String(), "err", err)
			e.Close()
			return
		}
		got++
	}
	if got > 0 {
		log.Info("replicated", "feed", feed.String(), "messages", got)
	}
}
