package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

// model is the in-memory specification of the store.
type model struct {
	log   []Record // log[i].Seq == i+1
	byKey map[feeds.MessageRef]Record
	feeds map[feeds.FeedRef][]Record // per feed, feeds[a][i].Sequence == i+1
}

func newModel() *model {
	return &model{byKey: map[feeds.MessageRef]Record{}, feeds: map[feeds.FeedRef][]Record{}}
}

// append applies the store's rules record by record; it returns the error
// kind the store must report, or the assigned seqs.
func (m *model) append(batch []Record) ([]int64, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	inBatch := map[feeds.MessageRef]bool{}
	next := map[feeds.FeedRef]int64{}
	for _, r := range batch {
		if len(r.Value) == 0 {
			return nil, ErrInvalidRecord
		}
	}
	for _, r := range batch {
		if _, ok := m.byKey[r.Key]; ok || inBatch[r.Key] {
			return nil, ErrDuplicate
		}
		want, ok := next[r.Author]
		if !ok {
			want = int64(len(m.feeds[r.Author])) + 1
		}
		if r.Sequence != want {
			return nil, ErrOutOfOrder
		}
		next[r.Author] = want + 1
		inBatch[r.Key] = true
	}
	var seqs []int64
	for _, r := range batch {
		r.Seq = int64(len(m.log)) + 1
		m.log = append(m.log, r)
		m.byKey[r.Key] = r
		m.feeds[r.Author] = append(m.feeds[r.Author], r)
		seqs = append(seqs, r.Seq)
	}
	return seqs, nil
}

func (m *model) logQuery(q LogQuery) []Record {
	lo, hi := q.span()
	var out []Record
	for _, r := range m.log {
		if r.Seq >= lo && r.Seq <= hi {
			out = append(out, r)
		}
	}
	return reverseLimit(out, q.Reverse, q.Limit)
}

func (m *model) history(q HistoryQuery) []Record {
	var out []Record
	for _, r := range m.feeds[q.Author] {
		if r.Sequence >= q.From && (q.To <= 0 || r.Sequence <= q.To) {
			out = append(out, r)
		}
	}
	return reverseLimit(out, q.Reverse, q.Limit)
}

func reverseLimit(out []Record, reverse bool, limit int) []Record {
	if reverse {
		slices.Reverse(out)
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

func sameList(got, want []Record) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d records, want %d (got seqs %v, want %v)", len(got), len(want), seqsOf(got), seqsOf(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || !sameRecord(got[i], want[i], true) {
			return fmt.Errorf("item %d: seq %d, want seq %d (or content differs)", i, got[i].Seq, want[i].Seq)
		}
	}
	return nil
}

