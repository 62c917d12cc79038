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

// startWSTCPNode runs an in-process daemon on repo listening on 127.0.0.1
// over TCP and WebSocket and returns it with both multiserver addresses.
func startWSTCPNode(b *testing.B, repo string) (n *sbot.Node, tcp, ws string) {
	b.Helper()
	cfg := sbot.Defaults(repo)
	cfg.Listen = "127.0.0.1:0"
	cfg.WSListen = "127.0.0.1:0"
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
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		tcp, ws = "", ""
		for _, l := range n.Status().Listen {
			switch {
			case strings.HasPrefix(l, "net:"):
				tcp = l
			case strings.HasPrefix(l, "ws://"):
				ws = l
			}
		}
		if tcp != "" && ws != "" {
			return n, tcp, ws
		}
	}
	b.Fatal("no TCP and WebSocket listen addresses")
	return nil, "", ""
}

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
	_, tcpAddr, wsAddr := startWSTCPNode(b, src)
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
