package store

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

func testFeed(i int) feeds.FeedRef {
	return feeds.FeedRef(sha256.Sum256([]byte(fmt.Sprintf("feed-%d", i))))
}

// testMsg builds a record of author with the given feed sequence; tag makes
// forks (same author and sequence, different key) possible.
func testMsg(author feeds.FeedRef, sequence int64, tag string) Record {
	v := fmt.Sprintf(`{"previous":null,"author":"%s","sequence":%d,"timestamp":%d,"hash":"sha256","content":{"type":"post","text":"%s"}}`,
		author, sequence, 1700000000000+sequence, tag)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(sequence))
	return Record{
		Key:       feeds.MessageRef(sha256.Sum256([]byte(v))),
		Author:    author,
		Sequence:  sequence,
		Timestamp: 1700000000000.5 + float64(sequence),
		Value:     []byte(v),
	}
}

// chain returns messages from..to of author.
func chain(author feeds.FeedRef, from, to int64) []Record {
	var out []Record
	for i := from; i <= to; i++ {
		out = append(out, testMsg(author, i, ""))
	}
	return out
}

func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func mustAppend(t testing.TB, s *Store, recs []Record) []int64 {
	t.Helper()
	seqs, err := s.Append(recs)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return seqs
}

func collect(seq iter.Seq2[Record, error]) ([]Record, error) {
	var out []Record
	for r, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func seqsOf(recs []Record) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

// sameRecord compares everything except Seq and, if ts is false, Timestamp.
func sameRecord(a, b Record, ts bool) bool {
	return a.Key == b.Key && a.Author == b.Author && a.Sequence == b.Sequence &&
		string(a.Value) == string(b.Value) && (!ts || a.Timestamp == b.Timestamp)
}
