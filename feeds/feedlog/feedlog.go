// Package feedlog is the one feed writer of a node: every message that is
// stored (published, added by the owner, replicated by EBT or legacy
// replication, imported, or written by a benchmark fill) goes through it.
// It validates each message against its feed (chain, sequence, duplicate or
// fork), signs the node's own new messages, and group-commits: whatever is
// queued when the writer is free (up to MaxBatch messages) is appended to
// the store in one batch with one fsync. The store's indexers stage their
// entries in that same batch.
//
// It never acknowledges a message before it is durable, and never stores a
// message after an invalid one of the same Add call.
package feedlog

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
)

// Store is what the writer needs of the store.
type Store interface {
	Append(recs []store.Record) ([]int64, error)
	Latest(author feeds.FeedRef) (seq int64, key feeds.MessageRef, ok bool, err error)
	GetBySequence(author feeds.FeedRef, sequence int64) (store.Record, error)
}

// Errors of Add and Publish; test with errors.Is.
var (
	// ErrAlreadyStored: the same message is stored at that sequence (a
	// message two peers both sent). Add skips it; it is not a failure.
	ErrAlreadyStored = errors.New("message already stored")
	// ErrFork: another message is stored at that sequence.
	ErrFork = errors.New("fork")
	// ErrClosing: the writer is shutting down.
	ErrClosing = errors.New("feed writer closing")
	// ErrSignature: a message's signature does not verify.
	ErrSignature = errors.New("invalid signature")
	// ErrNoKey: Publish on a writer without the node's key.
	ErrNoKey = errors.New("no key to sign with")
)

// Options configure New.
type Options struct {
	Store Store
	// Keys sign the node's own feed (Publish); nil: Publish fails.
	Keys *feeds.KeyPair
	// HMACKey is the network's sign cap (nil: main network).
	HMACKey *[32]byte
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// MaxBatch caps the messages of one group commit (default 1000).
	MaxBatch int
	// AfterCommit, if set, sees the messages of each group commit once they
	// are durable, before their callers are answered. It runs on the
	// writer goroutine: it must not block or write.
	AfterCommit func(msgs []*classic.Message)
	// Observer, if set, is told the size and duration of every signature
	// batch and every group commit (metrics).
	Observer Observer
}

// Observer sees the writer's work as it is done. Its methods must be fast
// and must not block: Committed runs on the writer goroutine, Verified on
// the goroutine of the Add call.
type Observer interface {
	// Committed: n messages were appended (one store batch, one fsync)
	// in d.
	Committed(n int, d time.Duration)
	// Verified: the signatures of n messages were checked (one parallel
	// batch) in d.
	Verified(n int, d time.Duration)
}

// Log is the feed writer. Its methods are safe for concurrent use.
type Log struct {
	st       Store
	keys     *feeds.KeyPair
	hmac     *[32]byte
	now      func() time.Time
	log      *slog.Logger
	maxBatch int
	after    func([]*classic.Message)
	observer Observer
	verifier *classic.Verifier

	reqs  chan *request
	stopc chan struct{}
	done  chan struct{}

	// Writer goroutine state: the latest message of every feed touched so
	// far (the writer is the only one appending, so it stays exact).
	states map[feeds.FeedRef]*classic.FeedState
}

// Result is the outcome of Add: Records are the messages stored, in
// order; Held counts messages skipped because they were stored already;
// Err, if not nil, is why msgs[Failed] was refused, and no message after
// it was stored.
type Result struct {
	Records []store.Record
	Held    int
	Failed  int
	Err     error
}

type request struct {
	content json.RawMessage    // publish
	msgs    []*classic.Message // add (signatures verified)
	reply   chan Result
}

func (r *request) size() int {
	if r.msgs != nil {
		return len(r.msgs)
	}
	return 1
}

