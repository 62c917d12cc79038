package sbot

import (
	"github.com/cask-ssb/cask/plugins/ebt"
	"github.com/cask-ssb/cask/plugins/replicate"
)

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

// LegacyIngestStats counts what legacy replication (createHistoryStream)
// brought in, a part of IngestStats: next to an EBT peer it should be
// nothing.
func (n *Node) LegacyIngestStats() replicate.Stats { return n.ingest[1].Stats() }

// EBTSent counts what the node's EBT sessions sent since it started: notes
// objects, the feeds mentioned in them, and messages.
func (n *Node) EBTSent() ebt.Stats { return n.ebt.Stats() }
