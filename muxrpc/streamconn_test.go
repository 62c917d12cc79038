package muxrpc_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/cask-ssb/cask/muxrpc"
)

// streamConnPair returns both ends of one duplex call as StreamConns: a is
// the caller's, b the handler's. Only the exported API is used.
func streamConnPair(t *testing.T) (a, b *muxrpc.StreamConn) {
	t.Helper()
	c1, c2 := net.Pipe()
	got := make(chan *muxrpc.StreamConn, 1)
	m := muxrpc.NewMux()
	m.RegisterDuplex(muxrpc.Method{"pipe"}, func(ctx context.Context, req *muxrpc.Request, in *muxrpc.Source, out *muxrpc.Sink) error {
		sc := muxrpc.NewStreamConn(in, out, nil, nil)
		got <- sc
		select {
		case <-sc.Done():
		case <-ctx.Done():
		}
		return nil
	})
	server := muxrpc.NewEndpoint(context.Background(), c1, m, muxrpc.Options{})
	client := muxrpc.NewEndpoint(context.Background(), c2, nil, muxrpc.Options{})
	t.Cleanup(func() { client.Close(); server.Close() })
	src, snk, err := client.Duplex(context.Background(), muxrpc.Method{"pipe"})
	if err != nil {
		t.Fatal(err)
	}
	a = muxrpc.NewStreamConn(src, snk, nil, muxrpc.StreamAddr("test"))
	// The handler only runs once the request packet arrived.
	if _, err := a.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b = <-got
	var one [1]byte
	if _, err := io.ReadFull(b, one[:]); err != nil || one[0] != 'x' {
		t.Fatalf("first byte: %q %v", one, err)
	}
	return a, b
}

func TestStreamConnBytesAndEnd(t *testing.T) {
	a, b := streamConnPair(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 10_000) // > StreamConnChunk
	go func() {
		a.Write(payload)
		a.CloseWrite()
	}()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("got %d bytes, want %d", len(got), len(payload))
	}
	select {
	case <-b.Done():
		t.Fatal("Done closed while our half is still open")
	default:
	}
	// The other direction still works after a half close.
	go func() {
		b.Write([]byte("back"))
		b.CloseWrite()
	}()
	back, err := io.ReadAll(a)
	if err != nil || string(back) != "back" {
		t.Fatalf("reverse: %q %v", back, err)
	}
	select {
	case <-b.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after both halves ended")
	}
	if a.RemoteAddr().String() != "test" {
		t.Fatalf("remote addr %v", a.RemoteAddr())
	}
}

func TestStreamConnDeadlines(t *testing.T) {
	a, _ := streamConnPair(t)
	// A deadline in the past fails at once.
	a.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("past deadline: %v", err)
	}
	// A deadline set while a Read is blocked unblocks it.
	a.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 1))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	select {
	case err := <-errc:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("blocked read ended with %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("deadline did not unblock the read")
	}
	a.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := a.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("past write deadline: %v", err)
	}
	// Close unblocks a reader too.
	a.SetReadDeadline(time.Time{})
	go func() {
		_, err := a.Read(make([]byte, 1))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	a.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock the read")
	}
}
