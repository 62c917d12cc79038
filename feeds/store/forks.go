package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"iter"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cockroachdb/pebble/v2"
)

// Fork is evidence that a feed forked: a peer sent a message at Sequence
// that differs from (or does not chain to) the one we store.
type Fork struct {
	Author   feeds.FeedRef `json:"author"`
	Sequence int64         `json:"sequence"`
	Peer     feeds.FeedRef `json:"peer"`
	Reason   string        `json:"reason"`
	At       int64         `json:"at"` // ms since epoch
}

// prefixFork holds fork evidence: x/fork/<author:32><sequence:8> → JSON Fork.
var prefixFork = []byte("x/fork/")

// RecordFork stores (or replaces) the evidence of a fork of f.Author at
// f.Sequence. It is outside the log: forks are not messages.
func (s *Store) RecordFork(f Fork) error {
	v, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("record fork: %w", err)
	}
	k := binary.BigEndian.AppendUint64(append(append([]byte{}, prefixFork...), f.Author[:]...), uint64(f.Sequence))
	return s.withDB(func() error {
		if err := s.db.Set(k, v, pebble.Sync); err != nil {
			return fmt.Errorf("record fork: %w", err)
		}
		return nil
	})
}

// Forks yields every recorded fork, by author and sequence.
func (s *Store) Forks() iter.Seq2[Fork, error] {
	return func(yield func(Fork, error) bool) {
		var out []Fork
		err := s.withDB(func() error {
			snap := s.db.NewSnapshot()
			defer snap.Close()
			return scan(snap, prefixFork, func(_, v []byte) error {
				var f Fork
				if err := json.Unmarshal(v, &f); err != nil {
					return fmt.Errorf("%w: fork record: %w", ErrCorrupt, err)
				}
				out = append(out, f)
				return nil
			})
		})
		for _, f := range out {
			if !yield(f, nil) {
				return
			}
		}
		if err != nil {
			yield(Fork{}, err)
		}
	}
}
