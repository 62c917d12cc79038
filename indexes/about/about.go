// Package about indexes "about" messages (ssb-about): for each target (a
// feed or message id given in content.about), each property (name,
// image, description, or any other key but type, about and recps) and
// each author, the latest value the author assigned, in receive order.
// The self-assigned value is the one whose author is the target. It is a
// store indexer written in the append batch and keeps nothing in memory.
//
// Keys (relative to the index prefix):
//
//	a<target>\x00<property>\x00<author>  →  <claimed ts:8><seq:8><value JSON>
package about

import (
	"strings"

	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/content"
)

// Name and Version of the index.
const (
	Name    = "about"
	Version = 1
)

// Index is the about store indexer.
type Index struct {
	dec      *content.Decoder
	key, val []byte
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
	if m.Type != "about" {
		return nil
	}
	target, ok := content.Str(content.Field(m.Content, "about"))
	if !ok || !content.IsLink(target) {
		return nil
	}
	author := rec.Author.String()
	var err error
	_ = content.EachMember(m.Content, func(prop string, v []byte) bool {
		switch prop {
		case "type", "about", "recps":
			return true
		}
		if prop == "" || strings.IndexByte(prop, 0) >= 0 {
			return true
		}
		ix.key = Key(ix.key[:0], target, prop, author)
		ix.val = content.AppendFloat(ix.val[:0], m.ClaimedTS)
		ix.val = content.AppendSeq(ix.val, rec.Seq)
		ix.val = append(ix.val, v...)
		err = w.Set(ix.key, ix.val)
		return err == nil
	})
	return err
}

// Prefix appends the prefix of the keys of target's property prop.
func Prefix(dst []byte, target, prop string) []byte {
	dst = append(dst, 'a')
	dst = append(dst, target...)
	dst = append(dst, 0)
	dst = append(dst, prop...)
	return append(dst, 0)
}

// Key appends the key of author's value of target's property prop.
func Key(dst []byte, target, prop, author string) []byte {
	return append(Prefix(dst, target, prop), author...)
}

// Value is one author's latest value of a property.
type Value struct {
	Author    string
	ClaimedTS float64
	Seq       int64
	JSON      []byte
}

// DecodeValue decodes an entry of the prefix of (target, prop).
func DecodeValue(prefixLen int, k, v []byte) (Value, bool) {
	if len(v) < 16 || len(k) < prefixLen {
		return Value{}, false
	}
	return Value{
		Author:    string(k[prefixLen:]),
		ClaimedTS: content.Float(v[:8]),
		Seq:       content.TrailingSeq(v[:16]),
		JSON:      v[16:],
	}, true
}
