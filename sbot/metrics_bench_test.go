package sbot_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cask-ssb/cask/bench/fill"
	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/sbot"
)

// startMetricsNode runs a daemon on repo, with the debug listener (and so
// metrics) when metrics is set, and returns its TCP address.
func startMetricsNode(b *testing.B, repo string, metrics bool) (*sbot.Node, string) {
	b.Helper()
	n, addrs := startBenchNode(b, repo, func(c *sbot.Config) {
		if metrics {
			c.DebugListen = "127.0.0.1:0"
		}
	})
	return n, listenAddr(b, addrs, "net:")
}

// BenchmarkReplicateMetrics: the cost of metrics on replication. Each op
// replicates a feed of 20,000 messages over TCP on 127.0.0.1 (EBT) twice,
// into fresh repos: once between two daemons without metrics, once
// between two with metrics (--debug-listen), in alternating order so both
// see the same machine load. Reports both rates and on/off, the ratio of
// the rates (the target: above 0.98, a cost under 2%).
//
//	go test -run '^$' -bench ReplicateMetrics -benchtime 5x ./sbot/
func BenchmarkReplicateMetrics(b *testing.B) {
	const n = 20000
	type source struct {
		feed feeds.FeedRef
		addr string
	}
	src := map[bool]source{}
	for _, metrics := range []bool{false, true} {
		dir := filepath.Join(b.TempDir(), "src")
		kp, _, err := feeds.LoadOrCreateSecret(filepath.Join(dir, "secret"))
		if err != nil {
			b.Fatal(err)
		}
		if err := fill.Repo(context.Background(), dir, fill.Options{Authors: []feeds.KeyPair{kp}, Messages: n}); err != nil {
			b.Fatal(err)
		}
		_, addr := startMetricsNode(b, dir, metrics)
		src[metrics] = source{kp.ID, addr}
	}
	took := map[bool]time.Duration{}
	replicate := func(metrics bool) {
		b.StopTimer()
		dst, _ := startMetricsNode(b, b.TempDir(), metrics)
		b.StartTimer()
		s := src[metrics]
		t0 := time.Now()
		if err := dst.ConnectAddress(context.Background(), s.addr); err != nil {
			b.Fatal(err)
		}
		for {
			seq, _, _, err := dst.Store().Latest(s.feed)
			if err != nil {
				b.Fatal(err)
			}
			if seq == n {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		took[metrics] += time.Since(t0)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		first := i%2 == 0
		replicate(first)
		replicate(!first)
	}
	off := float64(n*b.N) / took[false].Seconds()
	on := float64(n*b.N) / took[true].Seconds()
	b.ReportMetric(off, "msgs/s-off")
	b.ReportMetric(on, "msgs/s-on")
	b.ReportMetric(on/off, "on/off")
}
