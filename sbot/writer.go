package sbot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/plugins/kvt"
)

// writer is the only goroutine that appends to the store. Publishes and
// adds queue up; it takes everything pending (up to maxBatch), signs or
// validates each against the feed state (including earlier messages of the
// same batch) and appends the batch with one fsync, then answers every
// caller. That is group commit: a publish is acknowledged only once durable,
// and many concurrent publishes share one fsync.
type writer struct {
	st    *store.Store
	keys  feeds.KeyPair
	now   func() time.Time
	log   *slog.Logger
	reqs  chan *writeReq
	done  chan struct{}
	own   *classic.FeedState // latest of our own feed; nil = empty feed
	stopc chan struct{}
	// onAppend, if set, sees every message after it is durable and before
	// its caller is answered (indexes update here).
	onAppend func(m *classic.Message)
}

const maxBatch = 1000

type writeReq struct {
	content json.RawMessage  // publish
	msg     *classic.Message // add (signature already verified)
	reply   chan writeResult
}

type writeResult struct {
	rec store.Record
	err error
}

// ErrAlreadyStored is returned by add for a message we hold already (the
// same id at that sequence): harmless when two peers send the same feed.
var ErrAlreadyStored = errors.New("message already stored")

// ErrFork is returned by add for a different message at a sequence we hold.
var ErrFork = errors.New("fork")

// alreadyStored tells a duplicate (ErrAlreadyStored) from a fork: another
// message at a sequence we hold.
func (w *writer) alreadyStored(state *classic.FeedState, m *classic.Message) error {
	key := state.Key
	if m.Sequence != state.Sequence {
		rec, err := w.st.GetBySequence(m.Author, m.Sequence)
		if err != nil {
			return fmt.Errorf("read %s seq %d: %w", m.Author, m.Sequence, err)
		}
		key = rec.Key
	}
	if key == m.Key {
		return ErrAlreadyStored
	}
	return fmt.Errorf("%w: %s sequence %d is stored as %s, received %s", ErrFork, m.Author, m.Sequence, key, m.Key)
}

// ErrClosing is returned for writes after shutdown began.
var ErrClosing = errors.New("sbot: shutting down")

func newWriter(st *store.Store, keys feeds.KeyPair, now func() time.Time, log *slog.Logger) (*writer, error) {
	w := &writer{st: st, keys: keys, now: now, log: log, reqs: make(chan *writeReq, 4*maxBatch), done: make(chan struct{}), stopc: make(chan struct{})}
	state, err := loadState(st, keys.ID)
	if err != nil {
		return nil, err
	}
	w.own = state
	go w.run()
	return w, nil
}

// loadState reads a feed's latest message as validation state.
func loadState(st *store.Store, author feeds.FeedRef) (*classic.FeedState, error) {
	seq, key, ok, err := st.Latest(author)
	if err != nil {
		return nil, fmt.Errorf("latest of %s: %w", author, err)
	}
	if !ok {
		return nil, nil
	}
	fs := &classic.FeedState{Key: key, Sequence: seq}
	rec, err := st.GetBySequence(author, seq)
	if err != nil {
		return nil, fmt.Errorf("read %s seq %d: %w", author, seq, err)
	}
	if m, err := classic.Parse(rec.Value); err == nil {
		fs.Timestamp = m.Timestamp
	}
	return fs, nil
}

func (w *writer) stop() {
	close(w.stopc)
	<-w.done
}

func (w *writer) submit(ctx context.Context, r *writeReq) (store.Record, error) {
	r.reply = make(chan writeResult, 1)
	select {
	case w.reqs <- r:
	case <-w.stopc:
		return store.Record{}, ErrClosing
	case <-ctx.Done():
		return store.Record{}, ctx.Err()
	}
	// Once queued, wait for the outcome even if ctx ends: the append may
	// already be durable and the caller must not be told otherwise.
	select {
	case res := <-r.reply:
		return res.rec, res.err
	case <-w.done:
		return store.Record{}, ErrClosing
	}
}

// Publish implements publish.Publisher.
func (w *writer) Publish(ctx context.Context, content json.RawMessage) (json.RawMessage, error) {
	rec, err := w.PublishRecord(ctx, content)
	if err != nil {
		return nil, err
	}
	return kvt.Encode(rec), nil
}

// PublishRecord publishes and returns the stored record.
func (w *writer) PublishRecord(ctx context.Context, content json.RawMessage) (store.Record, error) {
	return w.submit(ctx, &writeReq{content: content})
}

// Add implements publish.Publisher: msg is a message value or a KVT.
func (w *writer) Add(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	m, _, claimed, err := classic.ParseKVT(raw)
	if err != nil {
		return nil, fmt.Errorf("add: invalid message: %w", err)
	}
	if claimed != nil && *claimed != m.Key {
		return nil, fmt.Errorf("add: key %s does not match the message (computed %s)", claimed, m.Key)
	}
	if err := m.VerifySignature(nil); err != nil {
		return nil, fmt.Errorf("add: %w", err)
	}
	rec, err := w.submit(ctx, &writeReq{msg: m})
	if err != nil {
		return nil, err
	}
	return kvt.Encode(rec), nil
}

