package muxrpc

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the Writes to a connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// batchMux serves "batch" (args: batches, size): that many WriteRawAll
// calls of size items each, numbered from 0, each after a value on next
// (the reader took the previous batch: batches leave apart, as attendant
// events do); with "single" it sends the same items one WriteRaw each.
func batchMux(next <-chan struct{}) *Mux {
	m := NewMux()
	serve := func(all bool) SourceFunc {
		return func(ctx context.Context, req *Request, out *Sink) error {
			var batches, size int
			if err := req.Arg(0, &batches); err != nil {
				return err
			}
			if err := req.Arg(1, &size); err != nil {
				return err
			}
			bodies := make([][]byte, size)
			for b := range batches {
				select {
				case <-next:
				case <-ctx.Done():
					return ctx.Err()
				}
				for i := range bodies {
					bodies[i] = fmt.Appendf(bodies[i][:0], `{"type":"joined","id":"@%043d=.ed25519"}`, b*size+i)
				}
				if all {
					if err := out.WriteRawAll(FlagJSON, bodies); err != nil {
						return err
					}
					continue
				}
				for _, body := range bodies {
					if err := out.WriteRaw(FlagJSON, body); err != nil {
						return err
					}
				}
			}
			return nil
		}
	}
	m.RegisterSource(Method{"batch"}, serve(true))
	m.RegisterSource(Method{"single"}, serve(false))
	m.RegisterSource(Method{"empty"}, func(ctx context.Context, req *Request, out *Sink) error {
		return out.WriteRawAll(FlagJSON, [][]byte{[]byte(`1`), nil})
	})
	return m
}

// TestWriteRawAll: a batch arrives whole and in order, and leaves in one
// write of the connection; an empty body is refused.
func TestWriteRawAll(t *testing.T) {
	ca, cb := net.Pipe()
	counted := &countingConn{Conn: ca}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	next := make(chan struct{}, 1)
	server := NewEndpoint(ctx, counted, batchMux(next), Options{})
	client := NewEndpoint(ctx, cb, nil, Options{})
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })

	// 100 items of 71 bytes: more than the small first chunk.
	const batches, size = 5, 100
	before := counted.writes.Load()
	src, err := client.Source(ctx, Method{"batch"}, batches, size)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	next <- struct{}{}
	for body, err := range src.All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if n%size == size-1 {
			next <- struct{}{}
		}
		if want := fmt.Sprintf(`{"type":"joined","id":"@%043d=.ed25519"}`, n); string(body) != want {
			t.Fatalf("item %d: %s, want %s", n, body, want)
		}
		n++
	}
	if n != batches*size {
		t.Fatalf("%d items, want %d", n, batches*size)
	}
	// One write per batch at most, plus the stream's end.
	if w := counted.writes.Load() - before; w > batches+1 {
		t.Errorf("%d writes for %d batches", w, batches)
	}

	src, err = client.Source(ctx, Method{"empty"})
	if err != nil {
		t.Fatal(err)
	}
	for _, err = range src.All(ctx) {
	}
	if err == nil {
		t.Error("a batch with an empty body was sent")
	}
}

// BenchmarkWriteRawAll sends batches of 32 small items (room attendant
// events) over 127.0.0.1 TCP, one WriteRawAll per batch against one
// WriteRaw per item, and reports the connection writes per batch (each a
// syscall, and a wake-up of the reader) besides the time.
func BenchmarkWriteRawAll(b *testing.B) {
	const size = 32
	for _, method := range []string{"single", "batch"} {
		b.Run(method, func(b *testing.B) {
			ca, cb := tcpConns(b)
			counted := &countingConn{Conn: ca}
			next := make(chan struct{}, 1)
			server := NewEndpoint(context.Background(), counted, batchMux(next), Options{})
			client := NewEndpoint(context.Background(), cb, nil, Options{})
			b.Cleanup(func() { _ = client.Close(); _ = server.Close() })
			ctx := context.Background()
			batches := max(1, b.N/size)
			b.ResetTimer()
			src, err := client.Source(ctx, Method{method}, batches, size)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			next <- struct{}{}
			for _, err := range src.All(ctx) {
				if err != nil {
					b.Fatal(err)
				}
				n++
				if n%size == 0 {
					next <- struct{}{}
				}
			}
			b.StopTimer()
			if n != batches*size {
				b.Fatalf("%d items, want %d", n, batches*size)
			}
			b.ReportMetric(float64(counted.writes.Load())/float64(batches), "writes/batch")
		})
	}
}
