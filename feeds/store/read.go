package store

import (
	"bytes"
	"errors"
	"fmt"
	"iter"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cockroachdb/pebble/v2"
)

// getRecord reads and copies the log record seq. The caller ensures the db is open.
func (s *Store) getRecord(seq int64) (Record, error) {
	v, closer, err := s.db.Get(logKey(nil, seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return Record{}, fmt.Errorf("record seq %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("read record seq %d: %w", seq, err)
	}
	defer closer.Close()
	var r Record
	if err := decodeRecord(seq, v, &r); err != nil {
		return Record{}, err
	}
	r.Value = bytes.Clone(r.Value)
	return r, nil
}

// indexedRecord reads the record an index entry points at; a missing record
// is corruption, not absence.
func (s *Store) indexedRecord(seq int64, what func() string) (Record, error) {
	r, err := s.getRecord(seq)
	if errors.Is(err, ErrNotFound) {
		return Record{}, fmt.Errorf("%w: %s points at missing seq %d", ErrCorrupt, what(), seq)
	}
	return r, err
}

// indexedSeq reads an index entry holding a receive seq.
func (s *Store) indexedSeq(key []byte, what func() string) (int64, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, fmt.Errorf("%s: %w", what(), ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", what(), err)
	}
	defer closer.Close()
	seq, err := decodeSeqValue("index", v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what(), err)
	}
	return seq, nil
}

// At returns the record with receive sequence seq (ErrNotFound if none).
func (s *Store) At(seq int64) (Record, error) {
	var r Record
	err := s.withDB(func() (err error) {
		if seq < 1 {
			return fmt.Errorf("record seq %d: %w", seq, ErrNotFound)
		}
		r, err = s.getRecord(seq)
		return err
	})
	return r, err
}

// Get returns the record of message key (ErrNotFound if not stored).
func (s *Store) Get(key feeds.MessageRef) (Record, error) {
	var r Record
	err := s.withDB(func() error {
		seq, err := s.indexedSeq(byKeyKey(nil, key), func() string { return "message " + key.String() })
		if err != nil {
			return err
		}
		r, err = s.indexedRecord(seq, func() string { return "by-key index of " + key.String() })
		if err != nil {
			return err
		}
		if r.Key != key {
			return fmt.Errorf("%w: by-key index maps %s to seq %d holding %s", ErrCorrupt, key, seq, r.Key)
		}
		return nil
	})
	return r, err
}

// GetBySequence returns message number seq of author's feed (ErrNotFound if
// not stored).
func (s *Store) GetBySequence(author feeds.FeedRef, seq int64) (Record, error) {
	var r Record
	err := s.withDB(func() error {
		rs, err := s.indexedSeq(byFeedKey(nil, author, seq), func() string { return fmt.Sprintf("feed %s sequence %d", author, seq) })
		if err != nil {
			return err
		}
		r, err = s.indexedRecord(rs, func() string { return fmt.Sprintf("by-feed index of %s:%d", author, seq) })
		if err != nil {
			return err
		}
		if r.Author != author || r.Sequence != seq {
			return fmt.Errorf("%w: by-feed index maps %s:%d to seq %d holding %s:%d",
				ErrCorrupt, author, seq, rs, r.Author, r.Sequence)
		}
		return nil
	})
	return r, err
}

// feedsChunk is how many heads Feeds reads per iterator.
const feedsChunk = 512

// Feeds yields every feed with at least one message, with its latest
// message, in byte order of the author key. Feeds appended during the
// iteration may or may not be included.
func (s *Store) Feeds() iter.Seq2[FeedLatest, error] {
	return func(yield func(FeedLatest, error) bool) {
		lower := append([]byte(nil), prefixHead...)
		upper := prefixEnd(prefixHead)
		buf := make([]FeedLatest, 0, feedsChunk)
		for {
			buf = buf[:0]
			err := s.withDB(func() error {
				it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
				if err != nil {
					return err
				}
				defer it.Close()
				for ok := it.First(); ok && len(buf) < feedsChunk; ok = it.Next() {
					k := it.Key()
					if len(k) != len(prefixHead)+32 {
						return fmt.Errorf("%w: head key of %d bytes", ErrCorrupt, len(k))
					}
					var a feeds.FeedRef
					copy(a[:], k[len(prefixHead):])
					h, err := decodeHead(a, it.Value())
					if err != nil {
						return err
					}
					buf = append(buf, h)
				}
				return it.Error()
			})
			if err != nil {
				yield(FeedLatest{}, fmt.Errorf("list feeds: %w", err))
				return
			}
			for _, h := range buf {
				if !yield(h, nil) {
					return
				}
			}
			if len(buf) < feedsChunk {
				return
			}
			lower = append(headKey(nil, buf[len(buf)-1].Author), 0)
		}
	}
}
