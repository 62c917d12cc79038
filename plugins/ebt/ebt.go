package ebt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// Store is what sessions read.
type Store interface {
	Latest(author feeds.FeedRef) (seq int64, key feeds.MessageRef, ok bool, err error)
	Feeds() iter.Seq2[store.FeedLatest, error]
	History(ctx context.Context, q store.HistoryQuery) iter.Seq2[store.Record, error]
	Log(ctx context.Context, q store.LogQuery) iter.Seq2[store.Record, error]
	LastSeq() int64
}

// Ingester validates and stores messages received from a peer, in order
// (plugins/replicate: the ingest path EBT shares with legacy replication).
// It returns an error for a message that shows the peer is broken or lying
// (the session ends and the peer is dropped); messages already held are not
// errors. heads is the latest sequence per feed of the messages the peer
// sent that we now hold (kept or held already).
type Ingester interface {
	Ingest(ctx context.Context, peer feeds.FeedRef, msgs []json.RawMessage) (heads map[feeds.FeedRef]int64, err error)
}

// Policy says which feeds we replicate with a peer.
type Policy interface {
	// Feeds lists the feeds to offer and ask for in a session with peer.
	Feeds(peer feeds.FeedRef) []feeds.FeedRef
	// Replicates reports whether we replicate feed with peer.
	Replicates(peer, feed feeds.FeedRef) bool
}

// Replicator runs EBT sessions.
type Replicator struct {
	st     Store
	ing    Ingester
	policy Policy
	log    *slog.Logger
	// Drop, if set, is called when a peer sent a message the Ingester
	// rejected; the daemon disconnects it.
	Drop func(peer feeds.FeedRef, err error)
	// Sent, if set, counts the messages sessions send (metrics). It must
	// not block.
	Sent func(n int)

	mu       sync.Mutex
	sessions map[*session]struct{}
}

// Refresh makes every running session offer and ask for the feeds the
// policy added since it started (after a follow, say).
func (r *Replicator) Refresh() {
	r.mu.Lock()
	ss := make([]*session, 0, len(r.sessions))
	for s := range r.sessions {
		ss = append(ss, s)
	}
	r.mu.Unlock()
	for _, s := range ss {
		if err := s.sendNewNotes(); err != nil {
			s.log.Debug("ebt: refresh notes", "err", err)
		}
	}
}

// New returns a Replicator.
func New(st Store, ing Ingester, policy Policy, log *slog.Logger) *Replicator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Replicator{st: st, ing: ing, policy: policy, log: log, sessions: map[*session]struct{}{}}
}

// Args is the argument of ebt.replicate.
type Args struct {
	Version int    `json:"version"`
	Format  string `json:"format,omitempty"`
}

// Service declares ebt.replicate (the server side of a session) and
// ebt.clock, both open to anyone as in ssb-ebt. peerOf tells the remote
// feed of a call (false for local connections, which are not replicated
// with).
func (r *Replicator) Service(peerOf func(*muxrpc.Request) (feeds.FeedRef, bool)) service.Service {
	replicate := service.Duplex("ebt.replicate", service.Anyone, func(ctx context.Context, req *muxrpc.Request, in *muxrpc.Source, out *muxrpc.Sink) error {
		var a Args
		if err := req.Arg(0, &a); err != nil || a.Version != 3 {
			return errors.New("expected ebt.replicate({version: 3})")
		}
		if a.Format != "" && a.Format != "classic" {
			return fmt.Errorf("Unknown format: %s", a.Format)
		}
		peer, ok := peerOf(req)
		if !ok {
			return errors.New("ebt.replicate: only with a remote peer")
		}
		return r.Session(ctx, peer, in, out, true)
	})
	clock := service.Async("ebt.clock", service.Anyone, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		clock := map[string]int64{}
		for fl, err := range r.st.Feeds() {
			if err != nil {
				return nil, err
			}
			clock[fl.Author.String()] = fl.Sequence
		}
		return clock, nil
	})
	return service.Service{Name: "ebt", Methods: []service.Method{replicate, clock}}
}

