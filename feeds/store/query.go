package store

import (
	"context"
	"fmt"
	"iter"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cockroachdb/pebble/v2"
)

// LogQuery selects records of the whole log by receive sequence (Seq), the
// shape of createLogStream.
//
// Bounds: a bound of 0 (or less) is absent. Gt/Gte are lower bounds, Lt/Lte
// upper bounds; when both forms are given the tighter one wins. (Unlike
// JavaScript, Lt: 0 therefore means "no upper bound", not "nothing".)
//
// Old and Live: a query without Live returns the stored records matching the
// bounds and ends; Old is implied. With Live, stored records are returned
// first only if Old is set, then every record appended later is yielded as it
// is committed until ctx is cancelled, the store closes, Limit is reached or
// the upper bound is passed. Callers translating JS options must map an
// absent `old` to Old: true.
//
// Reverse returns the stored records newest first; live records (which come
// after all of them) are always in append order.
//
// Limit caps the number of records yielded in total (0: no limit).
type LogQuery struct {
	Gt, Gte, Lt, Lte int64
	Limit            int
	Reverse          bool
	Live             bool
	Old              bool
}

// HistoryQuery selects the messages of one feed by their sequence in the
// feed, the shape of createHistoryStream.
//
// From is the first sequence to return, inclusive (protocol.md §6.4: the JS
// servers treat `sequence`/`seq` as inclusive); 0, 1 or negative mean from
// the start. To is the last sequence, inclusive; 0 means no bound.
// Limit, Reverse, Live and Old behave as in LogQuery; with Live and without
// Old only messages appended after the iteration starts are yielded.
type HistoryQuery struct {
	Author  feeds.FeedRef
	From    int64
	To      int64
	Limit   int
	Reverse bool
	Live    bool
	Old     bool
}

// Iteration errors: when ctx is cancelled or the store is closed while a
// query runs, the iterator yields one final (Record{}, err) with ctx.Err()
// or an error wrapping ErrClosed. A corrupt record ends the iteration with
// an error wrapping ErrCorrupt.
//
// Records yielded are the caller's: Value is a fresh copy (records read in
// the same chunk may share one backing array, so keeping one Value keeps up
// to 64 KiB alive). No Pebble iterator is held while the caller's loop body
// runs, so a slow consumer never blocks Close or compactions.

const (
	chunkRecords = 256
	arenaBytes   = 64 << 10
)

func (q LogQuery) span() (lo, hi int64) {
	lo, hi = 1, maxSeq
	if q.Gt > 0 {
		if q.Gt == maxSeq {
			return 1, 0
		}
		lo = max(lo, q.Gt+1)
	}
	if q.Gte > 0 {
		lo = max(lo, q.Gte)
	}
	if q.Lt > 0 {
		hi = min(hi, q.Lt-1)
	}
	if q.Lte > 0 {
		hi = min(hi, q.Lte)
	}
	return lo, hi
}

// Log yields the records of the whole log in receive order; see LogQuery.
func (s *Store) Log(ctx context.Context, q LogQuery) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		lo, hi := q.span()
		st := streamer{
			s: s, ctx: ctx, yield: yield,
			lo: lo, hi: hi, limit: q.Limit, reverse: q.Reverse, live: q.Live, old: q.Old || !q.Live,
			tail: s.LastSeq,
			pos:  func(r *Record) int64 { return r.Seq },
			read: s.readLogChunk,
		}
		st.run()
	}
}

// History yields the messages of one feed in sequence order; see HistoryQuery.
func (s *Store) History(ctx context.Context, q HistoryQuery) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		hi := int64(maxSeq)
		if q.To > 0 {
			hi = q.To
		}
		author := q.Author
		st := streamer{
			s: s, ctx: ctx, yield: yield,
			lo: max(q.From, 1), hi: hi, limit: q.Limit, reverse: q.Reverse, live: q.Live, old: q.Old || !q.Live,
			tail: func() int64 {
				s.mu.RLock()
				defer s.mu.RUnlock()
				return s.heads[author].Sequence
			},
			pos: func(r *Record) int64 { return r.Sequence },
			read: func(from, to int64, reverse bool, dst []Record, arena []byte) ([]Record, []byte, error) {
				return s.readFeedChunk(author, from, to, reverse, dst, arena)
			},
		}
		st.run()
	}
}

