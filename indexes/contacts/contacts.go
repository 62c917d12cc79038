// Package contacts is the follow/block graph derived from `contact`
// messages ({"type":"contact","contact":"@…","following":bool,
// "blocking":bool}), and the hop distances replication is planned from.
//
// The graph is a view of the log. As a store indexer (index.go) it is
// persisted in the store's append batch, one key per edge, and loaded at
// start without reading the log; it can never disagree with the log. It
// never opens, reads or writes the store by itself: the store calls it.
package contacts

import (
	"bytes"
	"encoding/json"
	"iter"
	"sync"

	"github.com/cask-ssb/cask/feeds"
)

// Edge is what one feed said about another, by its latest contact message.
type Edge struct {
	Following bool
	Blocking  bool
}

// Graph is safe for concurrent use.
type Graph struct {
	mu      sync.RWMutex
	edges   map[feeds.FeedRef]map[feeds.FeedRef]Edge
	version uint64

	// pending holds the edges staged in the store's current append batch
	// (only the store's writer touches it).
	pending map[edgeKey]Edge
	// onChange, if set, is called after a commit changed edges of author.
	onChange func(author feeds.FeedRef)

	hopsMu    sync.Mutex
	hopsCache map[hopsKey]hopsEntry
}

type hopsKey struct {
	from feeds.FeedRef
	max  int
}

type hopsEntry struct {
	version uint64
	hops    map[feeds.FeedRef]int
}

// New returns an empty graph.
func New() *Graph {
	return &Graph{edges: map[feeds.FeedRef]map[feeds.FeedRef]Edge{}, hopsCache: map[hopsKey]hopsEntry{}, pending: map[edgeKey]Edge{}}
}

// contactContent is the part of a contact message the graph reads.
type contactContent struct {
	Type      string `json:"type"`
	Contact   string `json:"contact"`
	Following *bool  `json:"following"`
	Blocking  *bool  `json:"blocking"`
}

// MaybeContact is a cheap filter on a message value (compact JSON): false
// means it is certainly not a contact message.
func MaybeContact(value []byte) bool {
	return bytes.Contains(value, []byte(`"contact"`))
}

// ApplyValue applies a stored message value (compact JSON of the whole
// message) if it is a contact message; it reports whether it was one.
func (g *Graph) ApplyValue(value []byte) bool {
	if !MaybeContact(value) {
		return false
	}
	var m struct {
		Author  feeds.FeedRef   `json:"author"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(value, &m) != nil {
		return false
	}
	return g.Apply(m.Author, m.Content)
}

// Apply applies the content of a message by author. Content that is not a
// contact message (or is encrypted, i.e. a string) is ignored. A later
// message overrides what an earlier one said: following true/false
// (un)follows, blocking true blocks (and stops following), blocking false
// unblocks.
func (g *Graph) Apply(author feeds.FeedRef, content []byte) bool {
	c, target, ok := parseContact(content)
	if !ok {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.setLocked(author, target, c.merge(g.edges[author][target]))
	g.version++
	return true
}

func (g *Graph) setLocked(author, target feeds.FeedRef, e Edge) {
	out := g.edges[author]
	if out == nil {
		out = map[feeds.FeedRef]Edge{}
		g.edges[author] = out
	}
	out[target] = e
}

// parseContact reads a contact message's content.
func parseContact(content []byte) (contactContent, feeds.FeedRef, bool) {
	var c contactContent
	if len(content) == 0 || content[0] != '{' {
		return c, feeds.FeedRef{}, false
	}
	if json.Unmarshal(content, &c) != nil || c.Type != "contact" {
		return c, feeds.FeedRef{}, false
	}
	target, err := feeds.ParseFeedRef(c.Contact)
	if err != nil || (c.Following == nil && c.Blocking == nil) {
		return c, feeds.FeedRef{}, false
	}
	return c, target, true
}

// merge is the edge after c, given the edge before.
func (c contactContent) merge(e Edge) Edge {
	if c.Following != nil {
		e.Following = *c.Following
	}
	if c.Blocking != nil {
		e.Blocking = *c.Blocking
		if e.Blocking {
			e.Following = false
		}
	}
	return e
}

// Build applies every record value of log.
func Build(values iter.Seq2[[]byte, error]) (*Graph, int, error) {
	g := New()
	n := 0
	for v, err := range values {
		if err != nil {
			return nil, n, err
		}
		if g.ApplyValue(v) {
			n++
		}
	}
	return g, n, nil
}

// Edge returns what a said about b.
func (g *Graph) Edge(a, b feeds.FeedRef) Edge {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.edges[a][b]
}

// Follows reports whether a follows b.
func (g *Graph) Follows(a, b feeds.FeedRef) bool { return g.Edge(a, b).Following }

// Blocks reports whether a blocks b.
func (g *Graph) Blocks(a, b feeds.FeedRef) bool { return g.Edge(a, b).Blocking }

// Hops returns the feeds within max follow hops of from (from itself at
// 0), the way ssb-friends plans replication: breadth first along follows,
// never into a feed that from blocks. A feed that from follows is at hop
// 1, a feed they follow at hop 2, and so on. The result is shared: do not
// modify it.
func (g *Graph) Hops(from feeds.FeedRef, max int) map[feeds.FeedRef]int {
	g.mu.RLock()
	version := g.version
	g.mu.RUnlock()
	key := hopsKey{from, max}
	g.hopsMu.Lock()
	if e, ok := g.hopsCache[key]; ok && e.version == version {
		g.hopsMu.Unlock()
		return e.hops
	}
	g.hopsMu.Unlock()

	g.mu.RLock()
	hops := map[feeds.FeedRef]int{from: 0}
	frontier := []feeds.FeedRef{from}
	blocked := g.edges[from]
	for d := 1; d <= max && len(frontier) > 0; d++ {
		var next []feeds.FeedRef
		for _, f := range frontier {
			for t, e := range g.edges[f] {
				if !e.Following || blocked[t].Blocking {
					continue
				}
				if _, seen := hops[t]; seen {
					continue
				}
				hops[t] = d
				next = append(next, t)
			}
		}
		frontier = next
	}
	g.mu.RUnlock()

	g.hopsMu.Lock()
	if len(g.hopsCache) > 64 {
		clear(g.hopsCache)
	}
	g.hopsCache[key] = hopsEntry{version: version, hops: hops}
	g.hopsMu.Unlock()
	return hops
}
