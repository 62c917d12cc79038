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

// BenchmarkReplicateWSvsTCP: an in-process daemon replicates a feed of
// 20,000 messages (EBT) from another on 127.0.0.1, into a fresh repo, once
// over TCP and once over WebSocket per op, alternating which goes first;
// reports both rates and ws/tcp, the ratio the target is about
// (at least 0.90).
func BenchmarkReplicateWSvsTCP(b *testing.B) {
	const n = 20000
	src := filepath.Join(b.TempDir(), "src")
	kp, _, err := feeds.LoadOrCreateSecret(filepath.Join(src, "secret"))
	if err != nil {
		b.Fatal(err)
	}
	if err := fill.Repo(context.Background(), src, fill.Options{Authors: []feeds.KeyPair{kp}, Messages: n}); err != nil {
		b.Fatal(err)
	}
	_, addrs := startBenchNode(b, src, func(c *sbot.Config) { c.WSListen = "127.0.0.1:0" })
	tcpAddr, wsAddr := listenAddr(b, addrs, "net:"), listenAddr(b, addrs, "ws://")
	replicate := func(addr string) time.Duration {
		dst, _ := startTCPNode(b, b.TempDir())
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
				return time.Since(t0)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	b.ResetTimer()
	var tcp, ws time.Duration
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			tcp += replicate(tcpAddr)
			ws += replicate(wsAddr)
		} else {
			ws += replicate(wsAddr)
			tcp += replicate(tcpAddr)
		}
	}
	b.ReportMetric(float64(n*b.N)/tcp.Seconds(), "tcp-msgs/s")
	b.ReportMetric(float64(n*b.N)/ws.Seconds(), "ws-msgs/s")
	b.ReportMetric(tcp.Seconds()/ws.Seconds(), "ws/tcp")
}
