package sbot_test

import (
	"context"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

// TestEBTPeerNoteBelowStoredClock: a's stored clock of b says b holds a's
// newest message (a sent it, but the connection was cut before b stored
// it, or b crashed); b's note says it does not. The note wins: a sends
// the message. (A stored clock trusted above the peer's note left b
// without it for as long as the session lasted; with EBT's partitioning
// no other session of b asked for it either.)
func TestEBTPeerNoteBelowStoredClock(t *testing.T) {
	const msgs = 5
	a, ca := ebtNode(t, t.TempDir())
	b, cb := ebtNode(t, t.TempDir())
	ctx := context.Background()
	for i := range msgs {
		if _, err := ca.Publish(ctx, map[string]any{"type": "post", "text": "before", "i": i}); err != nil {
			t.Fatal(err)
		}
	}
	followAll(t, cb, a.ID())
	if err := b.ConnectAddress(ctx, ebtAddr(t, a)); err != nil {
		t.Fatal(err)
	}
	ebtWaitLatest(t, b, a.ID(), msgs)
	ebtSettle(t, a, b)
	ebtDisconnect(t, a, b)

	// a publishes one more and believes b got it; b's stored clock of a
	// is cleared, so b notes a's feed as it holds it (msgs).
	if _, err := ca.Publish(ctx, map[string]any{"type": "post", "text": "lost in flight"}); err != nil {
		t.Fatal(err)
	}
	clockA, ok, err := a.Store().PeerClock(b.ID())
	if err != nil || !ok {
		t.Fatalf("a's stored clock of b: ok %v, err %v", ok, err)
	}
	clockA[a.ID()] = msgs + 1
	if err := a.Store().SavePeerClock(b.ID(), clockA); err != nil {
		t.Fatal(err)
	}
	if err := b.Store().SavePeerClock(a.ID(), map[feeds.FeedRef]int64{}); err != nil {
		t.Fatal(err)
	}
	if err := b.ConnectAddress(ctx, ebtAddr(t, a)); err != nil {
		t.Fatal(err)
	}
	ebtWaitLatest(t, b, a.ID(), msgs+1)
}
