package room

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
)

// Event is a change of the attendant set.
type Event struct {
	ID     feeds.FeedRef
	Joined bool // false: left
}

// JSON is the event as room.attendants sends it:
// {"type":"joined"|"left","id":"@…"}. Subscriptions carry it encoded
// once for every subscriber (TakeJSON).
func (ev Event) JSON() []byte { return eventJSON(ev.ID.String(), ev.Joined) }

func eventJSON(id string, joined bool) []byte {
	typ := "left"
	if joined {
		typ = "joined"
	}
	b := make([]byte, 0, len(`{"type":"joined","id":""}`)+len(id))
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","id":"`...)
	b = append(b, id...)
	return append(b, `"}`...)
}

// present is one local attendant: the connection that reaches it and its
// id as text (kept so that states and events do not re-encode it).
type present struct {
	ep   *muxrpc.Endpoint
	name string
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
	peers  map[feeds.FeedRef]present
	remote map[feeds.FeedRef]map[string]struct{} // id -> nodes holding it
	byNode map[string]map[feeds.FeedRef]struct{} // node -> ids it holds
	subs   map[*Subscription]struct{}
	lsubs  map[*Subscription]struct{} // subscribers to the local set only
	nsubs  atomic.Int64               // len(subs), read without the lock
	// QueueLimit bounds each subscriber's queue (events not yet written).
	queueLimit int
}

// NewAttendants returns an empty set whose subscribers may fall behind by
// at most queueLimit events (default 4096 when <= 0).
func NewAttendants(queueLimit int) *Attendants {
	if queueLimit <= 0 {
		queueLimit = 4096
	}
	return &Attendants{peers: make(map[feeds.FeedRef]present), subs: make(map[*Subscription]struct{}),
		lsubs: make(map[*Subscription]struct{}), remote: make(map[feeds.FeedRef]map[string]struct{}),
		byNode: make(map[string]map[feeds.FeedRef]struct{}), queueLimit: queueLimit}
}

// Join makes id present, reached through ep. If id is present through
// another connection, that entry now points at ep and no event is sent
// (the set did not change). It reports whether id was newly added.
func (a *Attendants) Join(id feeds.FeedRef, ep *muxrpc.Endpoint) bool {
	name := id.String()
	ev, js := Event{ID: id, Joined: true}, eventJSON(name, true)
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.peers[id]; ok {
		p.ep = ep
		a.peers[id] = p
		return false
	}
	a.peers[id] = present{ep: ep, name: name}
	broadcastLocked(a.lsubs, ev, js, a.queueLimit)
	if len(a.remote[id]) == 0 {
		broadcastLocked(a.subs, ev, js, a.queueLimit)
		a.nsubs.Store(int64(len(a.subs)))
	}
	return true
}

// Leave removes id if it is present through ep (a replaced connection
// leaving does not remove its successor). It reports whether id left.
func (a *Attendants) Leave(id feeds.FeedRef, ep *muxrpc.Endpoint) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur, ok := a.peers[id]
	if !ok || cur.ep != ep {
		return false
	}
	delete(a.peers, id)
	ev, js := Event{ID: id, Joined: false}, eventJSON(cur.name, false)
	broadcastLocked(a.lsubs, ev, js, a.queueLimit)
	if len(a.remote[id]) == 0 {
		broadcastLocked(a.subs, ev, js, a.queueLimit)
		a.nsubs.Store(int64(len(a.subs)))
	}
	return true
}

// Lookup returns the connection of a present peer.
func (a *Attendants) Lookup(id feeds.FeedRef) (*muxrpc.Endpoint, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.peers[id]
	return p.ep, ok
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

func (a *Attendants) broadcastLocked(ev Event) {
	if len(a.subs) > 0 {
		broadcastLocked(a.subs, ev, ev.JSON(), a.queueLimit)
		a.nsubs.Store(int64(len(a.subs)))
	}
}

// broadcastLocked queues ev to every subscriber, with js, its JSON,
// encoded once for all.
func broadcastLocked(subs map[*Subscription]struct{}, ev Event, js []byte, limit int) {
	for s := range subs {
		if !s.push(ev, js, limit) {
			delete(subs, s)
		}
	}
}

// stateLocked is the present set (local and remote) as room.attendants
// sends it: {"type":"state","ids":[…]}, in no particular order (sorting
// a thousand ids under the lock for every subscriber costs more than
// the rest of its state).
func (a *Attendants) stateLocked() []byte {
	size := len(`{"type":"state","ids":[]}`)
	for _, p := range a.peers {
		size += len(p.name) + 3
	}
	b := make([]byte, 0, size+len(a.remote)*56)
	b = append(b, `{"type":"state","ids":[`...)
	first := true
	add := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"')
	}
	for _, p := range a.peers {
		add(p.name)
	}
	for id := range a.remote {
		if _, ok := a.peers[id]; !ok {
			add(id.String())
		}
	}
	return append(b, "]}"...)
}

// Subscribe returns the current set and a subscription that receives
// every later change. onOverflow runs (in its own goroutine) if the
// subscriber falls more than the queue limit behind; the subscription is
// then dead. Close the subscription when done.
func (a *Attendants) Subscribe(onOverflow func()) (state []feeds.FeedRef, sub *Subscription) {
	sub = a.newSubscription(onOverflow)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.addLocked(sub)
	return a.idsLocked(), sub
}

// SubscribeJSON is Subscribe with the state as room.attendants sends it
// ({"type":"state","ids":[…]}, unsorted).
func (a *Attendants) SubscribeJSON(onOverflow func()) (state []byte, sub *Subscription) {
	sub = a.newSubscription(onOverflow)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.addLocked(sub)
	return a.stateLocked(), sub
}

func (a *Attendants) newSubscription(onOverflow func()) *Subscription {
	return &Subscription{a: a, wake: make(chan struct{}, 1), dead: make(chan struct{}), onOverflow: onOverflow}
}

func (a *Attendants) addLocked(sub *Subscription) {
	a.subs[sub] = struct{}{}
	a.nsubs.Store(int64(len(a.subs)))
}

// Subscribers returns the number of live subscriptions.
func (a *Attendants) Subscribers() int { return int(a.nsubs.Load()) }

// Subscription is one subscriber's queue of events.
type Subscription struct {
	a          *Attendants
	mu         sync.Mutex
	q          []Event
	js         [][]byte      // js[i] is q[i] as JSON
	wake       chan struct{} // capacity 1: "the queue is not empty"
	dead       chan struct{} // closed on overflow or Close
	closed     bool
	onOverflow func()
}

// push queues ev; false means the queue overflowed and the subscription
// is dead (called under the Attendants lock).
func (s *Subscription) push(ev Event, js []byte, limit int) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	if len(s.q) >= limit {
		s.closed = true
		s.q, s.js = nil, nil
		s.mu.Unlock()
		close(s.dead)
		if s.onOverflow != nil {
			go s.onOverflow()
		}
		return false
	}
	s.q = append(s.q, ev)
	s.js = append(s.js, js)
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
	s.q, s.js = nil, nil // the caller owns the array; a burst's memory goes with it
	return q
}

// TakeJSON is Take with each event's JSON (shared by every subscriber:
// do not modify it).
func (s *Subscription) TakeJSON() ([]Event, [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, js := s.q, s.js
	s.q, s.js = nil, nil
	return q, js
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.a.mu.Lock()
	delete(s.a.subs, s)
	delete(s.a.lsubs, s)
	s.a.nsubs.Store(int64(len(s.a.subs)))
	s.a.mu.Unlock()
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.q, s.js = nil, nil
		close(s.dead)
	}
	s.mu.Unlock()
}
