package sbot

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/sbot/client"
)

// TestNoLeakStartStop: a daemon that starts, serves a client and stops
// leaves no goroutine behind.
func TestNoLeakStartStop(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for range 3 {
		cfg := Defaults(t.TempDir())
		cfg.Listen = "127.0.0.1:0"
		n, stop := runNode(t, cfg)
		c, err := client.DialRepo(context.Background(), cfg.Repo)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Publish(context.Background(), map[string]any{"type": "post", "text": "hi"}); err != nil {
			t.Fatal(err)
		}
		c.Close()
		_ = n
		stop()
	}
}

// TestNoLeakPeerChurn: a peer connecting and disconnecting 100 times (an
// anonymous client and a replicating daemon, in turn) leaves no goroutine
// behind once the daemons stop, and no connection registered meanwhile.
func TestNoLeakPeerChurn(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	cfgA := Defaults(t.TempDir())
	cfgA.Listen = "127.0.0.1:0"
	a, stopA := runNode(t, cfgA)
	cfgB := Defaults(t.TempDir())
	cfgB.Listen = "off"
	b, stopB := runNode(t, cfgB)
	caps, _ := Defaults("").CapsKey()
	kp, _ := feeds.GenerateKeyPair(nil)
	for i := range 100 {
		if i%2 == 0 {
			c, err := client.DialTCP(ctx, tcpAddr(t, a), kp, caps)
			if err != nil {
				t.Fatal(err)
			}
			var has bool
			if err := c.Endpoint().Async(ctx, &has, muxrpc.Method{"blobs", "has"}, "&"+strings.Repeat("A", 43)+"=.sha256"); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			c.Close()
			waitUntil(t, "A to forget the client", func() bool { return a.conns.peer(kp.ID) == nil })
			continue
		}
		if err := b.ConnectAddress(ctx, tcpAddr(t, a)); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if was, err := b.conns.Disconnect(ctx, a.ID().String(), false); err != nil || !was {
			t.Fatalf("round %d: disconnect = %v, %v", i, was, err)
		}
		waitUntil(t, "both sides to forget the connection", func() bool {
			return a.conns.peer(b.ID()) == nil && b.conns.peer(a.ID()) == nil
		})
	}
	stopB()
	stopA()
}
