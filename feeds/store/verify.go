package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cockroachdb/pebble/v2"
)

// Verify walks the whole store in one consistent snapshot and cross-checks
// it: the log is contiguous from 1 to the tail, every record's checksum
// holds, each feed's sequences run 1..n in receive order, the by-key and
// by-feed indexes hold exactly one entry per record pointing at it, every
// feed head names the feed's last record, and the meta tail equals the log
// tail. It returns the first inconsistency found, wrapping ErrCorrupt.
// It reads everything, so it takes time proportional to the store's size.
func (s *Store) Verify(ctx context.Context) error {
	return s.withDB(func() error {
		snap := s.db.NewSnapshot()
		defer snap.Close()
		if err := verifySnapshot(ctx, snap); err != nil {
			return fmt.Errorf("verify store at %s: %w", s.dir, err)
		}
		return nil
	})
}

func verifySnapshot(ctx context.Context, snap *pebble.Snapshot) error {
	get := func(key []byte) ([]byte, error) {
		v, closer, err := snap.Get(key)
		if err != nil {
			return nil, err
		}
		defer closer.Close()
		return bytes.Clone(v), nil
	}
	heads := make(map[feeds.FeedRef]FeedLatest)
	var last int64
	var keyBuf []byte
	var rec Record
	err := scan(snap, prefixLog, func(k, v []byte) error {
		if last%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if len(k) != logKeyLength {
			return fmt.Errorf("%w: log key of %d bytes", ErrCorrupt, len(k))
		}
		seq, _ := decodeSeqValue("log key", k[len(prefixLog):])
		if seq != last+1 {
			return fmt.Errorf("%w: log jumps from seq %d to %d", ErrCorrupt, last, seq)
		}
		last = seq
		if err := decodeRecord(seq, v, &rec); err != nil {
			return err
		}
		h := heads[rec.Author]
		if rec.Sequence != h.Sequence+1 {
			return fmt.Errorf("%w: seq %d: feed %s sequence %d follows %d", ErrCorrupt, seq, rec.Author, rec.Sequence, h.Sequence)
		}
		heads[rec.Author] = FeedLatest{Author: rec.Author, Sequence: rec.Sequence, Key: rec.Key, Seq: seq}
		for _, ix := range []struct {
			what string
			key  []byte
		}{
			{"by-key index of " + rec.Key.String(), byKeyKey(keyBuf[:0], rec.Key)},
			{fmt.Sprintf("by-feed index of %s:%d", rec.Author, rec.Sequence), byFeedKey(nil, rec.Author, rec.Sequence)},
		} {
			b, err := get(ix.key)
			if errors.Is(err, pebble.ErrNotFound) {
				return fmt.Errorf("%w: seq %d: %s missing", ErrCorrupt, seq, ix.what)
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", ix.what, err)
			}
			got, err := decodeSeqValue(ix.what, b)
			if err != nil {
				return err
			}
			if got != seq {
				return fmt.Errorf("%w: %s points at seq %d, want %d", ErrCorrupt, ix.what, got, seq)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Each index must have exactly one entry per record (no entries beyond
	// the log tail); the entries found above are correct, so counting suffices.
	for _, p := range [][]byte{prefixKey, prefixFeed} {
		n := int64(0)
		if err := scan(snap, p, func(k, v []byte) error { n++; return nil }); err != nil {
			return err
		}
		if n != last {
			return fmt.Errorf("%w: index %q has %d entries for %d records", ErrCorrupt, p, n, last)
		}
	}
	nHeads := 0
	err = scan(snap, prefixHead, func(k, v []byte) error {
		nHeads++
		if len(k) != len(prefixHead)+32 {
			return fmt.Errorf("%w: head key of %d bytes", ErrCorrupt, len(k))
		}
		var a feeds.FeedRef
		copy(a[:], k[len(prefixHead):])
		h, err := decodeHead(a, v)
		if err != nil {
			return err
		}
		if want := heads[a]; h != want {
			return fmt.Errorf("%w: head of %s is %d/%s/seq %d, log says %d/%s/seq %d",
				ErrCorrupt, a, h.Sequence, h.Key, h.Seq, want.Sequence, want.Key, want.Seq)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if nHeads != len(heads) {
		return fmt.Errorf("%w: %d feed heads for %d feeds in the log", ErrCorrupt, nHeads, len(heads))
	}
	b, err := get(keyMetaLast)
	if err != nil && !(errors.Is(err, pebble.ErrNotFound) && last == 0) {
		return fmt.Errorf("read meta last seq: %w", err)
	}
	if err == nil {
		meta, err := decodeSeqValue("meta last seq", b)
		if err != nil {
			return err
		}
		if meta != last {
			return fmt.Errorf("%w: meta last seq %d, log tail %d", ErrCorrupt, meta, last)
		}
	}
	return nil
}

func scan(snap *pebble.Snapshot, prefix []byte, fn func(k, v []byte) error) error {
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("scan %q: %w", prefix, err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("scan %q: %w", prefix, err)
		}
		if err := fn(it.Key(), v); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("scan %q: %w", prefix, err)
	}
	return nil
}
