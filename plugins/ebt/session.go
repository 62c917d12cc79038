package ebt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
)

// What the peer sent waits in a queue of ingestQueue messages while the
// previous batch is verified and committed; a batch takes up to
// ingestBatch of them (larger batches: fewer commits, wider signature
// batches).
const (
	ingestQueue = 2048
	ingestBatch = 1000
)

// errInvalid marks an ingest failure: the peer sent something invalid.
var errInvalid = errors.New("ebt: peer sent an invalid message")

// session is the state of one ebt.replicate stream.
//
// Three goroutines share it: the reader (the peer's notes and messages),
// the ingester (stores what the peer sent) and the sender (the only one
// that writes to the stream: notes and messages). The reader never
// writes: notes it wants to send are queued for the sender. The lock
// guards the maps below and is never held across a network write or a
// store scan.
type session struct {
	r    *Replicator
	peer feeds.FeedRef
	out  *muxrpc.Sink
	log  *slog.Logger
	// wake tells the sender that notes are queued or the peer's wants
	// changed.
	wake chan struct{}

	mu sync.Mutex
	// clock is what the peer holds of each feed as far as we know (from
	// its notes, what it sent us, what we sent it, and the clock stored
	// after the last session); -1: it does not replicate the feed.
	clock map[feeds.FeedRef]int64
	// noted: the peer's first note of this session for the feed came
	// (see onNotes).
	noted map[feeds.FeedRef]bool
	want  map[feeds.FeedRef]bool // the peer asked us to send this feed
	told  map[feeds.FeedRef]bool // we noted this feed (sent or queued)
	rx    map[feeds.FeedRef]bool // our latest note asked the peer to send it
	// declined: we answered -1 for this feed (a later follow may still
	// make us ask for it).
	declined map[feeds.FeedRef]bool
	// queued: notes waiting for the sender, by feed (a later note for a
	// feed replaces an earlier one).
	queued map[feeds.FeedRef]int64
	// ahead: feeds of which we got messages the peer does not take from
	// us (and may lack), to note at the next flush.
	ahead map[feeds.FeedRef]int64
	// sendEmpty: the initial notes go out even when empty.
	sendEmpty bool
	// started: our initial notes are queued (later notes may follow).
	started bool
	// backlogDue: the sender must look for stored messages to send.
	backlogDue bool
	// ignored: feeds of live messages we found we do not replicate with
	// the peer (not asked again).
	ignored map[feeds.FeedRef]bool
	// gotClock: the peer's first notes of this session came.
	gotClock bool
	// waiting: feeds we receive from this peer and know exist beyond what
	// we hold, with when we started waiting for them (or last got one of
	// their messages); see checkStalls.
	waiting map[feeds.FeedRef]time.Time
}

// Session runs one EBT session over an established duplex stream. first is
// true for the server side, which sends its notes first; the client waits
// for the server's notes.
func (r *Replicator) Session(ctx context.Context, peer feeds.FeedRef, in *muxrpc.Source, out *muxrpc.Sink, first bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &session{
		r: r, peer: peer, out: out, log: r.log.With("peer", peer.String(), "ebt", true),
		clock: map[feeds.FeedRef]int64{}, noted: map[feeds.FeedRef]bool{}, want: map[feeds.FeedRef]bool{}, told: map[feeds.FeedRef]bool{},
		rx: map[feeds.FeedRef]bool{}, declined: map[feeds.FeedRef]bool{}, queued: map[feeds.FeedRef]int64{},
		ignored: map[feeds.FeedRef]bool{}, ahead: map[feeds.FeedRef]int64{},
		waiting: map[feeds.FeedRef]time.Time{},
		wake:    make(chan struct{}, 1),
	}
	prior, hasPrior := s.loadClock()
	r.mu.Lock()
	r.sessions[s] = struct{}{}
	r.mu.Unlock()
	defer s.end()
	// What we have now; the live log from here on feeds the sender.
	startSeq := r.st.LastSeq()
	if first {
		s.queueInitialNotes(prior, hasPrior)
	}
	senderDone := make(chan error, 1)
	go func() { senderDone <- s.sender(ctx, startSeq) }()
	stallsDone := make(chan struct{})
	go func() {
		defer close(stallsDone)
		s.watchStalls(ctx)
	}()

	msgs := make(chan json.RawMessage, ingestQueue)
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
			s.queueInitialNotes(prior, hasPrior)
		}
	}
	close(msgs)
	if ierr := <-ingestDone; ierr != nil && !errors.Is(ierr, context.Canceled) {
		rerr = ierr
	}
	cancel()
	if serr := <-senderDone; serr != nil && rerr == nil {
		rerr = serr
	}
	<-stallsDone
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

