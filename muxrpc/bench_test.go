package muxrpc

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/cask-ssb/cask/secretstream"
)

// connPair returns two connected transports of the given kind: "pipe"
// (net.Pipe), "tcp" (127.0.0.1, no encryption) or "shs" (127.0.0.1 with the
// secret handshake and box stream).
func connPair(tb testing.TB, kind string) (io.ReadWriteCloser, io.ReadWriteCloser) {
	tb.Helper()
	switch kind {
	case "pipe":
		a, b := net.Pipe()
		return a, b
	case "tcp":
		return tcpConns(tb)
	case "shs":
		ca, cb := tcpConns(tb)
		_, serverKey, _ := ed25519.GenerateKey(nil)
		_, clientKey, _ := ed25519.GenerateKey(nil)
		appKey := secretstream.MainNetAppKey()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		type res struct {
			c   *secretstream.Conn
			err error
		}
		srv := make(chan res, 1)
		go func() {
			c, err := secretstream.Server(ctx, cb, appKey, serverKey, nil)
			srv <- res{c, err}
		}()
		cc, err := secretstream.Client(ctx, ca, appKey, clientKey, serverKey.Public().(ed25519.PublicKey))
		if err != nil {
			tb.Fatal(err)
		}
		r := <-srv
		if r.err != nil {
			tb.Fatal(r.err)
		}
		return cc, r.c
	default:
		tb.Fatalf("unknown transport %q", kind)
		return nil, nil
	}
}

func benchPair(b *testing.B, kind string, h Handler) (*Endpoint, *Endpoint) {
	ca, cb := connPair(b, kind)
	server := NewEndpoint(context.Background(), ca, h, Options{MaxStreams: 1024})
	client := NewEndpoint(context.Background(), cb, nil, Options{})
	b.Cleanup(func() {
		_ = client.Close()
		_ = server.Close()
	})
	return server, client
}

func BenchmarkAsync64InFlight(b *testing.B) {
	m := NewMux()
	m.RegisterAsync(Method{"whoami"}, func(ctx context.Context, req *Request) (any, error) {
		return json.RawMessage(`{"id":"@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519"}`), nil
	})
	for _, kind := range []string{"pipe", "tcp", "shs"} {
		b.Run(kind, func(b *testing.B) {
			_, client := benchPair(b, kind, m)
			ctx := context.Background()
			const inFlight = 64
			var next sync.WaitGroup
			work := make(chan struct{}, b.N)
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			errs := make(chan error, inFlight)
			for range inFlight {
				next.Add(1)
				go func() {
					defer next.Done()
					var out struct{ ID string }
					for range work {
						if err := client.Async(ctx, &out, Method{"whoami"}); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			next.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
		})
	}
}

func BenchmarkSourceItems(b *testing.B) {
	m := NewMux()
	m.RegisterSource(Method{"createHistoryStream"}, func(ctx context.Context, req *Request, out *Sink) error {
		var n int
		if err := req.Arg(0, &n); err != nil {
			return err
		}
		buf := make([]byte, 0, 128)
		for i := 1; i <= n; i++ {
			buf = fmt.Appendf(buf[:0], `{"key":"%%R7lJEkz27lNijPhYNDzYoPjM0Fp+bFWzwX0SmNJB/ZE=.sha256","seq":%d}`, i)
			if err := out.WriteRaw(FlagJSON, buf); err != nil {
				return err
			}
		}
		return nil
	})
	for _, kind := range []string{"pipe", "tcp", "shs"} {
		b.Run(kind, func(b *testing.B) {
			_, client := benchPair(b, kind, m)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			src, err := client.Source(ctx, Method{"createHistoryStream"}, b.N)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for _, err := range src.All(ctx) {
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
			elapsed := time.Since(start)
			b.StopTimer()
			if n != b.N {
				b.Fatalf("got %d items, want %d", n, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "items/s")
		})
	}
}

func BenchmarkReadPacket(b *testing.B) {
	body := []byte(`{"key":"%R7lJEkz27lNijPhYNDzYoPjM0Fp+bFWzwX0SmNJB/ZE=.sha256","seq":123}`)
	one := append(AppendHeader(nil, FlagStream|FlagJSON, uint32(len(body)), -1), body...)
	r := &repeatReader{data: one}
	br := newBufReader(r)
	buf := make([]byte, 256)
	b.SetBytes(int64(len(one)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadPacket(br, buf, 0); err != nil {
			b.Fatal(err)
		}
	}
}

type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}
