package store

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
)

const fixturePath = "../../testdata/fixtures/messages.jsonl.gz"

// openBench opens a store with the default (production) options.
func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchValues returns real message values (compact JSON, ~500 bytes) from
// the fixtures sample, or synthetic ones of the same size if absent.
func benchValues(b *testing.B) [][]byte {
	b.Helper()
	var out [][]byte
	if f, err := os.Open(fixturePath); err == nil {
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var kvt struct {
				Value json.RawMessage `json:"value"`
			}
			if err := json.Unmarshal(sc.Bytes(), &kvt); err != nil {
				b.Fatal(err)
			}
			out = append(out, kvt.Value)
		}
		if err := sc.Err(); err != nil {
			b.Fatal(err)
		}
	}
	if len(out) == 0 {
		for i := range 1000 {
			out = append(out, []byte(fmt.Sprintf(`{"n":%d,"pad":"%0480d"}`, i, i)))
		}
	}
	return out
}

// benchGen produces valid chains over nFeeds feeds with fixture values.
type benchGen struct {
	values [][]byte
	next   []int64
	n      int
}

func newBenchGen(b *testing.B, nFeeds int) *benchGen {
	return &benchGen{values: benchValues(b), next: make([]int64, nFeeds)}
}

func (g *benchGen) batch(size int) []Record {
	recs := make([]Record, size)
	for i := range recs {
		fi := g.n % len(g.next)
		g.next[fi]++
		var k [16]byte
		binary.BigEndian.PutUint64(k[:], uint64(g.n))
		recs[i] = Record{
			Key:       feeds.MessageRef(sha256.Sum256(k[:])),
			Author:    testFeed(fi),
			Sequence:  g.next[fi],
			Timestamp: 1.7e12 + float64(g.n),
			Value:     g.values[g.n%len(g.values)],
		}
		g.n++
	}
	return recs
}

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := openBench(b)
			g := newBenchGen(b, 50)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				recs := g.batch(size)
				b.StartTimer()
				if _, err := s.Append(recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkAppendParallel has many goroutines append one message each
// (their own feed), so group commit decides the throughput.
func BenchmarkAppendParallel(b *testing.B) {
	s := openBench(b)
	values := benchValues(b)
	var feedN, keyN atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		author := testFeed(int(feedN.Add(1)) + 1_000_000)
		seq := int64(0)
		for pb.Next() {
			seq++
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], uint64(keyN.Add(1)))
			r := Record{Key: feeds.MessageRef(sha256.Sum256(k[:])), Author: author, Sequence: seq,
				Timestamp: 1, Value: values[seq%int64(len(values))]}
			if _, err := s.Append([]Record{r}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// filledStore returns a store holding n fixture-valued records.
func filledStore(b *testing.B, n int) (*Store, []Record) {
	b.Helper()
	s := openBench(b)
	g := newBenchGen(b, 200)
	var all []Record
	for len(all) < n {
		recs := g.batch(1000)
		if _, err := s.Append(recs); err != nil {
			b.Fatal(err)
		}
		all = append(all, recs...)
	}
	// Settle the LSM so background compactions do not skew the figures.
	if err := s.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
		b.Fatal(err)
	}
	return s, all
}

func BenchmarkLogIterate(b *testing.B) {
	s, all := filledStore(b, 100_000)
	var bytes int64
	for _, r := range all {
		bytes += int64(len(r.Value))
	}
	b.SetBytes(bytes / int64(len(all)))
	b.ResetTimer()
	start := time.Now()
	n := 0
	for n < b.N {
		for _, err := range s.Log(context.Background(), LogQuery{Limit: b.N - n}) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
}

func BenchmarkHistory(b *testing.B) {
	s, all := filledStore(b, 100_000)
	b.ResetTimer()
	start := time.Now()
	n := 0
	for i := 0; n < b.N; i++ {
		for _, err := range s.History(context.Background(), HistoryQuery{Author: all[i%200].Author, Limit: b.N - n}) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
}

func BenchmarkGet(b *testing.B) {
	s, all := filledStore(b, 100_000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := all[(i*7919)%len(all)].Key
		if _, err := s.Get(k); err != nil {
			b.Fatal(err)
		}
	}
}
