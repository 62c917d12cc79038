package store

import (
	"context"
	"encoding/binary"
	"testing"
)

// seqIndex writes one key per record: its seq, 8 bytes, in family 's'.
type seqIndex struct{ countIndex }

func (s *seqIndex) Name() string { return "seqs" }
func (s *seqIndex) Stage(w *IndexWriter, r *Record) error {
	k := binary.BigEndian.AppendUint64([]byte{'s'}, uint64(r.Seq))
	return w.Set(k, []byte{byte(r.Seq)})
}

func TestIndexScan(t *testing.T) {
	dir := t.TempDir()
	ix := &seqIndex{*newCountIndex(1)}
	s, err := Open(dir, Options{Indexers: []Indexer{ix}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 3*indexChunk + 7 // several chunks
	mustAppend(t, s, chain(testFeed(1), 1, n))
	key := func(seq int64) []byte { return binary.BigEndian.AppendUint64([]byte{'s'}, uint64(seq)) }
	tests := []struct {
		name     string
		r        IndexRange
		from, to int64 // expected seqs, inclusive, in order
	}{
		{"all", IndexRange{Index: "seqs"}, 1, n},
		{"all reverse", IndexRange{Index: "seqs", Reverse: true}, n, 1},
		{"range", IndexRange{Index: "seqs", Lo: key(10), Hi: key(600)}, 10, 599},
		{"range reverse", IndexRange{Index: "seqs", Lo: key(10), Hi: key(600), Reverse: true}, 599, 10},
		{"empty", IndexRange{Index: "seqs", Lo: key(5), Hi: key(5)}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int64
			for e, err := range s.IndexScan(context.Background(), tt.r) {
				if err != nil {
					t.Fatal(err)
				}
				seq := int64(binary.BigEndian.Uint64(e.Key[1:]))
				if e.Value[0] != byte(seq) {
					t.Fatalf("value %d for key %d", e.Value[0], seq)
				}
				got = append(got, seq)
			}
			var want []int64
			if tt.from <= tt.to {
				for i := tt.from; i <= tt.to; i++ {
					want = append(want, i)
				}
			} else if tt.to > 0 {
				for i := tt.from; i >= tt.to; i-- {
					want = append(want, i)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("got %d entries, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("entry %d: seq %d, want %d", i, got[i], want[i])
				}
			}
		})
	}
	v, err := s.IndexGet("seqs", key(7))
	if err != nil || v[0] != 7 {
		t.Fatalf("IndexGet: %v %v", v, err)
	}
	if _, err := s.IndexGet("seqs", key(n+1)); err == nil {
		t.Fatal("IndexGet of a missing key: no error")
	}
}
