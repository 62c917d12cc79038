package room

import (
	"sort"

	"github.com/cask-ssb/cask/feeds"
)

// RemoteJoin records that node holds id. The union changes (and
// subscribers hear `joined`) only if no node, this one included, held it.
func (a *Attendants) RemoteJoin(node string, id feeds.FeedRef) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.remoteJoinLocked(node, id)
}

func (a *Attendants) remoteJoinLocked(node string, id feeds.FeedRef) {
	held := a.remote[id]
	if _, ok := held[node]; ok {
		return
	}
	_, local := a.peers[id]
	newInUnion := !local && len(held) == 0
	if held == nil {
		held = make(map[string]struct{}, 1)
		a.remote[id] = held
	}
	held[node] = struct{}{}
	ids := a.byNode[node]
	if ids == nil {
		ids = make(map[feeds.FeedRef]struct{})
		a.byNode[node] = ids
	}
	ids[id] = struct{}{}
	if newInUnion {
		a.broadcastLocked(Event{ID: id, Joined: true})
	}
}

// RemoteLeave records that node no longer holds id; subscribers hear
// `left` only if no other node holds it.
func (a *Attendants) RemoteLeave(node string, id feeds.FeedRef) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.remoteLeaveLocked(node, id)
}

func (a *Attendants) remoteLeaveLocked(node string, id feeds.FeedRef) {
	held := a.remote[id]
	if _, ok := held[node]; !ok {
		return
	}
	delete(held, node)
	if len(held) == 0 {
		delete(a.remote, id)
	}
	if ids := a.byNode[node]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(a.byNode, node)
		}
	}
	if _, local := a.peers[id]; !local && len(held) == 0 {
		a.broadcastLocked(Event{ID: id, Joined: false})
	}
}

// RemoteState replaces what node holds with ids (a node's full list, on
// (re)subscribing): only the differences reach subscribers.
func (a *Attendants) RemoteState(node string, ids []feeds.FeedRef) {
	a.mu.Lock()
	defer a.mu.Unlock()
	next := make(map[feeds.FeedRef]struct{}, len(ids))
	for _, id := range ids {
		next[id] = struct{}{}
	}
	for id := range a.byNode[node] {
		if _, ok := next[id]; !ok {
			a.remoteLeaveLocked(node, id)
		}
	}
	for _, id := range ids {
		a.remoteJoinLocked(node, id)
	}
}

// RemoteDrop forgets every attendant of node (its mesh link broke).
func (a *Attendants) RemoteDrop(node string) {
	a.RemoteState(node, nil)
}

// Holders returns the nodes other than this one that hold id, sorted.
func (a *Attendants) Holders(id feeds.FeedRef) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.remote[id]))
	for n := range a.remote[id] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// UnionLen returns the number of peers present on any node.
func (a *Attendants) UnionLen() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.peers)
	for id := range a.remote {
		if _, ok := a.peers[id]; !ok {
			n++
		}
	}
	return n
}

// LocalIDs returns the peers present locally, sorted.
func (a *Attendants) LocalIDs() []feeds.FeedRef {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.localIDsLocked()
}

func (a *Attendants) localIDsLocked() []feeds.FeedRef {
	ids := make([]feeds.FeedRef, 0, len(a.peers))
	for id := range a.peers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return string(ids[i][:]) < string(ids[j][:]) })
	return ids
}

// SubscribeLocal is Subscribe for the local attendants only: what this
// node tells the other nodes of a mesh.
func (a *Attendants) SubscribeLocal(onOverflow func()) (state []feeds.FeedRef, sub *Subscription) {
	sub = &Subscription{a: a, wake: make(chan struct{}, 1), dead: make(chan struct{}), onOverflow: onOverflow}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lsubs[sub] = struct{}{}
	return a.localIDsLocked(), sub
}
