package sbot

import "github.com/cask-ssb/cask/plugins/replicate"

// IngestStats counts the messages peers sent us: stored, held already
// (a duplicate send) and refused, over EBT and legacy replication alike.
func (n *Node) IngestStats() replicate.Stats {
	var s replicate.Stats
	for _, g := range n.ingest {
		st := g.Stats()
		s.Kept += st.Kept
		s.Held += st.Held
		s.Refused += st.Refused
	}
	return s
}
