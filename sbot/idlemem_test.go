package sbot

import (
	"context"
	"crypto/ed25519"
	"runtime"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/secretstream"
)

// BenchmarkIdlePeerMemory: Go heap and stacks per idle peer connection,
// measured in-process after 300 peers connected (handshake, muxrpc, the
// daemon's replication and blob calls answered with errors) and went
// quiet. The figure counts both ends (the daemon's side and the test's
// client endpoint), so the daemon's share is at most that.
func BenchmarkIdlePeerMemory(b *testing.B) {
	const peers = 300
	for i := 0; i < b.N; i++ {
		cfg := Defaults(b.TempDir())
		cfg.Listen = "127.0.0.1:0"
		cfg.MaxConns = 2 * peers
		n, err := New(Options{Config: cfg})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Serve(ctx) }()
		for n.TCPAddr() == "" {
			time.Sleep(10 * time.Millisecond)
		}
		caps, _ := Defaults("").CapsKey()
		measure := func() uint64 {
			runtime.GC()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return ms.HeapInuse + ms.StackInuse
		}
		before := measure()
		var eps []*muxrpc.Endpoint
		for range peers {
			kp, err := feeds.GenerateKeyPair(nil)
			if err != nil {
				b.Fatal(err)
			}
			sc, err := secretstream.Dial(ctx, "tcp", n.TCPAddr(), secretstream.AppKey(caps), kp.Private, ed25519.PublicKey(n.ID().PublicKey()))
			if err != nil {
				b.Fatal(err)
			}
			eps = append(eps, muxrpc.NewEndpoint(ctx, sc, nil, muxrpc.Options{}))
		}
		// The daemon starts legacy replication 2 s after an inbound peer
		// stayed silent; let that settle.
		time.Sleep(4 * time.Second)
		after := measure()
		if got := len(n.Status().Peers); got != peers {
			b.Fatalf("%d peers connected, want %d", got, peers)
		}
		b.ReportMetric(float64(after-before)/peers, "B/peer")
		for _, e := range eps {
			e.Close()
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}
