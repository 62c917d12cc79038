package sbot_test

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cask-ssb/cask/bench/fill"
	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/ebt"
	"github.com/cask-ssb/cask/sbot"
	"github.com/cask-ssb/cask/sbot/client"
	"github.com/cask-ssb/cask/secretstream"
)

// stallNode runs an in-process daemon on repo with the given EBT stall
// timeout, listening on 127.0.0.1.
func stallNode(t *testing.T, repo, stall string) (*sbot.Node, *client.Client) {
	t.Helper()
	cfg := sbot.Defaults(repo)
	cfg.Listen = "127.0.0.1:0"
	cfg.EBTStallTimeout = stall
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

// silentEBTPeer is a fake peer that answers ebt.replicate with notes
// claiming it holds feed up to seq and will send it, and then never sends
// a message. It records the notes it is sent.
type silentEBTPeer struct {
	kp   feeds.KeyPair
	addr string
	mu   sync.Mutex
	got  []map[feeds.FeedRef]ebt.Decoded
}

func startSilentEBTPeer(t *testing.T, feed feeds.FeedRef, seq int64) *silentEBTPeer {
	t.Helper()
	kp, err := feeds.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	caps, _ := sbot.Defaults("").CapsKey()
	l := secretstream.Listen(raw, secretstream.AppKey(caps), kp.Private, nil)
	p := &silentEBTPeer{kp: kp, addr: feeds.Address{Transport: feeds.TransportNet, Host: "127.0.0.1", Port: raw.Addr().(*net.TCPAddr).Port, Key: kp.ID}.String()}
	mux := muxrpc.NewMux()
	mux.RegisterDuplex(muxrpc.Method{"ebt", "replicate"}, func(ctx context.Context, _ *muxrpc.Request, in *muxrpc.Source, out *muxrpc.Sink) error {
		notes, _ := json.Marshal(map[string]int64{feed.String(): ebt.Note(seq, false)})
		if err := out.Write(json.RawMessage(notes)); err != nil {
			return nil
		}
		for body, err := range in.All(ctx) {
			if err != nil {
				break
			}
			if ns, err := ebt.ParseNotes(body); err == nil {
				p.mu.Lock()
				p.got = append(p.got, ns)
				p.mu.Unlock()
			}
		}
		return nil
	})
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			sc := c.(*secretstream.Conn)
			e := muxrpc.NewEndpoint(ctx, sc, mux, muxrpc.Options{RemoteKey: sc.RemoteKey()})
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case <-e.Done():
				case <-ctx.Done():
					e.Close()
					<-e.Done()
				}
			}()
		}
	}()
	return p
}

// toldStop reports whether we were sent a note for feed that no longer
// asks this peer to send it, after one that did.
func (p *silentEBTPeer) toldStop(feed feeds.FeedRef) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	asked := false
	for _, ns := range p.got {
		d, ok := ns[feed]
		if !ok {
			continue
		}
		if d.Replicate && d.Receive {
			asked = true
		} else if asked && d.Replicate && !d.Receive {
			return true
		}
	}
	return false
}

// TestEBTStallMovesFeed: a peer that claims a feed in its notes, so that
// we ask it alone for the feed (partitioning), and then never sends a
// message of it, loses the feed after the stall timeout: the feed is asked
// from another connected peer that has it, which sends all of it, and the
// silent peer is told to stop.
func TestEBTStallMovesFeed(t *testing.T) {
	const msgs = 300
	keys, err := fill.Keys("stall", 1)
	if err != nil {
		t.Fatal(err)
	}
	x := keys[0].ID
	holderRepo := t.TempDir()
	if _, _, err := feeds.LoadOrCreateSecret(filepath.Join(holderRepo, "secret")); err != nil {
		t.Fatal(err)
	}
	if err := fill.Repo(context.Background(), holderRepo, fill.Options{Authors: keys, Messages: msgs, Start: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	holder, _ := stallNode(t, holderRepo, "")
	c, cc := stallNode(t, t.TempDir(), "500ms")
	followAll(t, cc, x)
	silent := startSilentEBTPeer(t, x, msgs)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := c.ConnectAddress(ctx, silent.addr); err != nil {
		t.Fatalf("connect to the silent peer: %v", err)
	}
	for {
		if from, ok := c.EBTReceivingFrom(x); ok && from == silent.kp.ID {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("we never asked the silent peer for the feed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.ConnectAddress(ctx, ebtAddr(t, holder)); err != nil {
		t.Fatalf("connect to the holder: %v", err)
	}
	ebtWaitLatest(t, c, x, msgs)
	if from, ok := c.EBTReceivingFrom(x); !ok || from != holder.ID() {
		t.Errorf("we receive %s from %s (%v), want the holder %s", x, from, ok, holder.ID())
	}
	if s := c.EBTStats().Stalls; s < 1 {
		t.Errorf("stalls counted: %d, want at least 1", s)
	}
	for !silent.toldStop(x) {
		if ctx.Err() != nil {
			t.Fatal("the silent peer was never told to stop sending the feed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, _ := c.Store().Count(); got != msgs+1 { // x's messages and our follow
		t.Errorf("we hold %d messages, want %d", got, msgs+1)
	}
	t.Logf("moved after %d stall(s)", c.EBTStats().Stalls)
}