// Start opens a session as the client (the side that dialled): it calls
// ebt.replicate and runs the session until the stream or ctx ends. A peer
// without EBT answers with an error (the caller may then fall back to
// legacy replication).
func (r *Replicator) Start(ctx context.Context, e *muxrpc.Endpoint, peer feeds.FeedRef) error {
	in, out, err := e.Duplex(ctx, muxrpc.Method{"ebt", "replicate"}, Args{Version: 3, Format: "classic"})
	if err != nil {
		return err
	}
	return r.Session(ctx, peer, in, out, false)
}

// IsMissing reports whether err says the peer has no ebt.replicate.
func IsMissing(err error) bool {
	var ce *muxrpc.CallError
	if !errors.As(err, &ce) {
		return false
	}
	return ce.Message == "method:ebt,replicate is not in list of allowed methods" ||
		ce.Message == "muxrpc: no such command: ebt.replicate"
}

// errInvalid marks an ingest failure: the peer sent something invalid.
var errInvalid = errors.New("ebt: peer sent an invalid message")

// session is the state of one ebt.replicate stream.
type session struct {
	r    *Replicator
	peer feeds.FeedRef
	out  *muxrpc.Sink
	log  *slog.Logger

	mu   sync.Mutex
	sent map[feeds.FeedRef]int64 // the peer has (or we sent) up to this sequence
	want map[feeds.FeedRef]bool  // the peer asked us to send this feed
	told map[feeds.FeedRef]bool  // we sent a note replicating this feed
	// declined: we answered -1 for this feed (a later follow may still
	// make us ask for it).
	declined map[feeds.FeedRef]bool
	wake     chan struct{} // want changed
	// started: our initial notes are out (later notes may follow).
	started bool
	// clock is the sequence the peer said it holds, per feed we
	// replicate with it (from its notes); gotClock: its first notes came.
	clock    map[feeds.FeedRef]int64
	gotClock bool
}

// Session runs one EBT session over an established duplex stream. first is
// true for the server side, which sends its notes first; the client waits
// for the server's notes.
func (r *Replicator) Session(ctx context.Context, peer feeds.FeedRef, in *muxrpc.Source, out *muxrpc.Sink, first bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &session{
		r: r, peer: peer, out: out, log: r.log.With("peer", peer.String(), "ebt", true),
		sent: map[feeds.FeedRef]int64{}, want: map[feeds.FeedRef]bool{}, told: map[feeds.FeedRef]bool{},
		declined: map[feeds.FeedRef]bool{},
		clock:    map[feeds.FeedRef]int64{},
		wake:     make(chan struct{}, 1),
	}
	r.mu.Lock()
	r.sessions[s] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.sessions, s)
		r.mu.Unlock()
	}()
	// What we have now; the live log from here on feeds the sender.
	startSeq := r.st.LastSeq()
	if first {
		if err := s.sendInitialNotes(); err != nil {
			return err
		}
	}
	senderDone := make(chan error, 1)
	go func() { senderDone <- s.sender(ctx, startSeq) }()

	msgs := make(chan json.RawMessage, 512)
	ingestDone := make(chan error, 1)
	go func() {
		err := s.ingest(ctx, msgs)
		if err != nil {
			cancel() // unblocks the reading loop below
		}
		ingestDone <- err
	}()

	gotNotes := first
	var rerr error
read:
	for body, err := range in.All(ctx) {
		if err != nil {
			rerr = err
			break
		}
		if isMessage(body) {
			select {
			case msgs <- append(json.RawMessage(nil), body...):
			case <-ctx.Done():
				break read
			}
			continue
		}
		if err := s.onNotes(body); err != nil {
			rerr = err
			break
		}
		if !gotNotes {
			gotNotes = true
			if err := s.sendInitialNotes(); err != nil {
				rerr = err
				break
			}
		}
	}
	close(msgs)
	if ierr := <-ingestDone; ierr != nil && !errors.Is(ierr, context.Canceled) {
		rerr = ierr
	}
	cancel()
	<-senderDone
	if errors.Is(rerr, errInvalid) {
		s.log.Warn("ebt: invalid message from peer", "err", rerr)
		out.CloseWithError(rerr)
		if r.Drop != nil {
			r.Drop(peer, rerr)
		}
		return nil
	}
	var ce *muxrpc.CallError
	if errors.As(rerr, &ce) {
		return rerr // the peer ended the stream with an error (maybe: no EBT)
	}
	if rerr != nil && !errors.Is(rerr, context.Canceled) && !errors.Is(rerr, muxrpc.ErrClosed) {
		s.log.Debug("ebt session ended", "err", rerr)
	}
	return nil
}