// TestModel drives random valid and invalid appends across many feeds, with
// reopens, and compares every kind of query with the model.
func TestModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, seed, 150) })
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	dir := t.TempDir()
	s, err := Open(dir, Options{CacheSize: 4 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	m := newModel()
	const nFeeds = 12
	authors := make([]feeds.FeedRef, nFeeds)
	for i := range authors {
		authors[i] = testFeed(100*int(seed) + i)
	}
	tag := 0
	mk := func(a feeds.FeedRef, seq int64) Record {
		tag++
		r := testMsg(a, seq, fmt.Sprintf("t%d-%s", tag, strings.Repeat("x", rng.IntN(40))))
		r.Timestamp = float64(rng.IntN(1e6)) + 0.25
		return r
	}
	ctx := context.Background()
	for step := range steps {
		// Build a batch: mostly valid chains, with occasional defects.
		var batch []Record
		next := map[feeds.FeedRef]int64{}
		for range 1 + rng.IntN(8) {
			a := authors[rng.IntN(nFeeds)]
			n, ok := next[a]
			if !ok {
				n = int64(len(m.feeds[a])) + 1
			}
			r := mk(a, n)
			switch d := rng.IntN(60); {
			case d == 0:
				r.Sequence += 1 + int64(rng.IntN(2)) // gap
			case d == 1 && n > 1:
				r.Sequence = 1 + rng.Int64N(n-1) // rewind / fork
			case d == 2 && len(m.log) > 0:
				r = m.log[rng.IntN(len(m.log))] // re-append a stored message
				r.Seq = 0
			case d == 3 && len(batch) > 0:
				r.Key = batch[rng.IntN(len(batch))].Key // duplicate key inside the batch
			case d == 4:
				r.Value = nil
			}
			next[a] = n + 1
			batch = append(batch, r)
		}
		wantSeqs, wantErr := m.append(batch)
		gotSeqs, gotErr := s.Append(batch)
		if !errors.Is(gotErr, wantErr) || (wantErr == nil) != (gotErr == nil) || !slices.Equal(gotSeqs, wantSeqs) {
			t.Fatalf("step %d: Append = %v, %v; model says %v, %v", step, gotSeqs, gotErr, wantSeqs, wantErr)
		}
		if rng.IntN(40) == 0 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(dir, Options{CacheSize: 4 << 20, MemTableSize: 1 << 20}); err != nil {
				t.Fatalf("step %d: reopen: %v", step, err)
			}
		}
		compareWithModel(t, rng, s, m, authors, step)
	}
	if err := s.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

func compareWithModel(t *testing.T, rng *rand.Rand, s *Store, m *model, authors []feeds.FeedRef, step int) {
	t.Helper()
	ctx := context.Background()
	n := int64(len(m.log))
	bound := func() int64 {
		if rng.IntN(2) == 0 {
			return 0
		}
		return rng.Int64N(n + 3)
	}
	for range 3 {
		q := LogQuery{Gt: bound(), Gte: bound(), Lt: bound(), Lte: bound(), Reverse: rng.IntN(2) == 0}
		if rng.IntN(2) == 0 {
			q.Limit = 1 + rng.IntN(10)
		}
		got, err := collect(s.Log(ctx, q))
		if err != nil {
			t.Fatalf("step %d: Log(%+v): %v", step, q, err)
		}
		if err := sameList(got, m.logQuery(q)); err != nil {
			t.Fatalf("step %d: Log(%+v): %v", step, q, err)
		}
	}
	for _, a := range authors {
		fl := int64(len(m.feeds[a]))
		q := HistoryQuery{Author: a, From: rng.Int64N(fl + 3), Reverse: rng.IntN(3) == 0}
		if rng.IntN(2) == 0 {
			q.To = rng.Int64N(fl + 3)
		}
		if rng.IntN(2) == 0 {
			q.Limit = 1 + rng.IntN(5)
		}
		got, err := collect(s.History(ctx, q))
		if err != nil {
			t.Fatalf("step %d: History: %v", step, err)
		}
		if err := sameList(got, m.history(q)); err != nil {
			t.Fatalf("step %d: History(%+v): %v", step, q, err)
		}
		seq, key, ok, err := s.Latest(a)
		if err != nil || ok != (fl > 0) || seq != fl || (fl > 0 && key != m.feeds[a][fl-1].Key) {
			t.Fatalf("step %d: Latest = %d %v %v, model has %d", step, seq, ok, err, fl)
		}
		if fl > 0 {
			want := m.feeds[a][rng.Int64N(fl)]
			got, err := s.GetBySequence(a, want.Sequence)
			if err != nil || sameList([]Record{got}, []Record{want}) != nil {
				t.Fatalf("step %d: GetBySequence: %v", step, err)
			}
		}
		if _, err := s.GetBySequence(a, fl+1); !errors.Is(err, ErrNotFound) {
			t.Fatalf("step %d: GetBySequence beyond head: %v", step, err)
		}
	}
	if n > 0 {
		want := m.log[rng.Int64N(n)]
		got, err := s.Get(want.Key)
		if err != nil || sameList([]Record{got}, []Record{want}) != nil {
			t.Fatalf("step %d: Get: %v", step, err)
		}
	}
	if _, err := s.Get(feeds.MessageRef{byte(step)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("step %d: Get(unknown): %v", step, err)
	}
	var nf int64
	for f, err := range s.Feeds() {
		if err != nil {
			t.Fatal(err)
		}
		recs := m.feeds[f.Author]
		if len(recs) == 0 || f.Sequence != int64(len(recs)) || f.Key != recs[len(recs)-1].Key || f.Seq != recs[len(recs)-1].Seq {
			t.Fatalf("step %d: Feeds yields %+v, model disagrees", step, f)
		}
		nf++
	}
	if msgs, fc := s.Count(); msgs != n || fc != nf || fc != int64(len(m.feeds)) || s.LastSeq() != n {
		t.Fatalf("step %d: Count = %d, %d; model %d, %d", step, msgs, fc, n, len(m.feeds))
	}
}