// streamer drives Log and History: old records in chunks, then live ones.
// Positions are receive seqs (Log) or feed sequences (History).
type streamer struct {
	s                  *Store
	ctx                context.Context
	yield              func(Record, error) bool
	lo, hi             int64 // inclusive position bounds
	limit              int
	reverse, live, old bool
	tail               func() int64 // newest committed position
	pos                func(*Record) int64
	read               func(from, to int64, reverse bool, dst []Record, arena []byte) ([]Record, []byte, error)
	sent               int
	buf                []Record
	arena              []byte
	stopped            bool
}

// emit yields a chunk; it reports false when the stream is over.
func (st *streamer) emit(recs []Record) bool {
	for i := range recs {
		if !st.yield(recs[i], nil) {
			return false
		}
		st.sent++
		if st.limit > 0 && st.sent >= st.limit {
			return false
		}
	}
	return true
}

func (st *streamer) fail(err error) {
	st.yield(Record{}, err)
}

func (st *streamer) readChunk(from, to int64, reverse bool) ([]Record, bool) {
	if err := st.ctx.Err(); err != nil {
		st.fail(err)
		return nil, false
	}
	var recs []Record
	err := st.s.withDB(func() (err error) {
		recs, st.arena, err = st.read(from, to, reverse, st.buf[:0], st.arena)
		return err
	})
	if err != nil {
		st.fail(err)
		return nil, false
	}
	st.buf = recs
	return recs, true
}

func (st *streamer) run() {
	if st.lo > st.hi {
		return
	}
	if st.buf == nil {
		st.buf = make([]Record, 0, chunkRecords)
	}
	tail := st.tail()
	if st.old {
		oldHi := min(st.hi, tail)
		if st.reverse {
			for cur := oldHi; cur >= st.lo; {
				recs, ok := st.readChunk(st.lo, cur, true)
				if !ok || len(recs) == 0 {
					if ok && st.live {
						break
					}
					return
				}
				if !st.emit(recs) {
					return
				}
				cur = st.pos(&recs[len(recs)-1]) - 1
			}
		} else {
			for cur := st.lo; cur <= oldHi; {
				recs, ok := st.readChunk(cur, oldHi, false)
				if !ok || len(recs) == 0 {
					if ok && st.live {
						break
					}
					return
				}
				if !st.emit(recs) {
					return
				}
				cur = st.pos(&recs[len(recs)-1]) + 1
			}
		}
	}
	if !st.live {
		return
	}
	for cur := max(st.lo, tail+1); cur <= st.hi; {
		ch := *st.s.notify.Load()
		if st.tail() < cur {
			if err := st.s.waitAppend(st.ctx, ch); err != nil {
				st.fail(err)
				return
			}
			continue
		}
		recs, ok := st.readChunk(cur, st.hi, false)
		if !ok {
			return
		}
		if len(recs) == 0 {
			if err := st.s.waitAppend(st.ctx, ch); err != nil {
				st.fail(err)
				return
			}
			continue
		}
		if !st.emit(recs) {
			return
		}
		cur = st.pos(&recs[len(recs)-1]) + 1
	}
}

// copyValue copies r.Value into the arena (a new one when it is full).
func copyValue(r *Record, arena []byte) []byte {
	n := len(r.Value)
	if n > arenaBytes/4 {
		r.Value = append([]byte(nil), r.Value...)
		return arena
	}
	if cap(arena)-len(arena) < n {
		arena = make([]byte, 0, arenaBytes)
	}
	start := len(arena)
	arena = append(arena, r.Value...)
	r.Value = arena[start : start+n : start+n]
	return arena
}