// New starts the writer.
func New(o Options) (*Log, error) {
	if o.Store == nil {
		return nil, errors.New("feedlog: no store")
	}
	l := &Log{
		st: o.Store, keys: o.Keys, hmac: o.HMACKey, now: o.Now, log: o.Logger,
		maxBatch: o.MaxBatch, after: o.AfterCommit, observer: o.Observer,
		verifier: classic.NewVerifier(o.HMACKey),
		stopc:    make(chan struct{}), done: make(chan struct{}),
		states: map[feeds.FeedRef]*classic.FeedState{},
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.maxBatch <= 0 {
		l.maxBatch = 1000
	}
	l.reqs = make(chan *request, 4*l.maxBatch)
	if l.keys != nil {
		if _, err := l.state(l.keys.ID); err != nil {
			return nil, fmt.Errorf("feedlog: %w", err)
		}
	}
	go l.run()
	return l, nil
}

// Close stops the writer once the queued writes are committed; later
// writes fail with ErrClosing.
func (l *Log) Close() {
	select {
	case <-l.stopc:
	default:
		close(l.stopc)
	}
	<-l.done
}

// LoadState reads a feed's latest stored message as validation state
// (nil: the feed is empty). The timestamp is taken as ssb-validate keeps
// it (classic.StateAfter: a string timestamp counts as JS Number(string)).
func LoadState(st Store, author feeds.FeedRef) (*classic.FeedState, error) {
	seq, key, ok, err := st.Latest(author)
	if err != nil {
		return nil, fmt.Errorf("latest of %s: %w", author, err)
	}
	if !ok {
		return nil, nil
	}
	rec, err := st.GetBySequence(author, seq)
	if err != nil {
		return nil, fmt.Errorf("read %s sequence %d: %w", author, seq, err)
	}
	m, err := classic.Parse(rec.Value)
	if err != nil {
		return nil, fmt.Errorf("parse %s sequence %d: %w", author, seq, err)
	}
	fs := classic.StateAfter(m)
	fs.Key, fs.Sequence = key, seq
	return &fs, nil
}

// state is the cached state of author (writer goroutine only).
func (l *Log) state(author feeds.FeedRef) (*classic.FeedState, error) {
	if s, ok := l.states[author]; ok {
		return s, nil
	}
	s, err := LoadState(l.st, author)
	if err != nil {
		return nil, err
	}
	l.states[author] = s
	return s, nil
}

func (l *Log) submit(ctx context.Context, r *request) Result {
	r.reply = make(chan Result, 1)
	select {
	case l.reqs <- r:
	case <-l.stopc:
		return Result{Err: ErrClosing}
	case <-ctx.Done():
		return Result{Err: ctx.Err()}
	}
	// Once queued, wait for the outcome even if ctx ends: the append may
	// already be durable and the caller must not be told otherwise.
	select {
	case res := <-r.reply:
		return res
	case <-l.done:
		return Result{Err: ErrClosing}
	}
}

// Publish signs content as the next message of the node's own feed and
// returns it once durable.
func (l *Log) Publish(ctx context.Context, content json.RawMessage) (store.Record, error) {
	if l.keys == nil {
		return store.Record{}, fmt.Errorf("publish: %w", ErrNoKey)
	}
	res := l.submit(ctx, &request{content: content})
	if res.Err != nil {
		return store.Record{}, res.Err
	}
	return res.Records[0], nil
}

// Add verifies the signatures of msgs (one parallel batch), then validates
// and stores them in order, committed together with whatever else is
// queued. The first invalid message (bad signature, broken chain, fork,
// out of order) ends the call: the messages before it are stored, none
// after it. Messages held already are skipped (Result.Held).
func (l *Log) Add(ctx context.Context, msgs []*classic.Message) Result {
	start := time.Now()
	ok := l.verifier.VerifySignatures(ctx, msgs)
	if l.observer != nil && len(msgs) > 0 {
		l.observer.Verified(len(msgs), time.Since(start))
	}
	cut := len(msgs)
	for i, good := range ok {
		if !good {
			cut = i
			break
		}
	}
	res := l.AddVerified(ctx, msgs[:cut])
	if res.Err == nil && cut < len(msgs) {
		if err := ctx.Err(); err != nil {
			res.Err = err
		} else {
			res.Err = fmt.Errorf("message %d of %s: %w", msgs[cut].Sequence, msgs[cut].Author, ErrSignature)
		}
		res.Failed = cut
	}
	return res
}

// AddVerified is Add for messages whose signatures the caller checked.
func (l *Log) AddVerified(ctx context.Context, msgs []*classic.Message) Result {
	if len(msgs) == 0 {
		return Result{}
	}
	// Large calls are split so that one call never holds the writer for
	// more than a batch; each part stops the rest on failure.
	var total Result
	for len(msgs) > 0 {
		part := msgs[:min(len(msgs), l.maxBatch)]
		msgs = msgs[len(part):]
		res := l.submit(ctx, &request{msgs: part})
		total.Records = append(total.Records, res.Records...)
		total.Held += res.Held
		if res.Err != nil {
			total.Err = res.Err
			total.Failed += res.Failed
			return total
		}
		total.Failed += len(part)
	}
	return total
}

func (l *Log) run() {
	defer close(l.done)
	group := make([]*request, 0, 64)
	for {
		var first *request
		select {
		case first = <-l.reqs:
		case <-l.stopc:
			// Commit what is queued so that no caller waits forever.
			for {
				select {
				case r := <-l.reqs:
					l.commit([]*request{r})
				default:
					return
				}
			}
		}
		group = append(group[:0], first)
		n := first.size()
	gather:
		for n < l.maxBatch {
			select {
			case r := <-l.reqs:
				group = append(group, r)
				n += r.size()
			default:
				break gather
			}
		}
		l.commit(group)
		clear(group)
	}
}

type feedSeq struct {
	author feeds.FeedRef
	seq    int64
}

// pending is one group commit being prepared.
type pending struct {
	l      *Log
	states map[feeds.FeedRef]*classic.FeedState // after the staged messages
	keys   map[feedSeq]feeds.MessageRef         // staged, not yet stored
	recs   []store.Record
	msgs   []*classic.Message
}

func (p *pending) state(a feeds.FeedRef) (*classic.FeedState, error) {
	if s, ok := p.states[a]; ok {
		return s, nil
	}
	return p.l.state(a)
}

// heldOrFork tells a message we hold (ErrAlreadyStored) from a fork.
func (p *pending) heldOrFork(state *classic.FeedState, m *classic.Message) error {
	var key feeds.MessageRef
	switch k, ok := p.keys[feedSeq{m.Author, m.Sequence}]; {
	case ok:
		key = k
	case m.Sequence == state.Sequence:
		key = state.Key
	default:
		rec, err := p.l.st.GetBySequence(m.Author, m.Sequence)
		if err != nil {
			return fmt.Errorf("read %s sequence %d: %w", m.Author, m.Sequence, err)
		}
		key = rec.Key
	}
	if key == m.Key {
		return ErrAlreadyStored
	}
	return fmt.Errorf("%w: %s sequence %d is stored as %s, received %s", ErrFork, m.Author, m.Sequence, key, m.Key)
}

func (p *pending) stage(m *classic.Message, now float64) {
	s := classic.StateAfter(m)
	p.states[m.Author] = &s
	p.keys[feedSeq{m.Author, m.Sequence}] = m.Key
	p.recs = append(p.recs, store.Record{Key: m.Key, Author: m.Author, Sequence: m.Sequence, Timestamp: now, Value: m.Compact})
	p.msgs = append(p.msgs, m)
}

// commit validates (or signs) every request of the group and appends the
// valid messages with one store call.
func (l *Log) commit(group []*request) {
	now := float64(l.now().UnixMilli())
	p := &pending{l: l, states: map[feeds.FeedRef]*classic.FeedState{}, keys: map[feedSeq]feeds.MessageRef{}}
	results := make([]Result, len(group))
	first := make([]int, len(group)) // index of each request's first record in p.recs
	count := make([]int, len(group))
	for gi, r := range group {
		first[gi] = len(p.recs)
		res := &results[gi]
		if r.msgs == nil {
			m, err := l.sign(p, r.content, now)
			if err != nil {
				res.Err = fmt.Errorf("publish: %w", err)
				continue
			}
			p.stage(m, now)
			count[gi] = 1
			continue
		}
		for i, m := range r.msgs {
			state, err := p.state(m.Author)
			if err == nil && state != nil && m.Sequence > 0 && m.Sequence <= state.Sequence {
				err = p.heldOrFork(state, m)
				if errors.Is(err, ErrAlreadyStored) {
					res.Held++
					continue
				}
			}
			if err == nil {
				err = classic.ValidateNext(state, m)
				if err != nil && state != nil && m.Sequence == state.Sequence+1 && classic.IsFatal(err) {
					// The next message names another previous: a
					// second message at our latest sequence exists.
					err = fmt.Errorf("%w: %w", ErrFork, err)
				}
			}
			if err != nil {
				res.Err = fmt.Errorf("message %d of %s: %w", m.Sequence, m.Author, err)
				res.Failed = i
				break
			}
			p.stage(m, now)
			count[gi]++
		}
	}
	if len(p.recs) > 0 {
		start := time.Now()
		seqs, err := l.st.Append(p.recs)
		if err == nil && l.observer != nil {
			l.observer.Committed(len(p.recs), time.Since(start))
		}
		if err != nil {
			l.log.Error("append failed", "records", len(p.recs), "err", err)
			err = fmt.Errorf("append: %w", err)
			for gi := range results {
				if count[gi] > 0 {
					results[gi] = Result{Err: err}
				}
			}
			// The store may hold less than we staged: reload states.
			clear(l.states)
		} else {
			for a, s := range p.states {
				l.states[a] = s
			}
			for i := range p.recs {
				p.recs[i].Seq = seqs[i]
			}
			if l.after != nil {
				l.after(p.msgs)
			}
			for gi := range results {
				if count[gi] > 0 {
					results[gi].Records = p.recs[first[gi] : first[gi]+count[gi] : first[gi]+count[gi]]
				}
			}
		}
	}
	for gi, r := range group {
		r.reply <- results[gi]
	}
}

// sign creates the next message of the own feed.
func (l *Log) sign(p *pending, content json.RawMessage, now float64) (*classic.Message, error) {
	if l.keys == nil {
		return nil, ErrNoKey
	}
	own, err := p.state(l.keys.ID)
	if err != nil {
		return nil, err
	}
	ts := now
	if own != nil && !(ts > own.Timestamp) {
		ts = math.Floor(own.Timestamp) + 1
	}
	return classic.Create(l.keys.Private, own, ts, classic.RawJSON(content), l.hmac)
}
