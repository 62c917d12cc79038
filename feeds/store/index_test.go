package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

// countIndex counts records per author, persisted as <author:32> → <n:8>.
type countIndex struct {
	version uint64
	fail    func(*Record) error // Stage error injection

	mu      sync.Mutex
	counts  map[feeds.FeedRef]int64
	pending map[feeds.FeedRef]int64
	staged  int // Stage calls since open (rebuild detection)
}

func newCountIndex(version uint64) *countIndex {
	return &countIndex{version: version, counts: map[feeds.FeedRef]int64{}, pending: map[feeds.FeedRef]int64{}}
}

func (c *countIndex) Name() string    { return "count" }
func (c *countIndex) Version() uint64 { return c.version }
func (c *countIndex) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.counts)
	clear(c.pending)
}

func (c *countIndex) Load(scan func(fn func(k, v []byte) error) error) error {
	return scan(func(k, v []byte) error {
		var a feeds.FeedRef
		copy(a[:], k)
		c.mu.Lock()
		c.counts[a] = int64(binary.BigEndian.Uint64(v))
		c.mu.Unlock()
		return nil
	})
}

func (c *countIndex) Stage(w *IndexWriter, r *Record) error {
	c.staged++
	if c.fail != nil {
		if err := c.fail(r); err != nil {
			return err
		}
	}
	n, ok := c.pending[r.Author]
	if !ok {
		c.mu.Lock()
		n = c.counts[r.Author]
		c.mu.Unlock()
	}
	n++
	c.pending[r.Author] = n
	return w.Set(r.Author[:], u64(n))
}

func (c *countIndex) Commit() {
	c.mu.Lock()
	maps.Copy(c.counts, c.pending)
	c.mu.Unlock()
	clear(c.pending)
}

func (c *countIndex) Abort() { clear(c.pending) }

func (c *countIndex) snapshot() map[feeds.FeedRef]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

func openIndexed(t *testing.T, dir string, ix Indexer, log *slog.Logger) *Store {
	t.Helper()
	s, err := Open(dir, Options{CacheSize: 8 << 20, MemTableSize: 4 << 20, Indexers: []Indexer{ix}, Logger: log})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestIndexerInAppendBatch(t *testing.T) {
	dir := t.TempDir()
	a, b := testFeed(1), testFeed(2)
	ix := newCountIndex(1)
	s := openIndexed(t, dir, ix, nil)
	mustAppend(t, s, chain(a, 1, 3))
	mustAppend(t, s, chain(b, 1, 2))
	// A failing append stages nothing visible.
	if _, err := s.Append(chain(a, 5, 5)); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("out of order append: %v", err)
	}
	// A failing indexer fails the append: nothing of it is stored.
	ix.fail = func(r *Record) error {
		if r.Sequence == 5 {
			return errors.New("injected")
		}
		return nil
	}
	if _, err := s.Append(chain(a, 4, 5)); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("append with failing indexer: %v", err)
	}
	ix.fail = nil
	want := map[feeds.FeedRef]int64{a: 3, b: 2}
	if got := ix.snapshot(); !maps.Equal(got, want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
	if m, _ := s.Count(); m != 5 {
		t.Fatalf("messages = %d, want 5", m)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen with the same version: loaded, not rebuilt.
	ix2 := newCountIndex(1)
	s = openIndexed(t, dir, ix2, nil)
	if ix2.staged != 0 {
		t.Errorf("same version: %d records staged at open, want 0 (no rebuild)", ix2.staged)
	}
	if got := ix2.snapshot(); !maps.Equal(got, want) {
		t.Fatalf("loaded counts = %v, want %v", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestIndexerRebuildOnVersionChange(t *testing.T) {
	dir := t.TempDir()
	a, b := testFeed(1), testFeed(2)
	// The store is written without the index first (as an old build would).
	s := openTest(t, dir)
	mustAppend(t, s, chain(a, 1, 30))
	mustAppend(t, s, chain(b, 1, 12))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[feeds.FeedRef]int64{a: 30, b: 12}
	for _, tc := range []struct {
		name    string
		version uint64
		rebuild bool
	}{
		{"absent version: rebuild", 1, true},
		{"same version: load", 1, false},
		{"new version: rebuild", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logBuf bytes.Buffer
			ix := newCountIndex(tc.version)
			s := openIndexed(t, dir, ix, slog.New(slog.NewTextHandler(&logBuf, nil)))
			defer s.Close()
			if got := ix.snapshot(); !maps.Equal(got, want) {
				t.Errorf("counts = %v, want %v", got, want)
			}
			rebuilt := strings.Contains(logBuf.String(), "index rebuilt")
			msgs, _ := s.Count()
			if rebuilt != tc.rebuild || (int64(ix.staged) == msgs) != tc.rebuild {
				t.Errorf("rebuilt = %v (staged %d), want %v; log:\n%s", rebuilt, ix.staged, tc.rebuild, logBuf.String())
			}
			// Appends after a rebuild keep counting.
			if _, err := s.Append(chain(b, want[b]+1, want[b]+1)); err != nil {
				t.Fatal(err)
			}
			want[b]++
			if got := ix.snapshot(); !maps.Equal(got, want) {
				t.Errorf("after append: counts = %v, want %v", got, want)
			}
		})
	}
}

func TestIndexerNames(t *testing.T) {
	for _, tc := range []struct {
		names []string
		ok    bool
	}{
		{[]string{"contacts"}, true},
		{[]string{"a", "b"}, true},
		{[]string{"Bad/name"}, false},
		{[]string{""}, false},
		{[]string{"x", "x"}, false},
	} {
		var ixs []Indexer
		for _, n := range tc.names {
			ixs = append(ixs, namedIndex{newCountIndex(1), n})
		}
		s, err := Open(t.TempDir(), Options{Indexers: ixs})
		if err == nil {
			s.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("names %q: err = %v, want ok=%v", tc.names, err, tc.ok)
		}
	}
}

type namedIndex struct {
	*countIndex
	name string
}

func (n namedIndex) Name() string { return n.name }

func TestForks(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	a, p := testFeed(1), testFeed(2)
	for _, f := range []Fork{{Author: a, Sequence: 5, Peer: p, Reason: "r1"}, {Author: a, Sequence: 3, Peer: p, Reason: "r2"}, {Author: a, Sequence: 5, Peer: p, Reason: "r3"}} {
		if err := s.RecordFork(f); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for f, err := range s.Forks() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%s", f.Sequence, f.Reason))
	}
	if strings.Join(got, ",") != "3:r2,5:r3" {
		t.Fatalf("forks = %v", got)
	}
}

// TestKeysCoverSequence: without the by-key lookup, the sequence rules and
// repeats within a call are still enforced and the store verifies.
func TestKeysCoverSequence(t *testing.T) {
	s, err := Open(t.TempDir(), Options{KeysCoverSequence: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := testFeed(1)
	mustAppend(t, s, chain(a, 1, 3))
	if _, err := s.Append(chain(a, 3, 4)); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("replayed sequence: %v, want ErrOutOfOrder", err)
	}
	if _, err := s.Append(chain(a, 5, 5)); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("gap: %v, want ErrOutOfOrder", err)
	}
	r := testMsg(a, 4, "")
	if _, err := s.Append([]Record{r, r}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("repeat within a call: %v, want ErrDuplicate", err)
	}
	mustAppend(t, s, chain(a, 4, 6))
	if err := s.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}
