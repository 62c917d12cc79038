package store

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
)

// queryStore holds 12 records: a1 b1 a2 b2 ... a6 b6 (seq 1..12).
func queryStore(t *testing.T) (*Store, feeds.FeedRef, feeds.FeedRef) {
	s := openTest(t, t.TempDir())
	a, b := testFeed(1), testFeed(2)
	for i := int64(1); i <= 6; i++ {
		mustAppend(t, s, []Record{testMsg(a, i, ""), testMsg(b, i, "")})
	}
	return s, a, b
}

func TestLogQuery(t *testing.T) {
	s, _, _ := queryStore(t)
	tests := []struct {
		name string
		q    LogQuery
		want []int64
	}{
		{"all", LogQuery{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{"old explicit", LogQuery{Old: true}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{"gt", LogQuery{Gt: 9}, []int64{10, 11, 12}},
		{"gte", LogQuery{Gte: 9}, []int64{9, 10, 11, 12}},
		{"lt", LogQuery{Lt: 3}, []int64{1, 2}},
		{"lte", LogQuery{Lte: 3}, []int64{1, 2, 3}},
		{"gt lt", LogQuery{Gt: 4, Lt: 7}, []int64{5, 6}},
		{"gte lte", LogQuery{Gte: 4, Lte: 7}, []int64{4, 5, 6, 7}},
		{"tighter of gt and gte", LogQuery{Gt: 5, Gte: 4, Lte: 7}, []int64{6, 7}},
		{"tighter of lt and lte", LogQuery{Lt: 5, Lte: 9}, []int64{1, 2, 3, 4}},
		{"empty range", LogQuery{Gt: 5, Lt: 6}, nil},
		{"inverted range", LogQuery{Gte: 8, Lte: 3}, nil},
		{"beyond tail", LogQuery{Gt: 12}, nil},
		{"limit", LogQuery{Limit: 3}, []int64{1, 2, 3}},
		{"limit larger than result", LogQuery{Gt: 10, Limit: 5}, []int64{11, 12}},
		{"reverse", LogQuery{Reverse: true}, []int64{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{"reverse bounded limited", LogQuery{Gte: 3, Lt: 10, Reverse: true, Limit: 4}, []int64{9, 8, 7, 6}},
		{"reverse lte", LogQuery{Lte: 2, Reverse: true}, []int64{2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collect(s.Log(context.Background(), tt.q))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqsOf(got), tt.want) {
				t.Errorf("seqs = %v, want %v", seqsOf(got), tt.want)
			}
			for _, r := range got {
				at, err := s.At(r.Seq)
				if err != nil || !sameRecord(at, r, true) {
					t.Errorf("record %d differs from At: %v", r.Seq, err)
				}
			}
		})
	}
}

func TestHistoryQuery(t *testing.T) {
	s, a, b := queryStore(t)
	seqOf := func(r Record) int64 { return r.Sequence }
	tests := []struct {
		name string
		q    HistoryQuery
		want []int64 // feed sequences
	}{
		{"all of a", HistoryQuery{Author: a}, []int64{1, 2, 3, 4, 5, 6}},
		{"from 0", HistoryQuery{Author: b, From: 0}, []int64{1, 2, 3, 4, 5, 6}},
		{"from 1", HistoryQuery{Author: b, From: 1}, []int64{1, 2, 3, 4, 5, 6}},
		{"from -1", HistoryQuery{Author: b, From: -1}, []int64{1, 2, 3, 4, 5, 6}},
		{"from is inclusive", HistoryQuery{Author: a, From: 4}, []int64{4, 5, 6}},
		{"from beyond head", HistoryQuery{Author: a, From: 7}, nil},
		{"to", HistoryQuery{Author: a, To: 2}, []int64{1, 2}},
		{"from to", HistoryQuery{Author: a, From: 2, To: 4}, []int64{2, 3, 4}},
		{"limit", HistoryQuery{Author: a, From: 2, Limit: 2}, []int64{2, 3}},
		{"reverse", HistoryQuery{Author: b, Reverse: true}, []int64{6, 5, 4, 3, 2, 1}},
		{"reverse from limit", HistoryQuery{Author: b, From: 3, Reverse: true, Limit: 2}, []int64{6, 5}},
		{"unknown feed", HistoryQuery{Author: testFeed(9)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collect(s.History(context.Background(), tt.q))
			if err != nil {
				t.Fatal(err)
			}
			var seqs []int64
			for _, r := range got {
				if r.Author != tt.q.Author {
					t.Fatalf("record of %s in history of %s", r.Author, tt.q.Author)
				}
				if want := testMsg(r.Author, r.Sequence, ""); !sameRecord(r, want, true) {
					t.Errorf("record %d differs from what was appended", r.Sequence)
				}
				seqs = append(seqs, seqOf(r))
			}
			if !slices.Equal(seqs, tt.want) {
				t.Errorf("sequences = %v, want %v", seqs, tt.want)
			}
		})
	}
}

// liveResult is what a live reader goroutine saw.
type liveResult struct {
	recs []Record
	err  error
}

func startReader(seq func(func(Record, error) bool)) <-chan liveResult {
	out := make(chan liveResult, 1)
	go func() {
		var res liveResult
		for r, err := range seq {
			if err != nil {
				res.err = err
				break
			}
			res.recs = append(res.recs, r)
		}
		out <- res
	}()
	return out
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestLive(t *testing.T) {
	a, b := testFeed(1), testFeed(2)
	tests := []struct {
		name      string
		log       *LogQuery
		hist      *HistoryQuery
		cancel    bool // cancel ctx after the appends
		close     bool // close the store after the appends
		wantSeqs  []int64
		wantErr   error
		wantFinal bool // the stream ends on its own
	}{
		{name: "log old and live", log: &LogQuery{Live: true, Old: true}, cancel: true,
			wantSeqs: []int64{1, 2, 3, 4, 5, 6, 7}, wantErr: context.Canceled},
		{name: "log live only", log: &LogQuery{Live: true}, cancel: true,
			wantSeqs: []int64{4, 5, 6, 7}, wantErr: context.Canceled},
		{name: "log live with limit ends", log: &LogQuery{Live: true, Old: true, Limit: 5},
			wantSeqs: []int64{1, 2, 3, 4, 5}, wantFinal: true},
		{name: "log live upper bound ends", log: &LogQuery{Live: true, Old: true, Gt: 1, Lte: 5},
			wantSeqs: []int64{2, 3, 4, 5}, wantFinal: true},
		{name: "log live reverse", log: &LogQuery{Live: true, Old: true, Reverse: true}, cancel: true,
			wantSeqs: []int64{3, 2, 1, 4, 5, 6, 7}, wantErr: context.Canceled},
		{name: "log live ends on close", log: &LogQuery{Live: true}, close: true,
			wantSeqs: []int64{4, 5, 6, 7}, wantErr: ErrClosed},
		{name: "history old and live", hist: &HistoryQuery{Author: a, Live: true, Old: true}, cancel: true,
			wantSeqs: []int64{1, 3, 4, 6}, wantErr: context.Canceled},
		{name: "history live only", hist: &HistoryQuery{Author: b, Live: true}, cancel: true,
			wantSeqs: []int64{5, 7}, wantErr: context.Canceled},
		{name: "history from ahead of head", hist: &HistoryQuery{Author: a, From: 4, Live: true, Old: true}, cancel: true,
			wantSeqs: []int64{6}, wantErr: context.Canceled},
		{name: "history live to ends", hist: &HistoryQuery{Author: b, To: 3, Live: true, Old: true},
			wantSeqs: []int64{2, 5, 7}, wantFinal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, t.TempDir())
			// seq 1: a1, 2: b1, 3: a2 | live: 4: a3, 5: b2, 6: a4, 7: b3
			mustAppend(t, s, []Record{testMsg(a, 1, ""), testMsg(b, 1, ""), testMsg(a, 2, "")})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var res <-chan liveResult
			if tt.log != nil {
				res = startReader(s.Log(ctx, *tt.log))
			} else {
				res = startReader(s.History(ctx, *tt.hist))
			}
			time.Sleep(20 * time.Millisecond) // let the reader reach its live phase
			mustAppend(t, s, []Record{testMsg(a, 3, "")})
			mustAppend(t, s, []Record{testMsg(b, 2, ""), testMsg(a, 4, "")})
			mustAppend(t, s, []Record{testMsg(b, 3, "")})
			if tt.wantFinal {
				select {
				case r := <-res:
					res = chanOf(r)
				case <-time.After(5 * time.Second):
					t.Fatal("stream did not end by itself")
				}
			} else {
				time.Sleep(20 * time.Millisecond)
				select {
				case <-res:
					t.Fatal("live stream ended before cancel/close")
				default:
				}
			}
			if tt.cancel {
				cancel()
			}
			if tt.close {
				s.Close()
			}
			var got liveResult
			select {
			case got = <-res:
			case <-time.After(5 * time.Second):
				t.Fatal("stream did not end after cancel/close")
			}
			if !errors.Is(got.err, tt.wantErr) || (tt.wantErr == nil) != (got.err == nil) {
				t.Errorf("final error = %v, want %v", got.err, tt.wantErr)
			}
			if !slices.Equal(seqsOf(got.recs), tt.wantSeqs) {
				t.Errorf("seqs = %v, want %v", seqsOf(got.recs), tt.wantSeqs)
			}
		})
	}
}

func chanOf(r liveResult) <-chan liveResult {
	c := make(chan liveResult, 1)
	c <- r
	return c
}

func TestLiveNoGoroutineLeak(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustAppend(t, s, chain(testFeed(1), 1, 1))
	before := runtime.NumGoroutine()
	for range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		res := startReader(s.Log(ctx, LogQuery{Live: true}))
		res2 := startReader(s.History(ctx, HistoryQuery{Author: testFeed(1), Live: true}))
		cancel()
		<-res
		<-res2
	}
	waitFor(t, "reader goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

func TestBreakOutOfLoop(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustAppend(t, s, chain(testFeed(1), 1, 600))
	n := 0
	for _, err := range s.Log(context.Background(), LogQuery{Live: true, Old: true}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if n == 300 {
			break
		}
	}
	if n != 300 {
		t.Fatalf("n = %d", n)
	}
	// Close must not wait for the abandoned iterator.
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked after an abandoned iteration")
	}
}

// TestConcurrentAppendersAndReaders runs several appenders (one feed each,
// batches of varying size) against live Log and History readers.
func TestConcurrentAppendersAndReaders(t *testing.T) {
	s := openTest(t, t.TempDir())
	const writers, batches = 6, 40
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	total := 0
	for w := range writers {
		for i := range batches {
			total += 1 + (w+i)%5
		}
	}
	logRes := startReader(s.Log(ctx, LogQuery{Live: true, Old: true, Limit: total}))
	var histRes []<-chan liveResult
	for w := range writers {
		n := 0
		for i := range batches {
			n += 1 + (w+i)%5
		}
		histRes = append(histRes, startReader(s.History(ctx, HistoryQuery{Author: testFeed(w), Live: true, Old: true, Limit: n})))
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := int64(1)
			for i := range batches {
				n := int64(1 + (w+i)%5)
				if _, err := s.Append(chain(testFeed(w), next, next+n-1)); err != nil {
					errs <- err
					return
				}
				next += n
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := <-logRes
	if got.err != nil || len(got.recs) != total {
		t.Fatalf("live log: %d records, %v; want %d", len(got.recs), got.err, total)
	}
	for i, r := range got.recs {
		if r.Seq != int64(i+1) {
			t.Fatalf("live log record %d has seq %d", i, r.Seq)
		}
	}
	for w, res := range histRes {
		h := <-res
		if h.err != nil {
			t.Fatal(h.err)
		}
		for i, r := range h.recs {
			if r.Author != testFeed(w) || r.Sequence != int64(i+1) {
				t.Fatalf("history of writer %d: item %d is %d", w, i, r.Sequence)
			}
		}
	}
	if m, f := s.Count(); m != int64(total) || f != writers {
		t.Errorf("Count = %d, %d", m, f)
	}
	if err := s.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentAppendsIndependent checks that a failing call in a commit
// group does not affect the others.
func TestConcurrentAppendsIndependent(t *testing.T) {
	s := openTest(t, t.TempDir())
	const n = 32
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := int64(1)
			if i%2 == 1 {
				first = 2 // out of order: must fail alone
			}
			_, results[i] = s.Append(chain(testFeed(i), first, first+2))
		}()
	}
	wg.Wait()
	for i, err := range results {
		if (i%2 == 1) != errors.Is(err, ErrOutOfOrder) || (i%2 == 0 && err != nil) {
			t.Errorf("append %d: err = %v", i, err)
		}
	}
	if m, f := s.Count(); m != 3*n/2 || f != n/2 {
		t.Errorf("Count = %d, %d; want %d, %d", m, f, 3*n/2, n/2)
	}
	if err := s.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}
