package sbot

import (
	"context"
	"log/slog"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
)

// replicateFeed runs legacy (createHistoryStream) replication of the
// peer's own feed (plugins/replicate.Legacy).
func (n *Node) replicateFeed(ctx context.Context, e *muxrpc.Endpoint, peer feeds.FeedRef, log *slog.Logger) {
	n.legacy.Replicate(ctx, e, peer, peer, log)
}
