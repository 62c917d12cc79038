package sbot_test

import (
	"context"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/internal/interop"
)

// TestInteropEBTReconnectNotesOnlyChanged: with a JS ssb-ebt peer on the
// other side, after 10,000 of its messages were replicated, our second
// session's initial notes mention only the feed that changed since (ours),
// and the new message still reaches the JS peer.
func TestInteropEBTReconnectNotesOnlyChanged(t *testing.T) {
	interop.Kit(t) // fails (not skips) if the kit is unusable; skips only with -short
	const theirs, ours = 10000, 5
	n, c := ebtNode(t, t.TempDir())
	p := interop.StartPeer(t, "--path", t.TempDir(), "--replicate", n.ID().String(), "--publish", "10000", "--progress-ms", "50")
	if _, err := p.WaitEvent(90*time.Second, func(e interop.Event) bool { return e.Name() == "published" && e.Int("seq") >= theirs }); err != nil {
		t.Fatal(err)
	}
	js, err := feeds.ParseFeedRef(p.ID)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range ours {
		if _, err := c.Publish(ctx, map[string]any{"type": "post", "text": "from Go"}); err != nil {
			t.Fatal(err)
		}
	}
	ourFeedAt := func(seq int64) {
		t.Helper()
		if _, err := p.WaitEvent(90*time.Second, func(e interop.Event) bool {
			return e.Name() == "progress" && e.String("feed") == n.ID().String() && e.Int("seq") >= seq
		}); err != nil {
			t.Fatalf("the JS peer did not get our message %d: %v", seq, err)
		}
	}
	if err := n.ConnectAddress(ctx, p.Address); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		seq, _, _, err := n.Store().Latest(js)
		if err != nil {
			t.Fatal(err)
		}
		if seq == theirs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("we hold %d of the JS peer's %d messages", seq, theirs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ourFeedAt(ours)
	ebtSettle(t, n)
	first := n.EBTStats().InitialEntries
	n.DropPeer(js)
	for deadline := time.Now().Add(20 * time.Second); len(n.EBTSessions()) > 0 || len(n.Status().Peers) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("EBT session with the JS peer still running")
		}
	}
	if _, err := c.Publish(ctx, map[string]any{"type": "post", "text": "after the first session"}); err != nil {
		t.Fatal(err)
	}
	before := n.EBTStats()
	// The JS peer may still be closing the first connection: retry.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		err := n.ConnectAddress(ctx, p.Address)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reconnect: %v", err)
		}
	}
	ourFeedAt(ours + 1)
	ebtSettle(t, n)
	after := n.EBTStats()
	initial, entries := after.InitialEntries-before.InitialEntries, after.NoteEntries-before.NoteEntries
	t.Logf("initial notes: first session %d feeds, second %d; note entries sent in the second session: %d", first, initial, entries)
	if first < 2 {
		t.Fatalf("first session's initial notes mention %d feeds, want ours and the JS peer's", first)
	}
	if initial != 1 {
		t.Errorf("second session's initial notes mention %d feeds, want 1 (ours, which changed)", initial)
	}
	if entries > 2 {
		t.Errorf("second session sent %d note entries, want at most 2 (ours, and the answer to the JS peer's note of its feed)", entries)
	}
	for _, e := range p.Events() {
		if e.Name() == "error" {
			t.Errorf("JS peer error event: %v", e)
		}
	}
}
