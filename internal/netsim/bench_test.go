package netsim

import (
	"context"
	"flag"
	"testing"
	"time"
)

// benchHops is the honest nodes' --hops in BenchmarkNetsim100. With 2, the
// power-law graph puts nearly every feed within reach of every node (about
// a million deliveries: minutes of CPU on 2 cores).
var benchHops = flag.Int("netsim.hops", 1, "BenchmarkNetsim100: the nodes' --hops")

// config100 is the 100-node benchmark scenario of issue 15: 100 messages
// per node, power-law follows, 10% of the nodes offline at any time (a
// third of those stops are kills).
func config100(seed uint64) Config {
	return Config{
		Seed: seed, Nodes: 100, Hops: *benchHops,
		Messages: 100, PublishFor: 20 * time.Second,
		MeanFollows: 4, Alpha: 1.1, Blocks: 5,
		FaultsFor: 20 * time.Second, Offline: 0.10, OfflineSlot: 4 * time.Second,
		LatencyMin: time.Millisecond, LatencyMax: 30 * time.Millisecond, Bandwidth: 4 << 20,
		Degree: 4, DialEvery: time.Second, Rotate: 0.2,
		Deadline: 15 * time.Minute, Stall: 2 * time.Minute,
	}
}

// BenchmarkNetsim100 runs the 100-node scenario once per iteration and
// reports its figures as metrics; the table goes to the benchmark log.
func BenchmarkNetsim100(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		p := NewPlan(config100(100 + uint64(i)))
		s, err := New(p, Options{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		res, err := s.Run(context.Background())
		b.Logf("\n%s", res.Table(p.Config.Nodes))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.Converge.Seconds(), "s-converge")
		b.ReportMetric(float64(res.BytesSent)/float64(res.DeliveredB), "bytes-sent/byte-delivered")
		b.ReportMetric(float64(res.Received)/float64(max(res.Kept, 1)), "msgs-received/delivered")
		b.ReportMetric(float64(res.Net.Connections), "connections")
		b.ReportMetric(float64(res.PeakHeap)/(1<<20)/float64(p.Config.Nodes), "peak-heap-MiB/node")
	}
}
