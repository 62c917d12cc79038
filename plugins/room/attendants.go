package room

import (
	"sort"
	"sync"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
)

// Event is a change of the attendant set.
type Event struct {
	ID     feeds.FeedRef
	Joined bool // false: left
}

// Attendants is the set of peers present in the room, each with the
// connection that reaches it, and the subscribers to its changes.
//
// Changes are atomic with respect to subscriptions: Subscribe takes the
// current set and registers the subscriber under one lock, and every change
// is queued to every subscriber under that lock, so a subscriber's state
// plus the events after it always equal the true set. Queuing never blocks:
// each subscriber has its own bounded queue, drained by its own goroutine,
// and a subscriber whose queue is full is dropped (OnOverflow), so a slow
// reader never holds the lock or delays the others.
//
// A room that is one node of a mesh (room/mesh) also holds the attendants
// of the other nodes (RemoteJoin, RemoteLeave, RemoteDrop): the set that
// Subscribe, IDs and UnionLen give is the union of the local and remote
// attendants, and an id leaves it only when it has gone from every node.
// SubscribeLocal follows the local attendants only (what a node tells the
// others). Lookup, IsPresent and Len are about local attendants.
type Attendants struct {
	mu     sync.Mutex
	peers  map[feeds.FeedRef]*muxrpc.Endpoint
	remote map[feeds.FeedRef]map[string]struct{} // id -> nodes holding it
	byNode map[string]map[feeds.FeedRef]struct{} // node -> ids it holds
	subs   map[*Subscription]struct{}
	lsubs  map[*Subscription]struct{} // subscribers to the local set only
	// QueueLimit bounds each subscriber's queue (events not yet written).
	queueLimit int
}

// NewAttendants returns an empty set whose subscribers may fall behind by
// at most queueLimit events (default 4096 when <= 0).
func NewAttendants(queueLimit int) *Attendants {
	if queueLimit <= 0 {
		queueLimit = 4096
	}
	return &Attendants{peers: make(map[feeds.FeedRef]*muxrpc.Endpoint), subs: make(map[*Subscription]struct{}),
		lsubs: make(map[*Subscription]struct{}), remote: make(map[feeds.FeedRef]map[string]struct{}),
		byNode: make(map[string]map[feeds.FeedRef]struct{}), queueLimit: queueLimit}
}

// Join makes id present, reached through ep. If id is present through
// another connection, that entry now points at ep and no event is sent
// (the set did not change). It reports whether id was newly added.
func (a *Attendants) Join(id feeds.FeedRef, ep *muxrpc.Endpoint) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.peers[id]; ok {
		a.peers[id] = ep
		return false
	}
	a.peers[id] = ep
	ev := Event{ID: id, Joined: true}
	broadcastLocked(a.lsubs, ev, a.queueLimit)
	if len(a.remote[id]) == 0 {
		a.broadcastLocked(ev)
	}
	return true
}

// Leave removes id if it is present through ep (a replaced connection
// leaving does not remove its successor). It reports whether id left.
func (a *Attendants) Leave(id feeds.FeedRef, ep *muxrpc.Endpoint) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.peers[id]; !ok || cur != ep {
		return false
	}
	delete(a.peers, id)
	ev := Event{ID: id, Joined: false}
	broadcastLocked(a.lsubs, ev, a.queueLimit)
	if len(a.remote[id]) == 0 {
		a.broadcastLocked(ev)
	}
	return true
}

// Lookup returns the connection of a present peer.
func (a *Attendants) Lookup(id feeds.FeedRef) (*muxrpc.Endpoint, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ep, ok := a.peers[id]
	return ep, ok
}

// IsPresent reports whether id is present.
func (a *Attendants) IsPresent(id feeds.FeedRef) bool {
	_, ok := a.Lookup(id)
	return ok
}

// Len returns the number of peers present locally.
func (a *Attendants) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.peers)
}

// IDs returns the present peers (local and remote), sorted.
func (a *Attendants) IDs() []feeds.FeedRef {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.idsLocked()
}

func (a *Attendants) idsLocked() []feeds.FeedRef {
	ids := make([]feeds.FeedRef, 0, len(a.peers)+len(a.remote))
	for id := range a.peers {
		ids = append(ids, id)
	}
	for id := range a.remote {
		if _, ok := a.peers[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return string(ids[i][:]) < string(ids[j][:]) })
	return ids
}

func (a *Attendants) broadcastLocked(ev Event) { broadcastLocked(a.subs, ev, a.queueLimit) }

func broadcastLocked(subs map[*Subscription]struct{}, ev Event, limit int) {
	for s := range subs {
		if !s.push(ev, limit) {
			delete(subs, s)
		}
	}
}

// Subscribe returns the current set and a subscription that receives
// every later change. onOverflow runs (in its own goroutine) if the
// subscriber falls more than the queue limit behind; the subscription is
// then dead. Close the subscription when done.
func (a *Attendants) Subscribe(onOverflow func()) (state []feeds.FeedRef, sub *Subscription) {
	sub = &Subscription{a: a, wake: make(chan struct{}, 1), dead: make(chan struct{}), onOverflow: onOverflow}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.subs[sub] = struct{}{}
	return a.idsLocked(), sub
}

// Subscribers returns the number of live subscriptions.
func (a *Attendants) Subscribers() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.subs)
}

// Subscription is one subscriber's queue of events.
type Subscription struct {
	a          *Attendants
	mu         sync.Mutex
	q          []Event
	wake       chan struct{} // capacity 1: "the queue is not empty"
	dead       chan struct{} // closed on overflow or Close
	closed     bool
	onOverflow func()
}

// push queues ev; false means the queue overflowed and the subscription
// is dead (called under the Attendants lock).
func (s *Subscription) push(ev Event, limit int) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	if len(s.q) >= limit {
		s.closed = true
		s.q = nil
		s.mu.Unlock()
		close(s.dead)
		if s.onOverflow != nil {
			go s.onOverflow()
		}
		return false
	}
	s.q = append(s.q, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true
}

// Wait returns a channel that has a value when events may be queued.
func (s *Subscription) Wait() <-chan struct{} { return s.wake }

// Dead is closed when the subscription overflowed or was closed.
func (s *Subscription) Dead() <-chan struct{} { return s.dead }

// Take returns the queued events (oldest first) and empties the queue.
func (s *Subscription) Take() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.q
	s.q = nil // the caller owns the array; a burst's memory goes with it
	return q
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.a.mu.Lock()
	delete(s.a.subs, s)
	delete(s.a.lsubs, s)
	s.a.mu.Unlock()
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.q = nil
		close(s.dead)
	}
	s.mu.Unlock()
}
