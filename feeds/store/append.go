package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cockroachdb/pebble/v2"
)

type appendReq struct {
	recs []Record
	resp chan appendResp // buffered, 1
}

type appendResp struct {
	seqs []int64
	err  error
}

// Append stores recs as one atomic, durable (fsync'd) batch and returns the
// receive sequence assigned to each record, in order. recs itself is not
// modified (its Seq fields are ignored); the values are copied, so the
// caller may reuse them when Append returns.
//
// Per author, each record's Sequence must be the author's latest sequence
// plus one, counting earlier records of the same call; otherwise the call
// fails with an error wrapping ErrOutOfOrder and nothing is written. A Key
// already stored (or repeated within recs) fails the call with ErrDuplicate;
// an empty Value with ErrInvalidRecord. A Timestamp of 0 is replaced by the
// current time in milliseconds. Every registered Indexer stages its entries
// for the records in the same batch.
//
// Concurrent calls are serialized, each committed with its own fsync: the
// store does no group commit of its own. Callers that want many small
// appends to share an fsync batch them first (feeds/feedlog does).
func (s *Store) Append(recs []Record) ([]int64, error) {
	if len(recs) == 0 {
		if s.isClosed() {
			return nil, ErrClosed
		}
		return nil, nil
	}
	for i := range recs {
		if len(recs[i].Value) == 0 {
			return nil, fmt.Errorf("append: record %d (%s of %s): empty value: %w",
				i, recs[i].Key, recs[i].Author, ErrInvalidRecord)
		}
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed || s.isClosed() {
		return nil, fmt.Errorf("append: %w", ErrClosed)
	}
	req := &appendReq{recs: recs, resp: make(chan appendResp, 1)}
	s.writeMu.Lock()
	s.writer.commit([]*appendReq{req})
	s.writeMu.Unlock()
	r := <-req.resp
	return r.seqs, r.err
}

// groupWriter holds Append's scratch state (guarded by Store.writeMu).
type groupWriter struct {
	s           *Store
	pending     map[feeds.FeedRef]FeedLatest  // heads after the staged requests
	pendingKeys map[feeds.MessageRef]struct{} // keys of the staged requests
	reqHeads    map[feeds.FeedRef]FeedLatest  // heads while validating one request
	reqKeys     map[feeds.MessageRef]struct{} // keys of the request being validated
	keyBuf      []byte
	recBuf      []byte
}

func (w *groupWriter) head(a feeds.FeedRef) (FeedLatest, bool) {
	if h, ok := w.reqHeads[a]; ok {
		return h, true
	}
	if h, ok := w.pending[a]; ok {
		return h, true
	}
	w.s.mu.RLock()
	h, ok := w.s.heads[a]
	w.s.mu.RUnlock()
	return h, ok
}

// validate checks one request against the committed and staged state.
func (w *groupWriter) validate(recs []Record, next int64) error {
	clear(w.reqHeads)
	clear(w.reqKeys)
	for i := range recs {
		r := &recs[i]
		if _, dup := w.reqKeys[r.Key]; dup {
			return fmt.Errorf("append: record %d: %s repeated in the batch: %w", i, r.Key, ErrDuplicate)
		}
		if _, dup := w.pendingKeys[r.Key]; dup {
			return fmt.Errorf("append: record %d: %s is being appended by another call: %w", i, r.Key, ErrDuplicate)
		}
		if w.s.keysCoverSeq {
			if err := w.checkSequence(recs, i, next); err != nil {
				return err
			}
			continue
		}
		w.keyBuf = byKeyKey(w.keyBuf[:0], r.Key)
		v, closer, err := w.s.db.Get(w.keyBuf)
		if err == nil {
			seq, derr := decodeSeqValue("by-key index", v)
			closer.Close()
			if derr != nil {
				return fmt.Errorf("append: record %d: %w", i, derr)
			}
			return fmt.Errorf("append: record %d: %s stored as seq %d: %w", i, r.Key, seq, ErrDuplicate)
		}
		if !errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("append: record %d: look up %s: %w", i, r.Key, err)
		}
		if err := w.checkSequence(recs, i, next); err != nil {
			return err
		}
	}
	return nil
}

