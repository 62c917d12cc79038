package muxrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBidirectionalFloodNeverStalls: two endpoints stream large amounts to
// each other in both directions at once over loopback TCP with 4 KiB
// socket buffers, while many short streams end and unknown methods are
// refused (both answered by the read loop) in both directions. Nothing may
// stall: the read loop never waits for the network, and the writer does
// not hold its lock while it writes.
func TestBidirectionalFloodNeverStalls(t *testing.T) {
	const (
		// With 4 KiB socket buffers loopback TCP moves about 100 KB/s
		// (delayed ACKs), so the volume is modest; the flood still
		// fills every buffer on the way many times over.
		items    = 50
		itemSize = 8 << 10 // 400 KB each way
		short    = 100     // short streams each way
	)
	item := make([]byte, itemSize)
	for i := range item {
		item[i] = byte('a' + i%26)
	}
	mux := NewMux()
	mux.RegisterSource(Method{"flood"}, func(ctx context.Context, _ *Request, out *Sink) error {
		for range items {
			if err := out.WriteRaw(FlagBinary, item); err != nil {
				return err
			}
		}
		return nil
	})
	mux.RegisterSource(Method{"short"}, func(ctx context.Context, _ *Request, out *Sink) error {
		return out.Write("x")
	})
	ca, cb := tcpConns(t)
	for _, c := range []net.Conn{ca, cb} {
		tc := c.(*net.TCPConn)
		if err := tc.SetReadBuffer(4 << 10); err != nil {
			t.Fatal(err)
		}
		if err := tc.SetWriteBuffer(4 << 10); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{StreamQueueItems: 16, StreamQueueBytes: 32 << 10}
	a := NewEndpoint(context.Background(), ca, mux, opts)
	b := NewEndpoint(context.Background(), cb, mux, opts)
	defer a.Close()
	defer b.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var progress atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	for _, pair := range []struct {
		name string
		e    *Endpoint
	}{{"a", a}, {"b", b}} {
		e := pair.e
		run(pair.name+" flood", func() error {
			src, err := e.Source(ctx, Method{"flood"})
			if err != nil {
				return err
			}
			n := 0
			for {
				body, err := src.Next(ctx)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return err
				}
				if len(body) != itemSize {
					return fmt.Errorf("item %d has %d bytes", n, len(body))
				}
				n++
				progress.Add(1)
			}
			if n != items {
				return fmt.Errorf("got %d items, want %d", n, items)
			}
			return nil
		})
		run(pair.name+" short streams", func() error {
			for i := range short {
				src, err := e.Source(ctx, Method{"short"})
				if err != nil {
					return err
				}
				if _, err := src.Next(ctx); err != nil {
					return fmt.Errorf("short stream %d: %w", i, err)
				}
				if _, err := src.Next(ctx); !errors.Is(err, io.EOF) {
					return fmt.Errorf("short stream %d end: %w", i, err)
				}
				progress.Add(1)
			}
			return nil
		})
		run(pair.name+" refused calls", func() error {
			for i := range short {
				var ce *CallError
				if err := e.Async(ctx, nil, Method{"nope"}); !errors.As(err, &ce) {
					return fmt.Errorf("refused call %d: %v", i, err)
				}
				progress.Add(1)
			}
			return nil
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	last, lastChange := progress.Load(), time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			return
		case <-tick.C:
			if n := progress.Load(); n != last {
				last, lastChange = n, time.Now()
			} else if time.Since(lastChange) > 15*time.Second {
				cancel()
				t.Fatalf("stalled: no progress for 15 s after %d items/calls", n)
			}
		}
	}
}
