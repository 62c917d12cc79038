// Package threads indexes replies: the messages whose content.root, or
// content.branch, is a given message. It is a store indexer written in
// the append batch and keeps nothing in memory.
//
// Keys (relative to the index prefix):
//
//	r<root msg id:32><seq:8>     a reply with content.root = root
//	b<branch msg id:32><seq:8>   a reply with branch (one of) = branch
package threads

import (
	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/content"
)

// Name and Version of the index.
const (
	Name    = "threads"
	Version = 1
)

// Index is the threads store indexer.
type Index struct {
	dec *content.Decoder
	key []byte
}

// New returns the indexer, decoding with dec.
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
	if m.Root != "" {
		if r, err := feeds.ParseMessageRef(m.Root); err == nil {
			ix.key = content.AppendSeq(Prefix(ix.key[:0], 'r', r), rec.Seq)
			if err := w.Set(ix.key, nil); err != nil {
				return err
			}
		}
	}
	for _, b := range m.Branch {
		if r, err := feeds.ParseMessageRef(b); err == nil {
			ix.key = content.AppendSeq(Prefix(ix.key[:0], 'b', r), rec.Seq)
			if err := w.Set(ix.key, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// Prefix appends the prefix of the keys of msg in family 'r' (root) or
// 'b' (branch).
func Prefix(dst []byte, family byte, msg feeds.MessageRef) []byte {
	dst = append(dst, family)
	return append(dst, msg[:]...)
}
