package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cockroachdb/pebble/v2"
)

// Verify walks the whole store in one consistent snapshot and cross-checks
// it: the log is contiguous from 1 to the tail (except for records that
// Fsck quarantined), every record's checksum holds, each feed's sequences
// run 1..n in receive order (a gap is allowed once Fsck quarantined a
// record, which may have been the missing message), the by-key and
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
	// The indexes are checked without a point lookup per record: the log
	// walk and a sequential scan of each index both sum a hash of every
	// (index key, seq) pair; equal counts and sums mean equal contents
	// (barring a 2^-64 accident). Only on a mismatch does locateIndexError
	// look records up one by one to name the culprit.
	// Records quarantined by Fsck leave gaps in the log, and may leave a
	// gap in their feed: both are tolerated where quarantine explains them.
	quarantined := map[int64]bool{}
	err := scan(snap, prefixCorrupt, func(k, _ []byte) error {
		if len(k) >= len(prefixCorrupt)+8 {
			quarantined[int64(binary.BigEndian.Uint64(k[len(prefixCorrupt):]))] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	seed := maphash.MakeSeed()
	var keySum, feedSum uint64
	heads := make(map[feeds.FeedRef]FeedLatest)
	var last, records int64
	var buf []byte
	var rec Record
	err = scan(snap, prefixLog, func(k, v []byte) error {
		if records%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if len(k) != logKeyLength {
			return fmt.Errorf("%w: log key of %d bytes", ErrCorrupt, len(k))
		}
		seq, _ := decodeSeqValue("log key", k[len(prefixLog):])
		for missing := last + 1; missing < seq; missing++ {
			if !quarantined[missing] {
				return fmt.Errorf("%w: log jumps from seq %d to %d", ErrCorrupt, last, seq)
			}
		}
		last = seq
		records++
		if err := decodeRecord(seq, v, &rec); err != nil {
			return err
		}
		h := heads[rec.Author]
		if rec.Sequence != h.Sequence+1 && (rec.Sequence <= h.Sequence || len(quarantined) == 0) {
			return fmt.Errorf("%w: seq %d: feed %s sequence %d follows %d", ErrCorrupt, seq, rec.Author, rec.Sequence, h.Sequence)
		}
		heads[rec.Author] = FeedLatest{Author: rec.Author, Sequence: rec.Sequence, Key: rec.Key, Seq: seq}
		buf = binary.BigEndian.AppendUint64(byKeyKey(buf[:0], rec.Key), uint64(seq))
		keySum += maphash.Bytes(seed, buf)
		buf = binary.BigEndian.AppendUint64(byFeedKey(buf[:0], rec.Author, rec.Sequence), uint64(seq))
		feedSum += maphash.Bytes(seed, buf)
		return nil
	})
	if err != nil {
		return err
	}
	for _, ix := range []struct {
		prefix []byte
		keyLen int
		sum    uint64
	}{
		{prefixKey, len(prefixKey) + 32, keySum},
		{prefixFeed, len(prefixFeed) + 32 + 8, feedSum},
	} {
		var n int64
		var sum uint64
		err := scan(snap, ix.prefix, func(k, v []byte) error {
			if n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			n++
			if len(k) != ix.keyLen {
				return fmt.Errorf("%w: index key %q of %d bytes", ErrCorrupt, k, len(k))
			}
			seq, err := decodeSeqValue(fmt.Sprintf("index entry %x", k), v)
			if err != nil {
				return err
			}
			if seq < 1 || seq > last {
				return fmt.Errorf("%w: index entry %x points at seq %d outside the log 1..%d", ErrCorrupt, k, seq, last)
			}
			buf = binary.BigEndian.AppendUint64(append(buf[:0], k...), uint64(seq))
			sum += maphash.Bytes(seed, buf)
			return nil
		})
		if err != nil {
			return err
		}
		if n != records || sum != ix.sum {
			if err := locateIndexError(ctx, snap); err != nil {
				return err
			}
			return fmt.Errorf("%w: index %q has %d entries for %d records and does not match the log", ErrCorrupt, ix.prefix, n, records)
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
	v, closer, err := snap.Get(keyMetaLast)
	switch {
	case errors.Is(err, pebble.ErrNotFound) && last == 0:
	case err != nil:
		return fmt.Errorf("read meta last seq: %w", err)
	default:
		meta, err := decodeSeqValue("meta last seq", v)
		closer.Close()
		if err != nil {
			return err
		}
		if meta != last {
			return fmt.Errorf("%w: meta last seq %d, log tail %d", ErrCorrupt, meta, last)
		}
	}
	return nil
}

// locateIndexError looks up the index entries of every record and reports
// the first one missing or pointing elsewhere (nil if all are right, which
// means the index has extra entries).
func locateIndexError(ctx context.Context, snap *pebble.Snapshot) error {
	var rec Record
	var key []byte
	return scan(snap, prefixLog, func(k, v []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		seq, _ := decodeSeqValue("log key", k[len(prefixLog):])
		if err := decodeRecord(seq, v, &rec); err != nil {
			return err
		}
		for ix := range 2 {
			what := "by-key index of " + rec.Key.String()
			key = byKeyKey(key[:0], rec.Key)
			if ix == 1 {
				what = fmt.Sprintf("by-feed index of %s:%d", rec.Author, rec.Sequence)
				key = byFeedKey(key[:0], rec.Author, rec.Sequence)
			}
			b, closer, err := snap.Get(key)
			if errors.Is(err, pebble.ErrNotFound) {
				return fmt.Errorf("%w: seq %d: %s missing", ErrCorrupt, seq, what)
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", what, err)
			}
			got, err := decodeSeqValue(what, b)
			closer.Close()
			if err != nil {
				return err
			}
			if got != seq {
				return fmt.Errorf("%w: %s points at seq %d, want %d", ErrCorrupt, what, got, seq)
			}
		}
		return nil
	})
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
