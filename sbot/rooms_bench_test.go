package sbot_test

import (
	"context"
	"testing"
	"time"

	"github.com/cask-ssb/cask/bench/fill"
	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/sbot"
	"github.com/cask-ssb/cask/sbot/client"
)

// roomBenchNode starts an in-process daemon on repo with edit applied to
// its configuration, stopped when the benchmark ends or stop is called.
func roomBenchNode(b *testing.B, repo string, edit func(*sbot.Config)) (n *sbot.Node, c *client.Client, stop func()) {
	b.Helper()
	cfg := sbot.Defaults(repo)
	cfg.Listen = "off"
	if edit != nil {
		edit(&cfg)
	}
	n, err := sbot.New(sbot.Options{Config: cfg})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- n.Serve(ctx) }()
	select {
	case <-n.Ready():
	case err := <-served:
		cancel()
		b.Fatalf("serve: %v", err)
	}
	c, err = client.DialRepo(ctx, repo)
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		c.Close()
		cancel()
		if err := <-served; err != nil {
			b.Errorf("serve: %v", err)
		}
	}
	b.Cleanup(stop)
	return n, c, stop
}

func waitSeq(b *testing.B, n *sbot.Node, feed feeds.FeedRef, seq int64, poll time.Duration) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if got, _, _, _ := n.Store().Latest(feed); got >= seq {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s not at %d within 2 min", feed, seq)
		}
		time.Sleep(poll)
	}
}

// roomBenchMessages is the feed size BenchmarkRoomReplication copies.
const roomBenchMessages = 10_000

// BenchmarkRoomReplication: a fresh daemon B copies A's feed of 10,000
// messages over EBT, directly over TCP ("direct") and through a tunnel in
// our room ("room"). One op is one whole copy; the target is
// room/direct <= 1.10.
func BenchmarkRoomReplication(b *testing.B) {
	r := sbot.StartTestRoom(b, "open")
	keys, err := fill.Keys("roombench", 1)
	if err != nil {
		b.Fatal(err)
	}
	repoA := b.TempDir()
	if err := feeds.WriteSecret(repoA+"/secret", keys[0]); err != nil {
		b.Fatal(err)
	}
	if err := fill.Repo(context.Background(), repoA, fill.Options{Authors: keys, Messages: roomBenchMessages}); err != nil {
		b.Fatal(err)
	}
	a, _, _ := roomBenchNode(b, repoA, func(c *sbot.Config) {
		c.Listen = "127.0.0.1:0"
		c.Rooms = []string{r.Address()}
		c.TunnelAccept = sbot.TunnelAcceptAnyone
	})
	var tcp string
	for _, l := range a.Listen() {
		if len(l) > 4 && l[:4] == "net:" {
			tcp = l
		}
	}
	tunnel := feeds.Address{Key: a.ID(), Portal: r.ID(), Transport: feeds.TransportTunnel}.String()
	for _, tc := range []struct{ name, addr string }{{"direct", tcp}, {"room", tunnel}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				bn, bc, stop := roomBenchNode(b, b.TempDir(), func(c *sbot.Config) { c.Rooms = []string{r.Address()} })
				waitAttendant(b, bc, a.ID())
				b.StartTimer()
				if err := bn.ConnectAddress(context.Background(), tc.addr); err != nil {
					b.Fatal(err)
				}
				waitSeq(b, bn, a.ID(), roomBenchMessages, time.Millisecond)
				b.StopTimer()
				stop()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.N*roomBenchMessages)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// waitAttendant waits until the daemon behind c sees id in its room.
func waitAttendant(b *testing.B, c *client.Client, id feeds.FeedRef) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var rooms []struct {
			Attendants []string `json:"attendants"`
		}
		if err := c.Endpoint().Async(context.Background(), &rooms, []string{"roomClient", "rooms"}); err != nil {
			b.Fatal(err)
		}
		for _, r := range rooms {
			for _, at := range r.Attendants {
				if at == id.String() {
					return
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("%s never seen in the room", id)
}

// BenchmarkRoomFirstMessage: the time from a daemon's start (New, Serve,
// its follow of a friend published) to the first message of that friend
// replicated, when the two meet only in a room (no TCP listener on either
// side). One op is one fresh start; the figure is ms/op.
func BenchmarkRoomFirstMessage(b *testing.B) {
	r := sbot.StartTestRoom(b, "open")
	edit := func(c *sbot.Config) { c.Rooms = []string{r.Address()} }
	a, ca, _ := roomBenchNode(b, b.TempDir(), func(c *sbot.Config) { edit(c); c.TunnelAccept = sbot.TunnelAcceptAnyone })
	if _, err := ca.Publish(context.Background(), map[string]any{"type": "post", "text": "hello from a friend"}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		repo := b.TempDir()
		b.StartTimer()
		bn, bc, stop := roomBenchNode(b, repo, edit)
		if _, err := bc.Publish(context.Background(), map[string]any{"type": "contact", "contact": a.ID().String(), "following": true}); err != nil {
			b.Fatal(err)
		}
		waitSeq(b, bn, a.ID(), 1, time.Millisecond)
		b.StopTimer()
		stop()
		b.StartTimer()
	}
}
