package sbot_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/internal/interop"
	"github.com/cask-ssb/cask/sbot"
	"github.com/cask-ssb/cask/sbot/client"
)

// wsNode runs an in-process node that accepts peers over WebSocket only.
func wsNode(t *testing.T, repo string) (*sbot.Node, *client.Client) {
	t.Helper()
	cfg := sbot.Defaults(repo)
	cfg.Listen = "off"
	cfg.WSListen = "127.0.0.1:0"
	n, err := sbot.New(sbot.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	c, err := client.DialRepo(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return n, c
}

func wsListenAddr(t *testing.T, n *sbot.Node) string {
	t.Helper()
	for _, a := range n.Listen() {
		if strings.HasPrefix(a, "ws://") {
			return a
		}
	}
	t.Fatalf("node has no ws:// address: %v", n.Listen())
	return ""
}

// TestInteropWS: EBT replication with a JS peer (secret-stack with the
// multiserver ws transport, ssb-ebt) over WebSocket, with each side
// dialling in turn: our feed reaches the JS peer and is stored there, the
// JS feed reaches us, a live message follows each way, and both sides see
// the connection as a WebSocket one.
func TestInteropWS(t *testing.T) {
	interop.Kit(t) // fails (not skips) if the kit is unusable; skips only with -short
	for _, jsDials := range []bool{false, true} {
		name := "go-dials"
		if jsDials {
			name = "js-dials"
		}
		t.Run(name, func(t *testing.T) {
			const ours, theirs = 300, 200
			n, c := wsNode(t, t.TempDir())
			ctx := context.Background()
			for i := range ours {
				if _, err := c.Publish(ctx, map[string]any{"type": "post", "text": fmt.Sprint("over ws from Go ", i)}); err != nil {
					t.Fatal(err)
				}
			}
			p := interop.StartPeer(t, "--ws-port", "0", "--replicate", n.ID().String(), "--publish", fmt.Sprint(theirs), "--progress-ms", "50")
			if !strings.HasPrefix(p.WSAddress, "ws://127.0.0.1:") {
				t.Fatalf("JS peer reports ws address %q", p.WSAddress)
			}
			if _, err := p.WaitEvent(60*time.Second, func(e interop.Event) bool { return e.Name() == "published" && e.Int("seq") >= theirs }); err != nil {
				t.Fatal(err)
			}
			js, err := feeds.ParseFeedRef(p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if jsDials {
				if err := p.Send(map[string]any{"cmd": "connect", "address": wsListenAddr(t, n)}); err != nil {
					t.Fatal(err)
				}
			} else if err := n.ConnectAddress(ctx, p.WSAddress); err != nil {
				t.Fatalf("dial %s: %v", p.WSAddress, err)
			}
			conn, err := p.WaitEvent(60*time.Second, func(e interop.Event) bool { return e.Name() == "connected" && e.String("peer") == n.ID().String() })
			if err != nil {
				t.Fatalf("JS peer saw no connection from us: %v", err)
			}
			if !strings.HasPrefix(conn.String("address"), "ws:") {
				t.Errorf("JS peer connection address %q is not a ws one", conn.String("address"))
			}
			jsHas := func(seq int64) {
				t.Helper()
				if _, err := p.WaitEvent(90*time.Second, func(e interop.Event) bool {
					return e.Name() == "progress" && e.String("feed") == n.ID().String() && e.Int("seq") >= seq
				}); err != nil {
					t.Fatalf("the JS peer did not get our message %d over ws: %v", seq, err)
				}
			}
			weHave := func(seq int64) {
				t.Helper()
				for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					got, _, _, err := n.Store().Latest(js)
					if err != nil {
						t.Fatal(err)
					}
					if got == seq {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("we hold %d of the JS feed, want %d", got, seq)
					}
				}
			}
			jsHas(ours)
			weHave(theirs)
			peers := n.Status().Peers
			if len(peers) != 1 || peers[0].Transport != "ws" || peers[0].ID != p.ID {
				t.Errorf("our peers %+v: want the JS peer over ws", peers)
			}
			// Live, both ways.
			if _, err := c.Publish(ctx, map[string]any{"type": "post", "text": "live over ws"}); err != nil {
				t.Fatal(err)
			}
			jsHas(ours + 1)
			if err := p.Send(map[string]any{"cmd": "publish", "n": 1}); err != nil {
				t.Fatal(err)
			}
			weHave(theirs + 1)
			if got, _ := n.Store().Count(); got != ours+1+theirs+1 {
				t.Errorf("our store holds %d messages, want %d", got, ours+1+theirs+1)
			}
			for _, e := range p.Events() {
				if e.Name() == "error" {
					t.Errorf("JS peer error event: %v", e)
				}
			}
		})
	}
}
