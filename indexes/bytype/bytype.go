// Package bytype is the by-type index of the log: content.type to
// messages, in receive-timestamp order (the order and the gt/lt bounds of
// ssb-db's messagesByType) and in claimed-timestamp order, plus every
// message in claimed-timestamp order (createFeedStream). It is a store
// indexer written in the append batch; it keeps nothing in memory.
//
// Keys (relative to the index prefix):
//
//	r<type>\x00<receive ts:8><seq:8>   messages of a type, receive timestamp order
//	c<type>\x00<claimed ts:8><seq:8>   messages of a type, claimed timestamp order
//	a<resolved ts:8><author><seq:8>    every message, in ssb-db's feed order
//
// The resolved timestamp (ssb-db's createFeedStream order) is the claimed
// one, or the receive time when the claimed one is missing or later.
// Timestamps are content.AppendFloat (bytewise order is numeric order).
// Private messages our key opens are indexed by their decrypted type.
package bytype

import (
	"strings"

	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/content"
)

// Name and Version of the index.
const (
	Name    = "bytype"
	Version = 1
	// MaxType is the longest type indexed, in bytes.
	MaxType = 256
)

// Index is the by-type store indexer.
type Index struct {
	dec *content.Decoder
	key []byte
}

// New returns the indexer, decoding with dec (shared by the indexers of
// one store).
func New(dec *content.Decoder) *Index { return &Index{dec: dec} }

// Name implements store.Indexer.
func (ix *Index) Name() string { return Name }

// Version implements store.Indexer.
func (ix *Index) Version() uint64 { return Version }

// Reset implements store.Indexer: it drops what the shared decoder
// decoded ahead (no other in-memory state).
func (ix *Index) Reset() { ix.dec.Forget() }

// Prepare implements store.Preparer: the shared decoder decodes a
// rebuild's chunk on every core ahead of Stage (once for all the
// indexers sharing it).
func (ix *Index) Prepare(recs []store.Record) { ix.dec.Prepare(recs) }

// Load implements store.Indexer (no in-memory state).
func (ix *Index) Load(func(func(k, v []byte) error) error) error { return nil }

// Commit implements store.Indexer.
func (ix *Index) Commit() {}

// Abort implements store.Indexer.
func (ix *Index) Abort() {}

// ValidType reports whether t can be indexed.
func ValidType(t string) bool {
	return t != "" && len(t) <= MaxType && !strings.ContainsRune(t, 0)
}

// Stage implements store.Indexer.
func (ix *Index) Stage(w *store.IndexWriter, rec *store.Record) error {
	m := ix.dec.Decode(rec)
	k := append(ix.key[:0], 'a')
	k = content.AppendFloat(k, Resolved(m.ClaimedTS, rec.Timestamp))
	k = append(k, rec.Author.String()...)
	k = content.AppendSeq(k, rec.Seq)
	if err := w.Set(k, nil); err != nil {
		return err
	}
	if ValidType(m.Type) {
		k = TypePrefix(k[:0], 'r', m.Type)
		k = content.AppendFloat(k, rec.Timestamp)
		k = content.AppendSeq(k, rec.Seq)
		if err := w.Set(k, nil); err != nil {
			return err
		}
		k = TypePrefix(k[:0], 'c', m.Type)
		k = content.AppendFloat(k, m.ClaimedTS)
		k = content.AppendSeq(k, rec.Seq)
		if err := w.Set(k, nil); err != nil {
			return err
		}
	}
	ix.key = k
	return nil
}

// TypePrefix appends the prefix of the keys of type t in the family
// ('r': receive timestamp, 'c': claimed timestamp).
func TypePrefix(dst []byte, family byte, t string) []byte {
	dst = append(dst, family)
	dst = append(dst, t...)
	return append(dst, 0)
}

// Timestamp reads the timestamp of a key whose last 16 bytes are a
// timestamp and a seq.
func Timestamp(key []byte) float64 {
	if len(key) < 16 {
		return 0
	}
	return content.Float(key[len(key)-16 : len(key)-8])
}

// Resolved is ssb-db's resolved timestamp of a message: the claimed
// timestamp, or the receive timestamp when the claimed one is missing or
// later than it.
func Resolved(claimed, received float64) float64 {
	if claimed == 0 || claimed != claimed || received < claimed {
		return received
	}
	return claimed
}
