// Package pubs indexes the pub announcements in the log: messages
// {"type":"pub","address":{"host","port","key"}} (what ssb-invite publishes
// after accepting an invite, and what pubs publish about themselves). The
// index is a store indexer, written in the append batch, so it never lags
// the log; the daemon turns it into known peer addresses.
//
// It only records who announced which address; it never dials.
package pubs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/store"
)

// Name is the index's name (its store key prefix, and what
// `sbot reindex` takes).
const Name = "pubs"

// IndexVersion is the on-disk version of the index.
const IndexVersion = 1

// Each announcement is one key
//
//	<author:32><address string> → <receive sequence, decimal>
//
// where the address is the multiserver form net:HOST:PORT~shs:KEY.

// Index holds the pub addresses announced in the log, by author.
type Index struct {
	mu  sync.RWMutex
	ann map[feeds.FeedRef]map[string]int64 // author → address → receive seq

	pending []staged
}

type staged struct {
	author feeds.FeedRef
	addr   string
	seq    int64
}

// New returns an empty index (the store loads it at Open).
func New() *Index { return &Index{ann: map[feeds.FeedRef]map[string]int64{}} }

// Name implements store.Indexer.
func (x *Index) Name() string { return Name }

// Version implements store.Indexer.
func (x *Index) Version() uint64 { return IndexVersion }

// Reset implements store.Indexer.
func (x *Index) Reset() {
	x.mu.Lock()
	clear(x.ann)
	x.mu.Unlock()
	x.pending = x.pending[:0]
}

// Load implements store.Indexer.
func (x *Index) Load(scan func(fn func(key, value []byte) error) error) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return scan(func(k, v []byte) error {
		if len(k) <= 32 {
			return fmt.Errorf("pubs: bad entry key (%d bytes)", len(k))
		}
		seq, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return fmt.Errorf("pubs: bad entry value %q", v)
		}
		var a feeds.FeedRef
		copy(a[:], k[:32])
		x.setLocked(a, string(k[32:]), seq)
		return nil
	})
}

func (x *Index) setLocked(author feeds.FeedRef, addr string, seq int64) {
	m := x.ann[author]
	if m == nil {
		m = map[string]int64{}
		x.ann[author] = m
	}
	m[addr] = seq
}

// MaybePub is a cheap filter on a message value: false means it is
// certainly not a pub announcement.
func MaybePub(value []byte) bool { return bytes.Contains(value, []byte(`"pub"`)) }

// Stage implements store.Indexer.
func (x *Index) Stage(w *store.IndexWriter, rec *store.Record) error {
	if !MaybePub(rec.Value) {
		return nil
	}
	var m struct {
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(rec.Value, &m) != nil {
		return nil
	}
	a, ok := ParseContent(m.Content)
	if !ok {
		return nil
	}
	s := a.String()
	x.pending = append(x.pending, staged{author: rec.Author, addr: s, seq: rec.Seq})
	key := append(append(make([]byte, 0, 32+len(s)), rec.Author[:]...), s...)
	return w.Set(key, strconv.AppendInt(nil, rec.Seq, 10))
}

// Commit implements store.Indexer.
func (x *Index) Commit() {
	if len(x.pending) == 0 {
		return
	}
	x.mu.Lock()
	for _, p := range x.pending {
		x.setLocked(p.author, p.addr, p.seq)
	}
	x.mu.Unlock()
	x.pending = x.pending[:0]
}

// Abort implements store.Indexer.
func (x *Index) Abort() { x.pending = x.pending[:0] }

// ParseContent reads a pub announcement's content: type "pub" and an
// address that is an object {host, port, key} (what ssb-invite publishes)
// or a string (a multiserver or legacy HOST:PORT:@KEY address). Only TCP
// addresses count.
func ParseContent(content []byte) (feeds.Address, bool) {
	var c struct {
		Type    string          `json:"type"`
		Address json.RawMessage `json:"address"`
	}
	if json.Unmarshal(content, &c) != nil || c.Type != "pub" || len(c.Address) == 0 {
		return feeds.Address{}, false
	}
	var text string
	if json.Unmarshal(c.Address, &text) != nil {
		var o struct {
			Host string          `json:"host"`
			Port json.RawMessage `json:"port"`
			Key  string          `json:"key"`
		}
		if json.Unmarshal(c.Address, &o) != nil {
			return feeds.Address{}, false
		}
		port := strings.Trim(string(o.Port), `"`)
		text = o.Host + ":" + port + ":" + o.Key
	}
	a, err := feeds.ParseAddress(text)
	if err != nil || (a.Transport != "" && a.Transport != feeds.TransportNet) {
		return feeds.Address{}, false
	}
	a.Transport = feeds.TransportNet
	return a, true
}

// Announcement is a pub address and who announced it.
type Announcement struct {
	Address feeds.Address
	// By are the authors that announced it, sorted.
	By []feeds.FeedRef
	// Seq is the receive sequence of the latest announcement.
	Seq int64
}

// Addresses returns the addresses announced by the authors for which
// include is true (nil: every author), latest announcement first.
func (x *Index) Addresses(include func(author feeds.FeedRef) bool) []Announcement {
	byAddr := map[string]*Announcement{}
	x.mu.RLock()
	for author, m := range x.ann {
		if include != nil && !include(author) {
			continue
		}
		for s, seq := range m {
			an := byAddr[s]
			if an == nil {
				a, err := feeds.ParseAddress(s)
				if err != nil {
					continue
				}
				an = &Announcement{Address: a}
				byAddr[s] = an
			}
			an.By = append(an.By, author)
			an.Seq = max(an.Seq, seq)
		}
	}
	x.mu.RUnlock()
	out := make([]Announcement, 0, len(byAddr))
	for _, an := range byAddr {
		sort.Slice(an.By, func(i, j int) bool { return an.By[i].String() < an.By[j].String() })
		out = append(out, *an)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Seq != out[j].Seq {
			return out[i].Seq > out[j].Seq
		}
		return out[i].Address.String() < out[j].Address.String()
	})
	return out
}
