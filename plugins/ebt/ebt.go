package ebt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

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

	// StallTimeout is how long the session we receive a feed from may
	// send nothing of it while we know it exists beyond what we hold,
	// before the feed is asked from another connected peer that has more
	// of it (as ssb-ebt moves a feed after 3 s). Zero means
	// DefaultStallTimeout. Set it before the first session.
	StallTimeout time.Duration

	// Clocks, if set, keeps each peer's last known clock between
	// sessions: a session then starts with notes only for the feeds that
	// changed since (request skipping, as ssb-ebt).
	Clocks ClockStore

	// mu guards sessions and rxFrom, and is taken before a session's own
	// lock whenever two sessions' states change together (partitioning).
	// Nothing holds it across network writes or store scans.
	mu       sync.Mutex
	sessions map[*session]struct{}
	// rxFrom partitions the feeds we receive among the sessions: each
	// feed is asked for (receive flag set) from one peer at a time.
	rxFrom map[feeds.FeedRef]*session

	stats struct {
		notes, noteEntries, initialEntries, messages, notesReceived, stalls atomic.Int64
	}
}

// DefaultStallTimeout is the StallTimeout of a Replicator that sets none.
const DefaultStallTimeout = 10 * time.Second

func (r *Replicator) stallTimeout() time.Duration {
	if r.StallTimeout > 0 {
		return r.StallTimeout
	}
	return DefaultStallTimeout
}

// ClockStore keeps the last known clock of each peer: feed → the
// peer's latest sequence, -1 for a feed the peer does not replicate.
type ClockStore interface {
	PeerClock(peer feeds.FeedRef) (clock map[feeds.FeedRef]int64, ok bool, err error)
	SavePeerClock(peer feeds.FeedRef, clock map[feeds.FeedRef]int64) error
}

// Stats counts what the sessions sent since the Replicator was made.
type Stats struct {
	Notes       int64 // notes objects
	NoteEntries int64 // feeds mentioned in them
	// InitialEntries counts the feeds mentioned in the sessions' initial
	// notes (after request skipping).
	InitialEntries int64
	Messages       int64 // messages
	// NotesReceived counts the notes objects the peers sent.
	NotesReceived int64
	// Stalls counts the feeds moved to another peer because the one we
	// received them from sent nothing for StallTimeout.
	Stalls int64
}

// Stats returns the counts so far.
func (r *Replicator) Stats() Stats {
	return Stats{Notes: r.stats.notes.Load(), NoteEntries: r.stats.noteEntries.Load(),
		InitialEntries: r.stats.initialEntries.Load(), Messages: r.stats.messages.Load(),
		NotesReceived: r.stats.notesReceived.Load(), Stalls: r.stats.stalls.Load()}
}

// Sessions returns the peers of the running sessions.
func (r *Replicator) Sessions() []feeds.FeedRef {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]feeds.FeedRef, 0, len(r.sessions))
	for s := range r.sessions {
		out = append(out, s.peer)
	}
	return out
}

// ReceivingFrom tells the peer we ask to send us feed (partitioning), if
// any.
func (r *Replicator) ReceivingFrom(feed feeds.FeedRef) (feeds.FeedRef, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.rxFrom[feed]
	if !ok {
		return feeds.FeedRef{}, false
	}
	return s.peer, true
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
		s.queueNewNotes()
	}
}

// New returns a Replicator.
func New(st Store, ing Ingester, policy Policy, log *slog.Logger) *Replicator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Replicator{st: st, ing: ing, policy: policy, log: log, sessions: map[*session]struct{}{}, rxFrom: map[feeds.FeedRef]*session{}}
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
