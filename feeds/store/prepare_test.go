package store

import (
	"sync"
	"testing"
)

// prepIndex is a countIndex that is also a Preparer: it records the
// receive sequences it was handed, and checks that every record is
// prepared before it is staged, once, in log order.
type prepIndex struct {
	*countIndex
	t *testing.T

	mu       sync.Mutex
	prepared []int64 // every seq Prepare got, in order
	chunks   int
	stagedOK int // records staged after their Prepare
}

func (p *prepIndex) Prepare(recs []Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.chunks++
	for _, r := range recs {
		p.prepared = append(p.prepared, r.Seq)
	}
}

func (p *prepIndex) Stage(w *IndexWriter, r *Record) error {
	p.mu.Lock()
	seen := false
	for _, s := range p.prepared {
		seen = seen || s == r.Seq
	}
	if seen {
		p.stagedOK++
	}
	p.mu.Unlock()
	return p.countIndex.Stage(w, r)
}

// TestRebuildPreparesChunks: a rebuild hands every record to a Preparer
// once, in log order and in chunks, before staging it; the index it
// builds is the same as without Prepare; appends after it are staged
// without Prepare.
func TestRebuildPreparesChunks(t *testing.T) {
	dir := t.TempDir()
	a, b := testFeed(1), testFeed(2)
	s := openTest(t, dir)
	n := int64(prepareChunk*2 + 17)
	mustAppend(t, s, chain(a, 1, n-40))
	mustAppend(t, s, chain(b, 1, 40))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	p := &prepIndex{countIndex: newCountIndex(1), t: t}
	s = openIndexed(t, dir, p, nil)
	defer s.Close()
	if p.chunks != 3 || len(p.prepared) != int(n) {
		t.Fatalf("%d chunks, %d records prepared; want 3 chunks, %d records", p.chunks, len(p.prepared), n)
	}
	for i, seq := range p.prepared {
		if seq != int64(i+1) {
			t.Fatalf("prepared[%d] = seq %d, want %d", i, seq, i+1)
		}
	}
	if p.stagedOK != int(n) {
		t.Fatalf("%d of %d records staged after their Prepare", p.stagedOK, n)
	}
	if got := p.snapshot(); got[a] != n-40 || got[b] != 40 {
		t.Fatalf("counts %v", got)
	}
	if _, err := s.Append(chain(b, 41, 41)); err != nil {
		t.Fatal(err)
	}
	if len(p.prepared) != int(n) || p.snapshot()[b] != 41 {
		t.Fatalf("after an append: %d prepared, count %d", len(p.prepared), p.snapshot()[b])
	}
}