// checkSequence checks that recs[i] follows its feed's head and stages it.
func (w *groupWriter) checkSequence(recs []Record, i int, next int64) error {
	r := &recs[i]
	h, _ := w.head(r.Author)
	if r.Sequence != h.Sequence+1 {
		return fmt.Errorf("append: record %d: feed %s: sequence %d, want %d: %w",
			i, r.Author, r.Sequence, h.Sequence+1, ErrOutOfOrder)
	}
	w.reqHeads[r.Author] = FeedLatest{Author: r.Author, Sequence: r.Sequence, Key: r.Key, Seq: next + int64(i)}
	w.reqKeys[r.Key] = struct{}{}
	return nil
}

func (w *groupWriter) commit(group []*appendReq) {
	s := w.s
	clear(w.pending)
	clear(w.pendingKeys)
	last := s.lastSeq.Load()
	next := last + 1
	resps := make([]appendResp, len(group))
	b := s.db.NewBatch()
	defer b.Close()
	now := float64(time.Now().UnixMilli())
	staged := 0
	var stageErr error
	for gi, req := range group {
		if err := w.validate(req.recs, next); err != nil {
			resps[gi].err = err
			continue
		}
		for a, h := range w.reqHeads {
			w.pending[a] = h
		}
		seqs := make([]int64, len(req.recs))
		for i := range req.recs {
			r := req.recs[i] // copy: the caller's slice is not modified
			seq := next
			next++
			seqs[i] = seq
			if r.Timestamp == 0 {
				r.Timestamp = now
			}
			w.pendingKeys[r.Key] = struct{}{}
			w.recBuf = appendRecord(w.recBuf[:0], seq, &r)
			w.keyBuf = logKey(w.keyBuf[:0], seq)
			err := b.Set(w.keyBuf, w.recBuf, nil)
			w.keyBuf = byKeyKey(w.keyBuf[:0], r.Key)
			err = errors.Join(err, b.Set(w.keyBuf, u64(seq), nil))
			w.keyBuf = byFeedKey(w.keyBuf[:0], r.Author, r.Sequence)
			err = errors.Join(err, b.Set(w.keyBuf, u64(seq), nil))
			if err != nil && stageErr == nil {
				stageErr = fmt.Errorf("append: stage record: %w", err)
			}
			r.Seq = seq
			for _, ix := range s.indexers {
				if err := ix.Stage(indexBatch(b, ix.Name()), &r); err != nil && stageErr == nil {
					stageErr = fmt.Errorf("append: index %s: record %d (%s): %w", ix.Name(), seq, r.Key, err)
				}
			}
		}
		resps[gi].seqs = seqs
		staged++
	}
	if staged > 0 {
		for a, h := range w.pending {
			w.keyBuf = headKey(w.keyBuf[:0], a)
			if err := b.Set(w.keyBuf, encodeHead(h), nil); err != nil && stageErr == nil {
				stageErr = fmt.Errorf("append: stage head: %w", err)
			}
		}
		err := b.Set(keyMetaLast, u64(next-1), nil)
		if err == nil {
			err = stageErr
		}
		if err == nil {
			err = s.db.Apply(b, pebble.Sync)
		}
		if err != nil {
			err = fmt.Errorf("append: commit: %w", err)
			for _, ix := range s.indexers {
				ix.Abort()
			}
			for i := range resps {
				if resps[i].err == nil {
					resps[i] = appendResp{err: err}
				}
			}
		} else {
			s.mu.Lock()
			for a, h := range w.pending {
				s.heads[a] = h
			}
			s.lastSeq.Store(next - 1)
			s.mu.Unlock()
			for _, ix := range s.indexers {
				ix.Commit()
			}
			ch := make(chan struct{})
			old := s.notify.Swap(&ch)
			close(*old)
		}
	}
	for i, req := range group {
		req.resp <- resps[i]
	}
}
