package sbot_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/bench/fill"
	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/sbot"
)

// startBenchNode runs an in-process daemon on repo listening on 127.0.0.1
// (TCP, and whatever else mutate turns on) and returns it with its listen
// addresses; it stops with the benchmark.
func startBenchNode(b *testing.B, repo string, mutate func(*sbot.Config)) (*sbot.Node, []string) {
	b.Helper()
	cfg := sbot.Defaults(repo)
	cfg.Listen = "127.0.0.1:0"
	if mutate != nil {
		mutate(&cfg)
	}
	n, err := sbot.New(sbot.Options{Config: cfg})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- n.Serve(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			b.Errorf("serve: %v", err)
		}
	})
	<-n.Ready()
	return n, n.Listen()
}

// listenAddr returns the first of addrs with the given prefix ("net:",
// "ws://"), failing the benchmark if there is none.
func listenAddr(b *testing.B, addrs []string, prefix string) string {
	b.Helper()
	for _, l := range addrs {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	b.Fatalf("no %s listen address in %v", prefix, addrs)
	return ""
}

// startTCPNode runs a daemon on repo and returns its TCP address.
func startTCPNode(b *testing.B, repo string) (*sbot.Node, string) {
	b.Helper()
	n, addrs := startBenchNode(b, repo, nil)
	return n, listenAddr(b, addrs, "net:")
}

// BenchmarkReplicateGoToGo: an in-process daemon replicates a feed of
// 20,000 messages from another over TCP on 127.0.0.1 (EBT), into a fresh
// repo per op; reports msgs/s. For a CPU profile of both sides of
// replication: go test -run '^$' -bench ReplicateGoToGo -cpuprofile cpu.out ./sbot/
// (bench/gogo measures the same with two real processes).
func BenchmarkReplicateGoToGo(b *testing.B) {
	const n = 20000
	src := filepath.Join(b.TempDir(), "src")
	kp, _, err := feeds.LoadOrCreateSecret(filepath.Join(src, "secret"))
	if err != nil {
		b.Fatal(err)
	}
	if err := fill.Repo(context.Background(), src, fill.Options{Authors: []feeds.KeyPair{kp}, Messages: n}); err != nil {
		b.Fatal(err)
	}
	_, addr := startTCPNode(b, src)
	b.ResetTimer()
	var took time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst, _ := startTCPNode(b, b.TempDir())
		b.StartTimer()
		t0 := time.Now()
		if err := dst.ConnectAddress(context.Background(), addr); err != nil {
			b.Fatal(err)
		}
		for {
			seq, _, _, err := dst.Store().Latest(kp.ID)
			if err != nil {
				b.Fatal(err)
			}
			if seq == n {
				took += time.Since(t0)
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	b.ReportMetric(float64(n*b.N)/took.Seconds(), "msgs/s")
}