// readLogChunk reads up to chunkRecords log records with seq in [from, to].
func (s *Store) readLogChunk(from, to int64, reverse bool, dst []Record, arena []byte) ([]Record, []byte, error) {
	upper := prefixEnd(prefixLog)
	if to < maxSeq {
		upper = logKey(nil, to+1)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logKey(nil, from), UpperBound: upper})
	if err != nil {
		return dst, arena, fmt.Errorf("read log: %w", err)
	}
	defer it.Close()
	var ok bool
	if reverse {
		ok = it.Last()
	} else {
		ok = it.First()
	}
	for ; ok && len(dst) < chunkRecords; ok = step(it, reverse) {
		k := it.Key()
		if len(k) != logKeyLength {
			return dst, arena, fmt.Errorf("%w: log key of %d bytes", ErrCorrupt, len(k))
		}
		seq, _ := decodeSeqValue("log key", k[len(prefixLog):])
		v, err := it.ValueAndErr()
		if err != nil {
			return dst, arena, fmt.Errorf("read log record %d: %w", seq, err)
		}
		dst = append(dst, Record{})
		r := &dst[len(dst)-1]
		if err := decodeRecord(seq, v, r); err != nil {
			return dst[:len(dst)-1], arena, err
		}
		arena = copyValue(r, arena)
	}
	if err := it.Error(); err != nil {
		return dst, arena, fmt.Errorf("read log: %w", err)
	}
	return dst, arena, nil
}

func step(it *pebble.Iterator, reverse bool) bool {
	if reverse {
		return it.Prev()
	}
	return it.Next()
}

// readFeedChunk reads up to chunkRecords messages of author with sequence in
// [from, to] through the by-feed index.
func (s *Store) readFeedChunk(author feeds.FeedRef, from, to int64, reverse bool, dst []Record, arena []byte) ([]Record, []byte, error) {
	var upper []byte
	if to < maxSeq {
		upper = byFeedKey(nil, author, to+1)
	} else {
		upper = prefixEnd(byFeedKey(nil, author, 0)[:len(prefixFeed)+32])
	}
	idx, err := s.db.NewIter(&pebble.IterOptions{LowerBound: byFeedKey(nil, author, from), UpperBound: upper})
	if err != nil {
		return dst, arena, fmt.Errorf("read feed %s: %w", author, err)
	}
	defer idx.Close()
	var seqs, sequences [chunkRecords]int64
	n := 0
	var ok bool
	if reverse {
		ok = idx.Last()
	} else {
		ok = idx.First()
	}
	for ; ok && n < chunkRecords; ok = step(idx, reverse) {
		rs, err := decodeSeqValue("by-feed index", idx.Value())
		if err != nil {
			return dst, arena, err
		}
		k := idx.Key()
		if len(k) != len(prefixFeed)+32+8 {
			return dst, arena, fmt.Errorf("%w: by-feed key of %d bytes", ErrCorrupt, len(k))
		}
		sequences[n], _ = decodeSeqValue("by-feed key", k[len(prefixFeed)+32:])
		seqs[n] = rs
		n++
	}
	if err := idx.Error(); err != nil {
		return dst, arena, fmt.Errorf("read feed %s: %w", author, err)
	}
	if n == 0 {
		return dst, arena, nil
	}
	logIt, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefixLog, UpperBound: prefixEnd(prefixLog)})
	if err != nil {
		return dst, arena, fmt.Errorf("read feed %s: %w", author, err)
	}
	defer logIt.Close()
	var key []byte
	for i, rs := range seqs[:n] {
		key = logKey(key[:0], rs)
		if !logIt.SeekGE(key) || string(logIt.Key()) != string(key) {
			if err := logIt.Error(); err != nil {
				return dst, arena, fmt.Errorf("read feed %s: %w", author, err)
			}
			return dst, arena, fmt.Errorf("%w: by-feed index of %s points at missing seq %d", ErrCorrupt, author, rs)
		}
		v, err := logIt.ValueAndErr()
		if err != nil {
			return dst, arena, fmt.Errorf("read log record %d: %w", rs, err)
		}
		dst = append(dst, Record{})
		r := &dst[len(dst)-1]
		if err := decodeRecord(rs, v, r); err != nil {
			return dst[:len(dst)-1], arena, err
		}
		if r.Author != author || r.Sequence != sequences[i] {
			return dst[:len(dst)-1], arena, fmt.Errorf("%w: by-feed index maps %s:%d to seq %d holding %s:%d",
				ErrCorrupt, author, sequences[i], rs, r.Author, r.Sequence)
		}
		arena = copyValue(r, arena)
	}
	return dst, arena, nil
}