// AddVerified appends a message whose signature was already checked.
func (w *writer) AddVerified(ctx context.Context, m *classic.Message) (store.Record, error) {
	return w.submit(ctx, &writeReq{msg: m})
}

// AddVerifiedBatch appends messages whose signatures were already checked,
// in order. They are queued together, so the writer commits them with as
// few fsyncs as it can. errs[i] is nil when msgs[i] was stored; a message
// after a failed one of the same feed fails too (its chain is broken).
func (w *writer) AddVerifiedBatch(ctx context.Context, msgs []*classic.Message) []error {
	errs := make([]error, len(msgs))
	reqs := make([]*writeReq, 0, len(msgs))
queue:
	for _, m := range msgs {
		r := &writeReq{msg: m, reply: make(chan writeResult, 1)}
		select {
		case w.reqs <- r:
			reqs = append(reqs, r)
		case <-w.stopc:
			break queue
		case <-ctx.Done():
			break queue
		}
	}
	for i := range msgs {
		if i >= len(reqs) {
			errs[i] = ErrClosing
			if ctx.Err() != nil {
				errs[i] = ctx.Err()
			}
			continue
		}
		select {
		case res := <-reqs[i].reply:
			errs[i] = res.err
		case <-w.done:
			errs[i] = ErrClosing
		}
	}
	return errs
}

func (w *writer) run() {
	defer close(w.done)
	batch := make([]*writeReq, 0, maxBatch)
	for {
		select {
		case <-w.stopc:
			// Drain what is queued so that no caller waits forever.
			for {
				select {
				case r := <-w.reqs:
					batch = append(batch, r)
					if len(batch) == maxBatch {
						w.commit(batch)
						batch = batch[:0]
					}
				default:
					if len(batch) > 0 {
						w.commit(batch)
					}
					return
				}
			}
		case r := <-w.reqs:
			batch = append(batch[:0], r)
		more:
			for len(batch) < maxBatch {
				select {
				case r := <-w.reqs:
					batch = append(batch, r)
				default:
					break more
				}
			}
			w.commit(batch)
			batch = batch[:0]
		}
	}
}

// commit prepares and appends one batch.
func (w *writer) commit(batch []*writeReq) {
	recs := make([]store.Record, 0, len(batch))
	owners := make([]int, 0, len(batch)) // index into batch for each rec
	stored := make([]*classic.Message, 0, len(batch))
	errs := make([]error, len(batch))
	states := map[feeds.FeedRef]*classic.FeedState{}
	own := w.own
	now := float64(w.now().UnixMilli())
	for i, r := range batch {
		var m *classic.Message
		var err error
		if r.msg == nil {
			ts := now
			if own != nil && ts <= own.Timestamp {
				ts = math.Floor(own.Timestamp) + 1
			}
			m, err = classic.Create(w.keys.Private, own, ts, classic.RawJSON(r.content), nil)
			if err != nil {
				errs[i] = fmt.Errorf("publish: %w", err)
				continue
			}
			s := classic.StateAfter(m)
			own = &s
		} else {
			m = r.msg
			var state *classic.FeedState
			if m.Author == w.keys.ID {
				state = own
			} else if s, ok := states[m.Author]; ok {
				state = s
			} else {
				state, err = loadState(w.st, m.Author)
				if err != nil {
					errs[i] = err
					continue
				}
			}
			if state != nil && m.Sequence <= state.Sequence && m.Sequence > 0 {
				errs[i] = w.alreadyStored(state, m)
				continue
			}
			if err := classic.ValidateNext(state, m); err != nil {
				errs[i] = err
				continue
			}
			s := classic.StateAfter(m)
			if m.Author == w.keys.ID {
				own = &s
			} else {
				states[m.Author] = &s
			}
		}
		recs = append(recs, store.Record{Key: m.Key, Author: m.Author, Sequence: m.Sequence, Timestamp: now, Value: m.Compact})
		owners = append(owners, i)
		stored = append(stored, m)
	}
	if len(recs) > 0 {
		seqs, err := w.st.Append(recs)
		if err != nil {
			w.log.Error("append failed", "records", len(recs), "err", err)
			for _, i := range owners {
				errs[i] = fmt.Errorf("append: %w", err)
			}
			// Our in-memory state may now be ahead of the store: reload.
			if s, lerr := loadState(w.st, w.keys.ID); lerr == nil {
				w.own = s
			}
		} else {
			w.own = own
			if w.onAppend != nil {
				for _, m := range stored {
					w.onAppend(m)
				}
			}
			for j, i := range owners {
				recs[j].Seq = seqs[j]
				batch[i].reply <- writeResult{rec: recs[j]}
			}
		}
	}
	for i, r := range batch {
		if errs[i] != nil {
			r.reply <- writeResult{err: errs[i]}
		}
	}
}
