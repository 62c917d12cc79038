package sbot_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/sbot"
	"github.com/cask-ssb/cask/sbot/client"
)

// BenchmarkPeerConnect measures one anonymous peer's whole visit over
// loopback TCP: secret handshake, admission by the connection manager,
// one call answered, goodbye. The same key each time (a new connection
// replaces the previous one if the daemon has not unregistered it yet).
func BenchmarkPeerConnect(b *testing.B) {
	cfg := sbot.Defaults(b.TempDir())
	cfg.Listen = "127.0.0.1:0"
	n, err := sbot.New(sbot.Options{Config: cfg})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- n.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			b.Errorf("serve: %v", err)
		}
	}()
	<-n.Ready()
	var addr string
	for _, l := range n.Listen() {
		if strings.HasPrefix(l, "net:") {
			addr = l
		}
	}
	caps, _ := cfg.CapsKey()
	kp, _ := feeds.GenerateKeyPair(nil)
	blob := "&" + strings.Repeat("A", 43) + "=.sha256"
	b.ResetTimer()
	for b.Loop() {
		c, err := client.DialTCP(ctx, addr, kp, caps)
		if err != nil {
			b.Fatal(err)
		}
		var has bool
		if err := c.Endpoint().Async(ctx, &has, muxrpc.Method{"blobs", "has"}, blob); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
