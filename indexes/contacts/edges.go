package contacts

import "github.com/cask-ssb/cask/feeds"

// Out returns a copy of the edges from a (what a said about each feed).
func (g *Graph) Out(a feeds.FeedRef) map[feeds.FeedRef]Edge {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make(map[feeds.FeedRef]Edge, len(g.edges[a]))
	for t, e := range g.edges[a] {
		out[t] = e
	}
	return out
}

// Sources returns the feeds that said something about another feed.
func (g *Graph) Sources() []feeds.FeedRef {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]feeds.FeedRef, 0, len(g.edges))
	for a := range g.edges {
		out = append(out, a)
	}
	return out
}
