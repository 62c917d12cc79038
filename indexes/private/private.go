// Package private indexes the box1 private messages our key opens: each
// is decrypted once, when it is appended (or when the index is rebuilt),
// and its cleartext content is kept under its receive sequence. The
// cleartext is read only by the owner's methods (plugins/private); the
// other indexes index it like public content through the shared
// content.Decoder. The index keeps nothing in memory.
//
// Keys (relative to the index prefix):
//
//	p<seq:8>  →  the decrypted content (JSON)
package private

import (
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/content"
)

// Name and Version of the index.
const (
	Name    = "private"
	Version = 1
)

// Index is the private store indexer.
type Index struct {
	dec *content.Decoder
	key []byte
}

// New returns the indexer; dec must hold our key (content.NewDecoder).
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

// Stage implements store.Indexer.
func (ix *Index) Stage(w *store.IndexWriter, rec *store.Record) error {
	m := ix.dec.Decode(rec)
	if !m.Private {
		return nil
	}
	ix.key = Key(ix.key[:0], rec.Seq)
	return w.Set(ix.key, m.Content)
}

// Key appends the key of the record seq.
func Key(dst []byte, seq int64) []byte {
	return content.AppendSeq(append(dst, 'p'), seq)
}
