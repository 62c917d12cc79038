package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/cockroachdb/pebble/v2"
)

// IndexEntry is one key of an indexer, relative to its prefix, and its
// value. Both are the caller's copies.
type IndexEntry struct {
	Key, Value []byte
}

// IndexRange selects the keys of one indexer in [Lo, Hi) (relative to
// the indexer's prefix; a nil Hi means no upper bound), ascending or,
// with Reverse, descending.
type IndexRange struct {
	Index   string
	Lo, Hi  []byte
	Reverse bool
}

const indexChunk = 512

// IndexScan yields the entries of r in key order. Like Log, it holds no
// Pebble iterator while the caller's loop body runs (entries are read in
// chunks), so a slow consumer never blocks Close or compactions. A
// cancelled ctx or a closed store ends the iteration with one final error.
func (s *Store) IndexScan(ctx context.Context, r IndexRange) iter.Seq2[IndexEntry, error] {
	return func(yield func(IndexEntry, error) bool) {
		prefix := indexPrefix(r.Index)
		lo := append(bytes.Clone(prefix), r.Lo...)
		var hi []byte
		if r.Hi != nil {
			hi = append(bytes.Clone(prefix), r.Hi...)
		} else {
			hi = prefixEnd(prefix)
		}
		for {
			if err := ctx.Err(); err != nil {
				yield(IndexEntry{}, err)
				return
			}
			var chunk []IndexEntry
			err := s.withDB(func() error {
				it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
				if err != nil {
					return err
				}
				defer it.Close()
				ok := it.First()
				if r.Reverse {
					ok = it.Last()
				}
				for ; ok && len(chunk) < indexChunk; ok = step(it, r.Reverse) {
					v, err := it.ValueAndErr()
					if err != nil {
						return err
					}
					k := it.Key()
					chunk = append(chunk, IndexEntry{Key: bytes.Clone(k[len(prefix):]), Value: bytes.Clone(v)})
				}
				return it.Error()
			})
			if err != nil {
				yield(IndexEntry{}, fmt.Errorf("scan index %s: %w", r.Index, err))
				return
			}
			for _, e := range chunk {
				if !yield(e, nil) {
					return
				}
			}
			if len(chunk) < indexChunk {
				return
			}
			last := append(bytes.Clone(prefix), chunk[len(chunk)-1].Key...)
			if r.Reverse {
				hi = last // exclusive upper bound
			} else {
				lo = append(last, 0) // the next key after last
			}
		}
	}
}

// IndexGet returns the value of one key of an indexer (relative to its
// prefix), or an error wrapping ErrNotFound.
func (s *Store) IndexGet(index string, key []byte) ([]byte, error) {
	var out []byte
	err := s.withDB(func() error {
		v, closer, err := s.db.Get(append(indexPrefix(index), key...))
		if errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("index %s: key %x: %w", index, key, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("index %s: %w", index, err)
		}
		out = bytes.Clone(v)
		return closer.Close()
	})
	return out, err
}
