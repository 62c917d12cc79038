// Package viewread is what the query plugins (messagesByType, links,
// query, about, private, createFeedStream) share: reading the records an
// index range points at, then, for live streams, the records appended
// afterwards that a predicate accepts. It only reads.
package viewread

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"

	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/content"
	"github.com/cask-ssb/cask/indexes/private"
)

// Store is what the query plugins read.
type Store interface {
	IndexScan(ctx context.Context, r store.IndexRange) iter.Seq2[store.IndexEntry, error]
	IndexGet(index string, key []byte) ([]byte, error)
	At(seq int64) (store.Record, error)
	Log(ctx context.Context, q store.LogQuery) iter.Seq2[store.Record, error]
	LastSeq() int64
}

// Query is an index range plus how to follow it.
type Query struct {
	Range store.IndexRange
	// Seq gives the receive sequence an entry points at (0: skip it).
	Seq func(e store.IndexEntry) int64
	// Keep filters entries before their record is read (nil: all).
	Keep func(e store.IndexEntry) bool
	// Old: yield the stored entries (default true in JS).
	Old bool
	// Live: then yield records appended later that Match accepts, in
	// append order, until ctx ends.
	Live  bool
	Match func(rec *store.Record) bool
	// Limit caps the records yielded (0: no limit).
	Limit int
}

// Entry is one result: the index entry (zero for live records) and its
// record.
type Entry struct {
	Index  store.IndexEntry
	Record store.Record
}

// Run yields q's results.
func Run(ctx context.Context, st Store, q Query) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		start := st.LastSeq()
		n := 0
		if q.Old {
			for e, err := range st.IndexScan(ctx, q.Range) {
				if err != nil {
					yield(Entry{}, err)
					return
				}
				if q.Keep != nil && !q.Keep(e) {
					continue
				}
				seq := q.Seq(e)
				if seq <= 0 || seq > start {
					continue // appended after the start: the live part has it
				}
				rec, err := st.At(seq)
				if err != nil {
					yield(Entry{}, fmt.Errorf("index %s: record %d: %w", q.Range.Index, seq, err))
					return
				}
				Clear(st, &rec)
				if !yield(Entry{Index: e, Record: rec}, nil) {
					return
				}
				n++
				if q.Limit > 0 && n >= q.Limit {
					return
				}
			}
		}
		if !q.Live {
			return
		}
		for rec, err := range st.Log(ctx, store.LogQuery{Live: true, Gt: start}) {
			if err != nil {
				yield(Entry{}, err)
				return
			}
			if q.Match != nil && !q.Match(&rec) {
				continue
			}
			Clear(st, &rec)
			if !yield(Entry{Record: rec}, nil) {
				return
			}
			n++
			if q.Limit > 0 && n >= q.Limit {
				return
			}
		}
	}
}

// Records maps entries to records (for history.WriteRecords).
func Records(entries iter.Seq2[Entry, error]) iter.Seq2[store.Record, error] {
	return func(yield func(store.Record, error) bool) {
		for e, err := range entries {
			if !yield(e.Record, err) {
				return
			}
		}
	}
}

// Options reads the first argument of a call as an options object into
// v; a string first argument is given to str (when not nil).
func Options(args json.RawMessage, v any, str func(string)) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(args, &raw); err != nil {
		return fmt.Errorf("invalid arguments: %w", err)
	}
	if len(raw) == 0 || string(raw[0]) == "null" {
		return nil
	}
	var s string
	if str != nil && json.Unmarshal(raw[0], &s) == nil {
		str(s)
		return nil
	}
	if err := json.Unmarshal(raw[0], v); err != nil {
		return fmt.Errorf("invalid options: %w", err)
	}
	return nil
}

// Flag is a JS boolean option with its default.
func Flag(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

// Clear replaces the value of a private message our key opened with its
// decrypted form (Unboxed), from the private index; other records are
// left alone. Only the owner's methods call it.
func Clear(st Store, rec *store.Record) {
	c := content.Field(rec.Value, "content")
	if len(c) == 0 || c[0] != '"' {
		return
	}
	clear, err := st.IndexGet(private.Name, private.Key(nil, rec.Seq))
	if err != nil {
		return
	}
	rec.Value = Unboxed(rec.Value, clear)
}

// Unboxed returns a message value with its content replaced by the
// cleartext, the box string kept as "cyphertext" and "private": true (the
// shape of ssb-db's unboxed messages).
func Unboxed(value, clear []byte) []byte {
	out := []byte{'{'}
	first := true
	_ = content.EachMember(value, func(k string, v []byte) bool {
		if !first {
			out = append(out, ',')
		}
		first = false
		kj, _ := json.Marshal(k)
		out = append(append(out, kj...), ':')
		if k == "content" {
			out = append(out, clear...)
			out = append(out, `,"cyphertext":`...)
		}
		out = append(out, v...)
		return true
	})
	return append(out, `,"private":true}`...)
}

// WithField returns the JSON object obj with "name": n added last.
func WithField(obj []byte, name string, n float64) []byte {
	end := bytes.LastIndexByte(obj, '}')
	if end < 0 {
		return obj
	}
	out := make([]byte, 0, len(obj)+len(name)+32)
	out = append(out, obj[:end]...)
	if len(bytes.TrimSpace(obj[1:end])) > 0 {
		out = append(out, ',')
	}
	out = append(out, '"')
	out = append(out, name...)
	out = append(out, `":`...)
	out = append(out, classic.FormatNumber(n)...)
	return append(out, obj[end:]...)
}
