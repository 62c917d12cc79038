package sbot

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/sbot/client"
	"github.com/cask-ssb/cask/secretstream"
)

// startNode runs an in-process node on a temp repo.
func startNode(t *testing.T) (*Node, *client.Client) {
	t.Helper()
	cfg := Defaults(t.TempDir())
	cfg.Listen = "127.0.0.1:0"
	n, err := New(Options{Config: cfg})
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
	var c *client.Client
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err = client.DialRepo(context.Background(), cfg.Repo)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { c.Close() })
	return n, c
}

// feedOf makes n signed messages of a new feed.
func feedOf(t *testing.T, n int) (feeds.KeyPair, []*classic.Message) {
	t.Helper()
	kp, err := feeds.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*classic.Message
	var state *classic.FeedState
	for i := 1; i <= n; i++ {
		m, err := classic.Create(kp.Private, state, float64(1700000000000+i), classic.RawJSON(fmt.Sprintf(`{"type":"post","text":"msg %d"}`, i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		s := classic.StateAfter(m)
		state = &s
		msgs = append(msgs, m)
	}
	return kp, msgs
}

func TestAdd(t *testing.T) {
	n, c := startNode(t)
	kp, msgs := feedOf(t, 4)
	ctx := context.Background()
	add := func(v json.RawMessage) error {
		var out json.RawMessage
		return c.Endpoint().Async(ctx, &out, muxrpc.Method{"add"}, v)
	}
	if err := add(msgs[0].Compact); err != nil {
		t.Fatalf("add first: %v", err)
	}
	// As a KVT record too.
	kvt := fmt.Sprintf(`{"key":%q,"value":%s,"timestamp":1}`, msgs[1].Key.String(), msgs[1].Compact)
	if err := add(json.RawMessage(kvt)); err != nil {
		t.Fatalf("add KVT: %v", err)
	}
	bad := strings.Replace(string(msgs[2].Compact), "msg 3", "msg X", 1)
	// Another message 2 of the same feed, validly signed: a fork.
	st1 := classic.StateAfter(msgs[0])
	fork, err := classic.Create(kp.Private, &st1, 1700000000002, classic.RawJSON(`{"type":"post","text":"forked"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		msg  string
		want string
	}{
		{"signature", bad, "signature"},
		{"gap", string(msgs[3].Compact), "sequence"},
		{"duplicate", string(msgs[1].Compact), "already stored"},
		{"fork", string(fork.Compact), "fork"},
		{"wrong key", fmt.Sprintf(`{"key":%q,"value":%s}`, msgs[0].Key.String(), msgs[2].Compact), "does not match"},
		{"garbage", `{"hello":1}`, "invalid message"},
	}
	for _, tc := range tests {
		err := add(json.RawMessage(tc.msg))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	if seq, _, _, _ := n.Store().Latest(msgs[0].Author); seq != 2 {
		t.Fatalf("latest = %d after 2 valid adds", seq)
	}
	if err := add(msgs[2].Compact); err != nil {
		t.Fatalf("add third: %v", err)
	}
}

// fakePeer serves createHistoryStream of its own feed over SHS: the
// messages it is given, whatever they are.
func fakePeer(t *testing.T, kp feeds.KeyPair, items []json.RawMessage) (addr string, closed chan struct{}) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	caps, _ := Defaults("").CapsKey()
	l := secretstream.Listen(raw, secretstream.AppKey(caps), kp.Private, nil)
	t.Cleanup(func() { l.Close() })
	closed = make(chan struct{})
	mux := muxrpc.NewMux()
	mux.RegisterSource(muxrpc.Method{"createHistoryStream"}, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		for _, it := range items {
			if err := out.Write(it); err != nil {
				return nil
			}
		}
		<-ctx.Done() // live: keep the stream open
		return nil
	})
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		sc := c.(*secretstream.Conn)
		e := muxrpc.NewEndpoint(context.Background(), sc, mux, muxrpc.Options{RemoteKey: sc.RemoteKey()})
		<-e.Done()
		close(closed)
	}()
	return raw.Addr().String(), closed
}

// TestInvalidPeerDropped: a peer that sends an invalid message is
// disconnected, and the valid messages it sent before are kept.
func TestInvalidPeerDropped(t *testing.T) {
	n, _ := startNode(t)
	kp, msgs := feedOf(t, 5)
	items := []json.RawMessage{msgs[0].Compact, msgs[1].Compact, msgs[2].Compact,
		json.RawMessage(strings.Replace(string(msgs[3].Compact), "msg 4", "msg 4!", 1)), msgs[4].Compact}
	addr, closed := fakePeer(t, kp, items)
	if err := n.Connect(context.Background(), addr, ed25519.PublicKey(kp.ID[:])); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("the peer that sent an invalid message was not disconnected")
	}
	seq, key, ok, err := n.Store().Latest(kp.ID)
	if err != nil || !ok || seq != 3 || key != msgs[2].Key {
		t.Fatalf("latest = %d %v %v %v, want the 3 valid messages kept", seq, key, ok, err)
	}
}

// TestReplicatesPeerFeed: the valid feed of a connected peer is stored.
func TestReplicatesPeerFeed(t *testing.T) {
	n, _ := startNode(t)
	kp, msgs := feedOf(t, 20)
	var items []json.RawMessage
	for _, m := range msgs {
		items = append(items, m.Compact)
	}
	addr, _ := fakePeer(t, kp, items)
	if err := n.Connect(context.Background(), addr, ed25519.PublicKey(kp.ID[:])); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		seq, _, _, _ := n.Store().Latest(kp.ID)
		if seq == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicated %d of 20", seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := n.Status(); len(st.Peers) != 1 || st.Peers[0].ID != kp.ID.String() || st.Peers[0].Direction != "out" {
		t.Fatalf("status peers = %+v", st.Peers)
	}
}
