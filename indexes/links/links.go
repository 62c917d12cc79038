// Package links is the links and backlinks index: every link of a
// message's content as ssb-links (ssb-db's links view) finds them, with
// rel the top-level key, in both directions. It is a store indexer
// written in the append batch and keeps nothing in memory.
//
// Keys (relative to the index prefix), in the order of ssb-db's
// ["link", source, rel, dest, sequence, id] and ["_link", dest, rel,
// source, sequence, id] keys:
//
//	F<source>\x00<rel>\x00<dest>\x00<sequence:8><seq:8>
//	B<dest>\x00<rel>\x00<source>\x00<sequence:8><seq:8>
//
// source is the author, dest the ref as written, sequence the author's
// sequence and seq the receive sequence. Rels holding a NUL byte are not
// indexed.
package links

import (
	"bytes"
	"strings"

	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/content"
)

// Name and Version of the index.
const (
	Name    = "links"
	Version = 1
)

// Index is the links store indexer.
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
	if len(m.Links) == 0 {
		return nil
	}
	src := rec.Author.String()
	for _, l := range m.Links {
		if strings.IndexByte(l.Rel, 0) >= 0 {
			continue
		}
		k := Key(ix.key[:0], 'F', src, l.Rel, l.Dest, rec.Sequence, rec.Seq)
		if err := w.Set(k, nil); err != nil {
			return err
		}
		k = Key(k[:0], 'B', l.Dest, l.Rel, src, rec.Sequence, rec.Seq)
		if err := w.Set(k, nil); err != nil {
			return err
		}
		ix.key = k
	}
	return nil
}

// Key appends one key: dir 'F' (from, rel, to = source, rel, dest) or 'B'
// (from, rel, to = dest, rel, source).
func Key(dst []byte, dir byte, from, rel, to string, sequence, seq int64) []byte {
	dst = append(dst, dir)
	dst = append(dst, from...)
	dst = append(dst, 0)
	dst = append(dst, rel...)
	dst = append(dst, 0)
	dst = append(dst, to...)
	dst = append(dst, 0)
	dst = content.AppendSeq(dst, sequence)
	return content.AppendSeq(dst, seq)
}

// Entry is one decoded key.
type Entry struct {
	Source, Rel, Dest string
	Sequence, Seq     int64
}

// Decode decodes a key written by Key; ok is false for a malformed key.
func Decode(k []byte) (e Entry, ok bool) {
	if len(k) < 1+3+16 {
		return e, false
	}
	dir := k[0]
	body := k[1 : len(k)-16]
	parts := bytes.SplitN(body, []byte{0}, 3)
	if len(parts) != 3 || len(parts[2]) == 0 || parts[2][len(parts[2])-1] != 0 {
		return e, false
	}
	from, rel, to := string(parts[0]), string(parts[1]), string(parts[2][:len(parts[2])-1])
	e.Rel = rel
	if dir == 'F' {
		e.Source, e.Dest = from, to
	} else {
		e.Source, e.Dest = to, from
	}
	e.Sequence = content.TrailingSeq(k[:len(k)-8])
	e.Seq = content.TrailingSeq(k)
	return e, true
}