// isMessage tells a message value from notes: a message has a signature,
// an author and a sequence.
func isMessage(body []byte) bool {
	return bytes.Contains(body, []byte(`"signature"`)) && bytes.Contains(body, []byte(`"author"`)) &&
		bytes.Contains(body, []byte(`"sequence"`)) && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{"))
}

// sendInitialNotes sends our clock for every feed we replicate with the
// peer, asking to receive each one. It is sent even when empty.
func (s *session) sendInitialNotes() error {
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	return s.sendNotes(true)
}

// sendNewNotes sends notes for feeds the policy added since we last told
// the peer, once the initial notes are out.
func (s *session) sendNewNotes() error {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		return nil
	}
	return s.sendNotes(false)
}

func (s *session) sendNotes(always bool) error {
	notes := map[string]int64{}
	s.mu.Lock()
	for _, f := range s.r.policy.Feeds(s.peer) {
		if s.told[f] {
			continue
		}
		seq, _, _, err := s.r.st.Latest(f)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		notes[f.String()] = Note(seq, true)
		s.told[f] = true
	}
	s.mu.Unlock()
	if len(notes) == 0 && !always {
		return nil
	}
	return s.out.Write(notes)
}

// ParseNotes reads a notes object ({feed: note}, or wrapped as
// {"clock": {...}}). Keys that are not feed ids and values that are not
// numbers are dropped, as JS does.
func ParseNotes(body []byte) (map[feeds.FeedRef]Decoded, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("ebt: invalid notes: %w", err)
	}
	if c, ok := raw["clock"]; ok && len(raw) == 1 && bytes.HasPrefix(c, []byte("{")) {
		raw = nil
		if err := json.Unmarshal(c, &raw); err != nil {
			return nil, fmt.Errorf("ebt: invalid notes: %w", err)
		}
	}
	notes := make(map[feeds.FeedRef]Decoded, len(raw))
	for k, v := range raw {
		f, err := feeds.ParseFeedRef(k)
		if err != nil {
			continue
		}
		var n float64
		if json.Unmarshal(v, &n) != nil {
			continue
		}
		notes[f] = DecodeNote(n)
	}
	return notes, nil
}

// onNotes handles a notes object from the peer.
func (s *session) onNotes(body []byte) error {
	notes, err := ParseNotes(body)
	if err != nil {
		return err
	}
	reply := map[string]int64{}
	changed := false
	s.mu.Lock()
	s.gotClock = true
	for f, d := range notes {
		k := f.String()
		if !s.r.policy.Replicates(s.peer, f) {
			if d.Replicate && !s.declined[f] {
				reply[k] = -1
				s.declined[f] = true
			}
			continue
		}
		if !d.Replicate {
			delete(s.want, f)
			delete(s.clock, f)
			continue
		}
		if d.Sequence > s.sent[f] {
			s.sent[f] = d.Sequence
		}
		s.clock[f] = d.Sequence
		if d.Receive {
			if !s.want[f] {
				s.want[f] = true
				changed = true
			}
		} else {
			delete(s.want, f)
		}
		if !s.told[f] {
			// A feed we replicate but had not mentioned: tell our state.
			seq, _, _, err := s.r.st.Latest(f)
			if err == nil {
				reply[k] = Note(seq, true)
				s.told[f] = true
			}
		}
	}
	s.mu.Unlock()
	if changed {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	if len(reply) > 0 {
		return s.out.Write(reply)
	}
	return nil
}

// ingest validates and stores what the peer sends, in batches.
func (s *session) ingest(ctx context.Context, msgs <-chan json.RawMessage) error {
	batch := make([]json.RawMessage, 0, 256)
	for m := range msgs {
		batch = append(batch[:0], m)
	more:
		for len(batch) < cap(batch) {
			select {
			case m, ok := <-msgs:
				if !ok {
					break more
				}
				batch = append(batch, m)
			default:
				break more
			}
		}
		heads, err := s.r.ing.Ingest(ctx, s.peer, batch)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %w", errInvalid, err)
		}
		// The peer has these now: never send them back.
		s.mu.Lock()
		for a, seq := range heads {
			if seq > s.sent[a] {
				s.sent[a] = seq
			}
		}
		s.mu.Unlock()
	}
	return nil
}

