package store

import (
	"errors"
	"maps"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cockroachdb/pebble/v2"
)

// TestPeerClock: a peer's clock is stored, replaced, kept across a
// reopen, separate per peer, and a damaged one is reported, not guessed.
func TestPeerClock(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	p1, p2 := testFeed(1), testFeed(2)
	big := map[feeds.FeedRef]int64{}
	for i := range 1000 {
		big[testFeed(100+i)] = int64(i)
	}
	tests := []struct {
		name  string
		clock map[feeds.FeedRef]int64
	}{
		{"empty", map[feeds.FeedRef]int64{}},
		{"declined and held", map[feeds.FeedRef]int64{testFeed(3): -1, testFeed(4): 0, testFeed(5): 1 << 40}},
		{"a thousand feeds", big},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.SavePeerClock(p1, tc.clock); err != nil {
				t.Fatal(err)
			}
			got, ok, err := s.PeerClock(p1)
			if err != nil || !ok || !maps.Equal(got, tc.clock) {
				t.Fatalf("PeerClock = %v, %v, %v; want %v", len(got), ok, err, len(tc.clock))
			}
		})
	}
	if _, ok, err := s.PeerClock(p2); ok || err != nil {
		t.Fatalf("clock of a peer never seen: ok %v, err %v", ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	if got, ok, err := s.PeerClock(p1); err != nil || !ok || !maps.Equal(got, big) {
		t.Fatalf("after reopen: %d entries, %v, %v", len(got), ok, err)
	}
	// A damaged record is an error that names the peer.
	if err := s.db.Set(peerClockKey(p2), []byte("short"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PeerClock(p2); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged clock: %v, want ErrCorrupt", err)
	}
}