// loadClock reads the peer's clock stored after the last session.
func (s *session) loadClock() (map[feeds.FeedRef]int64, bool) {
	if s.r.Clocks == nil {
		return nil, false
	}
	clock, ok, err := s.r.Clocks.PeerClock(s.peer)
	if err != nil {
		s.log.Warn("ebt: stored clock of peer unreadable; sending full notes", "err", err)
		return nil, false
	}
	if ok {
		// Feeds we skip keep their stored state in the clock saved next.
		for f, seq := range clock {
			s.clock[f] = seq
		}
	}
	return clock, ok
}

// end unregisters the session, hands the feeds it received to other
// sessions and stores the peer's clock.
func (s *session) end() {
	r := s.r
	r.mu.Lock()
	delete(r.sessions, s)
	var owned []feeds.FeedRef
	for f, o := range r.rxFrom {
		if o == s {
			owned = append(owned, f)
		}
	}
	for _, f := range owned {
		delete(r.rxFrom, f)
		r.handOverLocked(f, s)
	}
	r.mu.Unlock()
	if r.Clocks == nil {
		return
	}
	s.mu.Lock()
	clock := make(map[feeds.FeedRef]int64, len(s.clock))
	for f, seq := range s.clock {
		clock[f] = seq
	}
	s.mu.Unlock()
	if err := r.Clocks.SavePeerClock(s.peer, clock); err != nil {
		s.log.Warn("ebt: store clock of peer", "err", err)
	}
}

// handOverLocked gives feed f, which nobody receives now, to the session
// whose peer is furthest ahead of us (if any is), and reports whether one
// was. r.mu is held.
func (r *Replicator) handOverLocked(f feeds.FeedRef, except *session) bool {
	lseq, _, _, err := r.st.Latest(f)
	if err != nil {
		return false
	}
	var best *session
	var bestSeq int64
	for t := range r.sessions {
		if t == except {
			continue
		}
		t.mu.Lock()
		c, ok := t.clock[f]
		if ok && t.told[f] && !t.declined[f] && c > lseq && c > bestSeq {
			best, bestSeq = t, c
		}
		t.mu.Unlock()
	}
	if best == nil {
		return false
	}
	r.rxFrom[f] = best
	best.mu.Lock()
	best.rx[f] = true
	best.queued[f] = Note(lseq, true)
	delete(best.waiting, f)
	best.mu.Unlock()
	best.signal()
	return true
}

// claimRxLocked reports whether s may ask its peer to send f: when no
// other session receives f, s becomes the one that does. r.mu is held.
func (r *Replicator) claimRxLocked(s *session, f feeds.FeedRef) bool {
	if o, ok := r.rxFrom[f]; ok && o != s {
		return false
	}
	r.rxFrom[f] = s
	return true
}

