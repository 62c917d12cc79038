package sbot

import "github.com/cask-ssb/cask/plugins/replicate"

// IngestStats counts the messages peers sent us: stored, held already
// (a duplicate send) and refused, over EBT and legacy replication alike.
func (n *Node) IngestStats() replicate.Stats { return n.legacy.Ingester.Stats() }
