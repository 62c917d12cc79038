package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cockroachdb/pebble/v2"
)

// prefixPeerClock holds the last known vector clock of each replication
// peer (EBT request skipping):
//
//	x/ebtclock/<peer:32> → repeated <feed:32><sequence:8, int64; -1 = the peer does not replicate it>
//
// It is outside the log and not an index: losing it costs one full
// exchange of notes, nothing else.
var prefixPeerClock = []byte("x/ebtclock/")

const peerClockEntry = 32 + 8

func peerClockKey(peer feeds.FeedRef) []byte {
	return append(append([]byte{}, prefixPeerClock...), peer[:]...)
}

// SavePeerClock replaces the stored clock of peer. The write is not
// synced: a clock lost in a crash only makes the next session send full
// notes.
func (s *Store) SavePeerClock(peer feeds.FeedRef, clock map[feeds.FeedRef]int64) error {
	v := make([]byte, 0, len(clock)*peerClockEntry)
	for f, seq := range clock {
		v = append(v, f[:]...)
		v = binary.BigEndian.AppendUint64(v, uint64(seq))
	}
	return s.withDB(func() error {
		if err := s.db.Set(peerClockKey(peer), v, pebble.NoSync); err != nil {
			return fmt.Errorf("save clock of peer %s: %w", peer, err)
		}
		return nil
	})
}

// PeerClock returns the stored clock of peer; ok is false when there is
// none.
func (s *Store) PeerClock(peer feeds.FeedRef) (clock map[feeds.FeedRef]int64, ok bool, err error) {
	err = s.withDB(func() error {
		v, closer, err := s.db.Get(peerClockKey(peer))
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read clock of peer %s: %w", peer, err)
		}
		defer closer.Close()
		if len(v)%peerClockEntry != 0 {
			return fmt.Errorf("%w: clock of peer %s: %d bytes", ErrCorrupt, peer, len(v))
		}
		ok = true
		clock = make(map[feeds.FeedRef]int64, len(v)/peerClockEntry)
		for ; len(v) > 0; v = v[peerClockEntry:] {
			var f feeds.FeedRef
			copy(f[:], v[:32])
			clock[f] = int64(binary.BigEndian.Uint64(v[32:peerClockEntry]))
		}
		return nil
	})
	return clock, ok, err
}