func (s *session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// isMessage tells a message value from notes: a message has a signature,
// an author and a sequence.
func isMessage(body []byte) bool {
	return bytes.Contains(body, []byte(`"signature"`)) && bytes.Contains(body, []byte(`"author"`)) &&
		bytes.Contains(body, []byte(`"sequence"`)) && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{"))
}

// latest returns our latest sequence of each feed (0 when we hold none).
func (s *session) latest(fs []feeds.FeedRef) ([]int64, error) {
	out := make([]int64, len(fs))
	for i, f := range fs {
		seq, _, _, err := s.r.st.Latest(f)
		if err != nil {
			return nil, err
		}
		out[i] = seq
	}
	return out, nil
}

// queueInitialNotes queues our notes for the feeds we replicate with the
// peer, asking to receive each one unless another session receives it.
// With a stored clock of the peer, a feed where the peer held what we hold
// now, or that it does not replicate, is left out (request skipping): if
// the peer mentions it, onNotes answers. The notes go out even when empty.
func (s *session) queueInitialNotes(prior map[feeds.FeedRef]int64, hasPrior bool) {
	fs := s.r.policy.Feeds(s.peer)
	lseqs, err := s.latest(fs)
	if err != nil {
		s.log.Debug("ebt: initial notes", "err", err)
		lseqs = make([]int64, len(fs))
	}
	s.r.mu.Lock()
	s.mu.Lock()
	var n int64
	for i, f := range fs {
		if s.told[f] {
			continue
		}
		if hasPrior {
			if c, ok := prior[f]; ok && (c == -1 || c == lseqs[i]) {
				continue
			}
		}
		rx := s.r.claimRxLocked(s, f)
		s.queued[f] = Note(lseqs[i], rx)
		s.told[f], s.rx[f] = true, rx
		n++
	}
	s.started, s.sendEmpty = true, true
	s.r.stats.initialEntries.Add(n)
	s.mu.Unlock()
	s.r.mu.Unlock()
	s.signal()
}

// queueNewNotes queues notes for feeds the policy added since we last
// told the peer, once the initial notes are out.
func (s *session) queueNewNotes() {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		return
	}
	fs := s.r.policy.Feeds(s.peer)
	lseqs, err := s.latest(fs)
	if err != nil {
		s.log.Debug("ebt: refresh notes", "err", err)
		return
	}
	s.r.mu.Lock()
	s.mu.Lock()
	n := 0
	for i, f := range fs {
		if s.told[f] {
			continue
		}
		rx := s.r.claimRxLocked(s, f)
		s.queued[f] = Note(lseqs[i], rx)
		s.told[f], s.rx[f] = true, rx
		delete(s.declined, f)
		delete(s.ignored, f)
		n++
	}
	s.mu.Unlock()
	s.r.mu.Unlock()
	if n > 0 {
		s.signal()
	}
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

// noteInfo is what onNotes reads from the policy and the store before it
// takes the locks.
type noteInfo struct {
	replicates bool
	lseq       int64
}

// onNotes handles a notes object from the peer. It only changes the
// session's state and queues answers for the sender.
func (s *session) onNotes(body []byte) error {
	notes, err := ParseNotes(body)
	if err != nil {
		return err
	}
	s.r.stats.notesReceived.Add(1)
	info := make(map[feeds.FeedRef]noteInfo, len(notes))
	for f := range notes {
		ni := noteInfo{replicates: s.r.policy.Replicates(s.peer, f)}
		if ni.replicates {
			if ni.lseq, _, _, err = s.r.st.Latest(f); err != nil {
				return fmt.Errorf("ebt: notes: %w", err)
			}
		}
		info[f] = ni
	}
	r := s.r
	r.mu.Lock()
	s.mu.Lock()
	s.gotClock = true
	var others []*session
	for f, d := range notes {
		ni := info[f]
		first := !s.noted[f]
		s.noted[f] = true
		if !ni.replicates {
			if d.Replicate {
				s.clock[f] = d.Sequence
				if !s.declined[f] {
					s.queued[f] = -1
					s.declined[f] = true
				}
			}
			continue
		}
		if !d.Replicate {
			s.clock[f] = -1
			delete(s.want, f)
			if r.rxFrom[f] == s {
				delete(r.rxFrom, f)
				s.rx[f] = false
				s.mu.Unlock()
				r.handOverLocked(f, s)
				s.mu.Lock()
			}
			continue
		}
		// The peer's first note of the session for f is what it holds,
		// even below what we believed: the stored clock counts what we
		// sent, which may have been lost with a cut connection or the
		// peer's crash, and trusting it would never send the peer what it
		// lacks (and the peer, which asks one session only for f, would
		// wait for good).
		// Nothing of f went out in this session before that note (we
		// send only what the peer asks for); later notes only raise the
		// clock (messages may be in flight).
		if c, ok := s.clock[f]; first || !ok || d.Sequence > c {
			s.clock[f] = d.Sequence
		}
		if d.Receive {
			if !s.want[f] {
				s.want[f] = true
			}
			if ni.lseq > d.Sequence {
				s.backlogDue = true
			}
		} else {
			delete(s.want, f)
		}
		switch {
		case !s.told[f]:
			// A feed we replicate but had not mentioned (skipped, or new):
			// tell our state; ask for it if the peer is ahead and nobody
			// else sends it.
			rx := d.Sequence > ni.lseq && r.claimRxLocked(s, f)
			s.queued[f] = Note(ni.lseq, rx)
			s.told[f], s.rx[f] = true, rx
		case !s.rx[f] && d.Sequence > ni.lseq:
			// The peer is ahead and we do not receive from it: switch to
			// it unless the peer we receive from is at least as far.
			o := r.rxFrom[f]
			if o != nil && o != s {
				o.mu.Lock()
				oc := o.clock[f]
				if oc >= d.Sequence {
					o.mu.Unlock()
					break
				}
				o.rx[f] = false
				o.queued[f] = Note(ni.lseq, false)
				o.mu.Unlock()
				others = append(others, o)
			}
			r.rxFrom[f] = s
			s.rx[f] = true
			s.queued[f] = Note(ni.lseq, true)
		case !d.Receive && ni.lseq > d.Sequence:
			// We are ahead and the peer does not take it from us: say so.
			s.queued[f] = Note(ni.lseq, s.rx[f])
		}
	}
	s.mu.Unlock()
	r.mu.Unlock()
	for _, o := range others {
		o.signal()
	}
	s.signal()
	return nil
}

// ingest validates and stores what the peer sends, in batches.
func (s *session) ingest(ctx context.Context, msgs <-chan json.RawMessage) error {
	batch := make([]json.RawMessage, 0, ingestBatch)
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
		// The peer holds what it sent, whatever we make of it: never
		// send it back (the live log may show it before Ingest returns).
		s.mu.Lock()
		for _, m := range batch {
			if f, seq, ok := authorSequence(m); ok && seq > s.clock[f] {
				s.clock[f] = seq
			}
		}
		s.mu.Unlock()
		heads, err := s.r.ing.Ingest(ctx, s.peer, batch)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %w", errInvalid, err)
		}
		s.mu.Lock()
		for a, seq := range heads {
			if seq > s.clock[a] {
				s.clock[a] = seq
			}
			delete(s.waiting, a) // progress: the stall wait starts again
		}
		s.mu.Unlock()
	}
	return nil
}

