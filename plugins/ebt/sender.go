package ebt

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/muxrpc"
)

// Backlog batches: the reader fills one while the sender writes the
// previous one.
const (
	batchRecords = 256
	batchBytes   = 256 << 10
)

// batch is a run of stored messages of one feed, in sequence order.
type batch struct {
	author feeds.FeedRef
	seqs   []int64
	ends   []int // value i is buf[ends[i-1]:ends[i]]
	buf    []byte
	err    error
}

func (b *batch) reset(author feeds.FeedRef) {
	b.author, b.seqs, b.ends, b.buf, b.err = author, b.seqs[:0], b.ends[:0], b.buf[:0], nil
}

func (b *batch) value(i int) []byte {
	from := 0
	if i > 0 {
		from = b.ends[i-1]
	}
	return b.buf[from:b.ends[i]]
}

// sender is the only goroutine that writes to the stream. It sends the
// queued notes, the stored backlog of each feed the peer wants, and new
// messages as they are appended; queued notes go out between batches, so
// a long backlog does not delay them.
func (s *session) sender(ctx context.Context, startSeq int64) error {
	live := make(chan store.Record, 256)
	liveDone := make(chan struct{})
	go func() {
		defer close(liveDone)
		defer close(live)
		for rec, err := range s.r.st.Log(ctx, store.LogQuery{Gt: startSeq, Live: true}) {
			if err != nil {
				return
			}
			// The record's value is only valid during the iteration.
			rec.Value = append([]byte(nil), rec.Value...)
			select {
			case live <- rec:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() { <-liveDone }()
	err := s.send(ctx, live)
	if errors.Is(err, muxrpc.ErrStreamClosed) || errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *session) send(ctx context.Context, live <-chan store.Record) error {
	for {
		if err := s.flushNotes(); err != nil {
			return err
		}
		s.mu.Lock()
		due := s.backlogDue
		s.backlogDue = false
		s.mu.Unlock()
		if due {
			if err := s.sendBacklog(ctx); err != nil {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case rec, ok := <-live:
			if !ok {
				return nil
			}
			if err := s.sendLive(rec); err != nil {
				return err
			}
		}
	}
}

// sendLive sends a new message if the peer wants it and it is the next
// one the peer needs; a gap makes the backlog run. For a feed the peer
// does not take from us, it queues a note saying we are ahead.
func (s *session) sendLive(rec store.Record) error {
	f := rec.Author
	s.mu.Lock()
	want, have, told := s.want[f], s.clock[f], s.told[f]
	switch {
	case want && rec.Sequence == have+1:
		s.mu.Unlock()
		if err := s.write(rec.Value); err != nil {
			return err
		}
		s.mu.Lock()
		s.clock[f] = max(s.clock[f], rec.Sequence)
		s.mu.Unlock()
		return nil
	case want && rec.Sequence > have+1:
		s.backlogDue = true
	case !want && told && !s.declined[f] && have >= 0 && rec.Sequence > have:
		s.ahead[f] = rec.Sequence
	case !told && !s.ignored[f] && s.started:
		// A feed we skipped in our notes (the peer was level) or never
		// mentioned: tell the peer we have more.
		s.mu.Unlock()
		replicates := s.r.policy.Replicates(s.peer, f)
		s.r.mu.Lock()
		s.mu.Lock()
		if !replicates {
			s.ignored[f] = true
		} else if !s.told[f] {
			rx := s.r.claimRxLocked(s, f)
			s.queued[f] = Note(rec.Sequence, rx)
			s.told[f], s.rx[f] = true, rx
		}
		s.mu.Unlock()
		s.r.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	return nil
}

// write sends one message value.
func (s *session) write(v []byte) error {
	if err := s.out.Write(json.RawMessage(v)); err != nil {
		return err
	}
	s.r.stats.messages.Add(1)
	if s.r.Sent != nil {
		s.r.Sent(1)
	}
	return nil
}

// flushNotes sends the queued notes, if any (the initial ones even when
// empty), and "we are ahead" notes unless the peer's clock overtook them
// meanwhile (it sent us those messages).
func (s *session) flushNotes() error {
	s.mu.Lock()
	for f, seq := range s.ahead {
		// "We are ahead" notes the peer did not catch up with meanwhile.
		if _, ok := s.queued[f]; !ok && s.clock[f] < seq && !s.want[f] {
			s.queued[f] = Note(seq, s.rx[f])
		}
	}
	clear(s.ahead)
	if len(s.queued) == 0 && !s.sendEmpty {
		s.mu.Unlock()
		return nil
	}
	buf := make([]byte, 0, 2+len(s.queued)*60)
	buf = append(buf, '{')
	n := 0
	for f, v := range s.queued {
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '"')
		buf = append(buf, f.String()...)
		buf = append(buf, '"', ':')
		buf = strconv.AppendInt(buf, v, 10)
		n++
	}
	buf = append(buf, '}')
	clear(s.queued)
	empty := s.sendEmpty
	s.sendEmpty = false
	s.mu.Unlock()
	if n == 0 && !empty {
		return nil
	}
	if err := s.out.Write(json.RawMessage(buf)); err != nil {
		return err
	}
	s.r.stats.notes.Add(1)
	s.r.stats.noteEntries.Add(int64(n))
	return nil
}

// sendBacklog sends the stored messages of every feed the peer wants past
// what it holds. A reader goroutine fills the next batch from the store
// while this one writes the previous batch.
func (s *session) sendBacklog(ctx context.Context) error {
	type job struct {
		f    feeds.FeedRef
		from int64
	}
	s.mu.Lock()
	var jobs []job
	for f := range s.want {
		jobs = append(jobs, job{f, s.clock[f] + 1})
	}
	s.mu.Unlock()
	if len(jobs) == 0 {
		return nil
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	full := make(chan *batch, 2)
	free := make(chan *batch, 3)
	for range 3 {
		free <- &batch{}
	}
	go func() {
		defer close(full)
		for _, j := range jobs {
			if j.from < 1 {
				j.from = 1
			}
			lseq, _, _, err := s.r.st.Latest(j.f)
			if err != nil || lseq < j.from {
				continue
			}
			var b *batch
			get := func() bool {
				select {
				case b = <-free:
					b.reset(j.f)
					return true
				case <-rctx.Done():
					return false
				}
			}
			put := func() bool {
				select {
				case full <- b:
					b = nil
					return true
				case <-rctx.Done():
					return false
				}
			}
			if !get() {
				return
			}
			for rec, err := range s.r.st.History(rctx, store.HistoryQuery{Author: j.f, From: j.from, To: lseq, Old: true}) {
				if err != nil {
					b.err = err
					put()
					return
				}
				b.seqs = append(b.seqs, rec.Sequence)
				b.buf = append(b.buf, rec.Value...)
				b.ends = append(b.ends, len(b.buf))
				if len(b.seqs) >= batchRecords || len(b.buf) >= batchBytes {
					if !put() || !get() {
						return
					}
				}
			}
			if len(b.seqs) > 0 {
				if !put() {
					return
				}
			} else {
				free <- b
			}
		}
	}()
	defer func() {
		cancel()
		for range full {
		}
	}()
	for b := range full {
		if b.err != nil {
			return b.err
		}
		if err := s.flushNotes(); err != nil {
			return err
		}
		s.mu.Lock()
		want, have := s.want[b.author], s.clock[b.author]
		s.mu.Unlock()
		if want {
			last := have
			for i, seq := range b.seqs {
				if seq != last+1 {
					continue // the peer has it already (or a gap: sent later)
				}
				if err := s.write(b.value(i)); err != nil {
					return err
				}
				last = seq
			}
			s.mu.Lock()
			s.clock[b.author] = max(s.clock[b.author], last)
			s.mu.Unlock()
		}
		free <- b
	}
	return nil
}