// sender streams what the peer asked for: the stored backlog of each
// wanted feed, then new messages as they are appended.
func (s *session) sender(ctx context.Context, startSeq int64) error {
	live := make(chan store.Record, 256)
	go func() {
		defer close(live)
		for rec, err := range s.r.st.Log(ctx, store.LogQuery{Gt: startSeq, Live: true}) {
			if err != nil {
				return
			}
			select {
			case live <- rec:
			case <-ctx.Done():
				return
			}
		}
	}()
	buf := make([]byte, 0, 4096)
	send := func(rec store.Record) error {
		buf = append(buf[:0], rec.Value...)
		if err := s.out.Write(json.RawMessage(buf)); err != nil {
			return err
		}
		if s.r.Sent != nil {
			s.r.Sent(1)
		}
		return nil
	}
	// backlog sends every stored message of wanted feeds past what the
	// peer has.
	backlog := func() error {
		s.mu.Lock()
		var todo []feeds.FeedRef
		for f := range s.want {
			todo = append(todo, f)
		}
		s.mu.Unlock()
		for _, f := range todo {
			for {
				s.mu.Lock()
				from, ok := s.sent[f]+1, s.want[f]
				s.mu.Unlock()
				if !ok {
					break
				}
				n := 0
				for rec, err := range s.r.st.History(ctx, store.HistoryQuery{Author: f, From: from, Old: true, Limit: 500}) {
					if err != nil {
						return err
					}
					if err := send(rec); err != nil {
						return err
					}
					s.mu.Lock()
					if rec.Sequence > s.sent[f] {
						s.sent[f] = rec.Sequence
					}
					s.mu.Unlock()
					n++
				}
				if n < 500 {
					break
				}
			}
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
			if err := backlog(); err != nil {
				return ignoreClosed(err)
			}
		case rec, ok := <-live:
			if !ok {
				return nil
			}
			s.mu.Lock()
			want, have := s.want[rec.Author], s.sent[rec.Author]
			s.mu.Unlock()
			if !want || rec.Sequence <= have {
				continue
			}
			if rec.Sequence > have+1 {
				// A gap (we stored more before the peer asked): fill it.
				if err := backlog(); err != nil {
					return ignoreClosed(err)
				}
				continue
			}
			if err := send(rec); err != nil {
				return ignoreClosed(err)
			}
			s.mu.Lock()
			if rec.Sequence > s.sent[rec.Author] {
				s.sent[rec.Author] = rec.Sequence
			}
			s.mu.Unlock()
		}
	}
}

func ignoreClosed(err error) error {
	if errors.Is(err, muxrpc.ErrStreamClosed) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// PeerClock returns what peer told us it holds in its running sessions:
// the latest sequence it advertised per feed we replicate with it. ok is
// false while no session with peer has received the peer's notes.
func (r *Replicator) PeerClock(peer feeds.FeedRef) (clock map[feeds.FeedRef]int64, ok bool) {
	r.mu.Lock()
	var ss []*session
	for s := range r.sessions {
		if s.peer == peer {
			ss = append(ss, s)
		}
	}
	r.mu.Unlock()
	for _, s := range ss {
		s.mu.Lock()
		if s.gotClock {
			if clock == nil {
				clock = make(map[feeds.FeedRef]int64, len(s.clock))
			}
			for f, seq := range s.clock {
				clock[f] = max(clock[f], seq)
			}
			ok = true
		}
		s.mu.Unlock()
	}
	return clock, ok
}