// authorSequence reads the author and sequence of a message value without
// parsing it: in a classic message they come before the content, so their
// first occurrences are theirs. It is a hint only; Ingest validates.
func authorSequence(m []byte) (feeds.FeedRef, int64, bool) {
	var f feeds.FeedRef
	i := bytes.Index(m, []byte(`"author"`))
	j := bytes.Index(m, []byte(`"sequence"`))
	if i < 0 || j < 0 {
		return f, 0, false
	}
	a := bytes.TrimLeft(m[i+len(`"author"`):], " \t\r\n:")
	if len(a) == 0 || a[0] != '"' {
		return f, 0, false
	}
	end := bytes.IndexByte(a[1:], '"')
	if end < 0 {
		return f, 0, false
	}
	f, err := feeds.ParseFeedRef(string(a[1 : 1+end]))
	if err != nil {
		return f, 0, false
	}
	q := bytes.TrimLeft(m[j+len(`"sequence"`):], " \t\r\n:")
	k := 0
	for k < len(q) && q[k] >= '0' && q[k] <= '9' {
		k++
	}
	seq, err := strconv.ParseInt(string(q[:k]), 10, 64)
	if err != nil {
		return f, 0, false
	}
	return f, seq, true
}

// PeerClock returns what peer holds as far as its running sessions tell:
// the latest sequence per feed we replicate with it (from its notes and
// what was sent either way). ok is false while no session with peer has
// received the peer's notes.
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
				if seq >= 0 {
					clock[f] = max(clock[f], seq)
				}
			}
			ok = true
		}
		s.mu.Unlock()
	}
	return clock, ok
}
