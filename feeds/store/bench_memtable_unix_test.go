//go:build unix

package store

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// processCPU is the CPU time this process has used (every goroutine,
// Pebble's flushes and compactions included).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppendMemTable: what the memtable size costs a replication-like
// write load (one feed, 256 messages per Append, the daemon's 8 MiB
// cache). Each op appends 50,000 records into a fresh store once with 4
// MiB memtables and once with 16 MiB (the daemon's size), the order
// alternating, and reports the process CPU per message and Pebble's write
// amplification of each, plus the CPU ratio 16/4.
func BenchmarkAppendMemTable(b *testing.B) {
	const n, batch = 50_000, 256
	sizes := []uint64{4 << 20, 16 << 20}
	var cpu [2]time.Duration
	var wamp [2]float64
	values := benchValues(b)
	one := func(i int) {
		s, err := Open(b.TempDir(), Options{KeysCoverSequence: true, CacheSize: 8 << 20, MemTableSize: sizes[i]})
		if err != nil {
			b.Fatal(err)
		}
		author := testFeed(7)
		c0 := processCPU(b)
		recs := make([]Record, 0, batch)
		for seq := int64(1); seq <= n; seq++ {
			recs = append(recs, Record{
				Key: testMsg(author, seq, "").Key, Author: author, Sequence: seq,
				Timestamp: 1.7e12 + float64(seq), Value: values[seq%int64(len(values))],
			})
			if len(recs) == batch || seq == n {
				if _, err := s.Append(recs); err != nil {
					b.Fatal(err)
				}
				recs = recs[:0]
			}
		}
		tot := s.db.Metrics().Total()
		wamp[i] += tot.WriteAmp()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		cpu[i] += processCPU(b) - c0
	}
	for op := 0; b.Loop(); op++ {
		for k := range 2 {
			one((op + k) % 2)
		}
	}
	ops := float64(b.N)
	for i, sz := range sizes {
		b.ReportMetric(float64(cpu[i].Microseconds())/ops/n, fmt.Sprintf("cpu-us/msg-%dMiB", sz>>20))
		b.ReportMetric(wamp[i]/ops, fmt.Sprintf("wamp-%dMiB", sz>>20))
	}
	b.ReportMetric(float64(cpu[1])/float64(cpu[0]), "cpu-16/4")
}
