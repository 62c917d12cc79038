package mesh

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	roomplug "github.com/cask-ssb/cask/plugins/room"
)

func newKP(t *testing.T) feeds.KeyPair {
	t.Helper()
	kp, err := feeds.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// runNode runs a node until the test ends.
func runNode(t *testing.T, o Options) *Node {
	t.Helper()
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return n
}

// echoAttendant joins id to att with a connection (over net.Pipe) whose
// far end answers tunnel.connect by echoing.
func echoAttendant(t *testing.T, att *roomplug.Attendants, id feeds.FeedRef) {
	t.Helper()
	a, b := net.Pipe()
	m := muxrpc.NewMux()
	m.RegisterDuplex(muxrpc.Method{"tunnel", "connect"}, func(ctx context.Context, _ *muxrpc.Request, in *muxrpc.Source, out *muxrpc.Sink) error {
		for {
			p, err := in.NextPacket(ctx)
			if err != nil {
				return nil
			}
			if err := out.WriteRaw(p.Flag.Type(), p.Body); err != nil {
				return nil
			}
		}
	})
	far := muxrpc.NewEndpoint(context.Background(), b, m, muxrpc.Options{})
	near := muxrpc.NewEndpoint(context.Background(), a, nil, muxrpc.Options{})
	t.Cleanup(func() { near.Close(); far.Close() })
	att.Join(id, near)
}

// TestForwardTypedFailures: a tunnel to a node that does not hold the
// target fails with ErrNotHere; over the node's limit with ErrLimit; a
// good one carries bytes both ways.
func TestForwardTypedFailures(t *testing.T) {
	room := newKP(t)
	key, _ := NewKey(nil)
	attB := roomplug.NewAttendants(0)
	b := runNode(t, Options{Listen: "127.0.0.1:0", Key: key, Identity: room, Att: attB, MaxForwarded: 1})
	attA := roomplug.NewAttendants(0)
	a := runNode(t, Options{With: []string{b.Addr()}, Key: key, Identity: room, Att: attA})
	origin, target := newKP(t).ID, newKP(t).ID
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, _, _, err := a.forwardTo(ctx, b.Addr(), origin, target); !errors.Is(err, ErrNotHere) {
		t.Fatalf("target held nowhere: %v, want ErrNotHere", err)
	}
	if _, _, _, err := a.Forward(ctx, origin, target); !errors.Is(err, ErrNotHere) {
		t.Fatalf("Forward to a target no node holds: %v, want ErrNotHere", err)
	}
	echoAttendant(t, attB, target)
	for deadline := time.Now().Add(30 * time.Second); len(attA.Holders(target)) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("node A did not learn B's attendant")
		}
	}
	src, snk, done, err := a.Forward(ctx, origin, target)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if err := snk.WriteRaw(muxrpc.FlagBinary, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if got, err := src.Next(ctx); err != nil || string(got) != "ping" {
		t.Fatalf("echo through the mesh: %q %v", got, err)
	}
	// B takes one forwarded tunnel at a time.
	if _, _, _, err := a.Forward(ctx, origin, target); !errors.Is(err, ErrLimit) {
		t.Fatalf("second tunnel over B's limit: %v, want ErrLimit", err)
	}
}
