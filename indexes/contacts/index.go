package contacts

import (
	"encoding/json"
	"fmt"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/store"
)

// The graph is a store indexer (store.Indexer): each edge is one key
//
//	<author:32><target:32> → <flags:1>  (bit 0 following, bit 1 blocking)
//
// written in the append batch of the contact message that set it.

// IndexVersion is the on-disk version of the persisted graph; changing it
// makes every store rebuild the graph from its log at the next start.
const IndexVersion = 1

type edgeKey struct{ author, target feeds.FeedRef }

const (
	flagFollowing = 1 << iota
	flagBlocking
)

// Name implements store.Indexer.
func (g *Graph) Name() string { return "contacts" }

// Version implements store.Indexer.
func (g *Graph) Version() uint64 { return IndexVersion }

// OnChange sets a function called after each commit that changed an edge
// of author (for example: our own follows changed, ask for new feeds). It
// runs on the store's writer: it must not block or append.
func (g *Graph) OnChange(fn func(author feeds.FeedRef)) { g.onChange = fn }

// Reset implements store.Indexer.
func (g *Graph) Reset() {
	g.mu.Lock()
	clear(g.edges)
	g.version++
	g.mu.Unlock()
	clear(g.pending)
}

// Load implements store.Indexer.
func (g *Graph) Load(scan func(fn func(key, value []byte) error) error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.version++
	return scan(func(k, v []byte) error {
		if len(k) != 64 || len(v) != 1 || v[0]&^(flagFollowing|flagBlocking) != 0 {
			return fmt.Errorf("contacts: bad edge entry (key %d bytes, value %x)", len(k), v)
		}
		var a, t feeds.FeedRef
		copy(a[:], k[:32])
		copy(t[:], k[32:])
		g.setLocked(a, t, Edge{Following: v[0]&flagFollowing != 0, Blocking: v[0]&flagBlocking != 0})
		return nil
	})
}

// Stage implements store.Indexer: a contact message's edge is staged.
func (g *Graph) Stage(w *store.IndexWriter, rec *store.Record) error {
	if !MaybeContact(rec.Value) {
		return nil
	}
	var m struct {
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(rec.Value, &m) != nil {
		return nil
	}
	c, target, ok := parseContact(m.Content)
	if !ok {
		return nil
	}
	k := edgeKey{rec.Author, target}
	e, staged := g.pending[k]
	if !staged {
		e = g.Edge(rec.Author, target)
	}
	e = c.merge(e)
	g.pending[k] = e
	var flags byte
	if e.Following {
		flags |= flagFollowing
	}
	if e.Blocking {
		flags |= flagBlocking
	}
	key := make([]byte, 0, 64)
	key = append(append(key, rec.Author[:]...), target[:]...)
	return w.Set(key, []byte{flags})
}

// Commit implements store.Indexer.
func (g *Graph) Commit() {
	if len(g.pending) == 0 {
		return
	}
	changed := map[feeds.FeedRef]bool{}
	g.mu.Lock()
	for k, e := range g.pending {
		g.setLocked(k.author, k.target, e)
		changed[k.author] = true
	}
	g.version++
	g.mu.Unlock()
	clear(g.pending)
	if g.onChange != nil {
		for a := range changed {
			g.onChange(a)
		}
	}
}

// Abort implements store.Indexer.
func (g *Graph) Abort() { clear(g.pending) }

// Equal reports whether g and o hold the same edges (an edge with neither
// flag equals a missing one).
func (g *Graph) Equal(o *Graph) bool {
	return g.subsetOf(o) && o.subsetOf(g)
}

func (g *Graph) subsetOf(o *Graph) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for a, out := range g.edges {
		for t, e := range out {
			if o.Edge(a, t) != e {
				return false
			}
		}
	}
	return true
}

// Edges is the number of edges with a flag set.
func (g *Graph) Edges() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	n := 0
	for _, out := range g.edges {
		for _, e := range out {
			if e.Following || e.Blocking {
				n++
			}
		}
	}
	return n
}
