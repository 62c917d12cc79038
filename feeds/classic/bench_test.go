package classic

import (
	"context"
	"crypto/ed25519"
	"runtime"
	"sync"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

type benchData struct {
	raw   [][]byte
	msgs  []*Message
	bytes int64
}

var (
	benchOnce sync.Once
	benchSet  benchData
)

func loadBench(b *testing.B) benchData {
	benchOnce.Do(func() {
		values, _ := loadFixtures(b)
		benchSet.raw = values
		for _, raw := range values {
			m, err := Parse(raw)
			if err != nil {
				b.Fatal(err)
			}
			benchSet.msgs = append(benchSet.msgs, m)
			benchSet.bytes += int64(len(raw))
		}
	})
	if len(benchSet.msgs) == 0 {
		b.Fatal("no fixtures")
	}
	return benchSet
}

func reportRate(b *testing.B, perOp int) {
	b.ReportMetric(float64(perOp)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// cpuMeter reports CPU microseconds per message (all threads, GC included).
type cpuMeter struct{ start float64 }

func startCPU(b *testing.B) cpuMeter {
	b.ResetTimer()
	return cpuMeter{start: processCPU()}
}

func (c cpuMeter) report(b *testing.B, perOp int) {
	if used := processCPU() - c.start; used > 0 {
		b.ReportMetric(used*1e6/float64(perOp*b.N), "cpu-µs/msg")
	}
}

// BenchmarkVerify compares raw ed25519 verification, the batch verifier and
// the whole validation pipeline on the fixtures sample (5,000 messages).
func BenchmarkVerify(b *testing.B) {
	d := loadBench(b)
	inputs := make([][]byte, len(d.msgs))
	for i, m := range d.msgs {
		inputs[i] = m.SignedBytes()
	}

	b.Run("stdlib-single-1core", func(b *testing.B) {
		cpu := startCPU(b)
		for i := 0; i < b.N; i++ {
			m := d.msgs[i%len(d.msgs)]
			if !ed25519.Verify(m.Author[:], inputs[i%len(d.msgs)], m.Signature[:]) {
				b.Fatal("bad signature")
			}
		}
		reportRate(b, 1)
		cpu.report(b, 1)
	})
	b.Run("voi-single-1core", func(b *testing.B) {
		cpu := startCPU(b)
		for i := 0; i < b.N; i++ {
			m := d.msgs[i%len(d.msgs)]
			if !voi.VerifyWithOptions(m.Author[:], inputs[i%len(d.msgs)], m.Signature[:], verifyOptions) {
				b.Fatal("bad signature")
			}
		}
		reportRate(b, 1)
		cpu.report(b, 1)
	})
	ctx := context.Background()
	b.Run("batch-1core", func(b *testing.B) {
		v := NewVerifier(nil, WithWorkers(1))
		cpu := startCPU(b)
		for i := 0; i < b.N; i++ {
			for _, ok := range v.VerifySignatures(ctx, d.msgs) {
				if !ok {
					b.Fatal("bad signature")
				}
			}
		}
		reportRate(b, len(d.msgs))
		cpu.report(b, len(d.msgs))
	})
	b.Run("batch-parallel", func(b *testing.B) {
		v := NewVerifier(nil)
		cpu := startCPU(b)
		for i := 0; i < b.N; i++ {
			for _, ok := range v.VerifySignatures(ctx, d.msgs) {
				if !ok {
					b.Fatal("bad signature")
				}
			}
		}
		reportRate(b, len(d.msgs))
		cpu.report(b, len(d.msgs))
		b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "workers")
	})
	pipeline := func(b *testing.B, opts ...VerifierOption) {
		// Raw bytes in, validated messages out: decode, canonicalise, id,
		// signature (batched), chain checks. A fresh Verifier per run, so
		// the author-key cache is rebuilt each time too.
		b.SetBytes(d.bytes)
		cpu := startCPU(b)
		for i := 0; i < b.N; i++ {
			v := NewVerifier(nil, opts...)
			states := make(map[feeds.FeedRef]*FeedState)
			_, errs := v.VerifyRaw(ctx, d.raw, states)
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		reportRate(b, len(d.raw))
		cpu.report(b, len(d.raw))
	}
	b.Run("pipeline-1core", func(b *testing.B) { pipeline(b, WithWorkers(1)) })
	b.Run("pipeline-parallel", func(b *testing.B) { pipeline(b) })
}

func BenchmarkParse(b *testing.B) {
	d := loadBench(b)
	b.SetBytes(d.bytes)
	b.ReportAllocs()
	cpu := startCPU(b)
	for i := 0; i < b.N; i++ {
		for _, raw := range d.raw {
			if _, err := Parse(raw); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportRate(b, len(d.raw))
	cpu.report(b, len(d.raw))
}

func BenchmarkDecode(b *testing.B) {
	d := loadBench(b)
	b.SetBytes(d.bytes)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		for _, raw := range d.raw {
			if _, err := Decode(raw); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkCanonical(b *testing.B) {
	d := loadBench(b)
	vals := make([]Value, len(d.raw))
	for i, raw := range d.raw {
		v, err := Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		vals[i] = v
	}
	b.SetBytes(d.bytes)
	b.ReportAllocs()
	var buf []byte
	for i := 0; i < b.N; i++ {
		for _, v := range vals {
			buf = AppendCanonical(buf[:0], v)
		}
	}
}
