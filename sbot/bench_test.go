package sbot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cask-ssb/cask/bench/fill"
	"github.com/cask-ssb/cask/sbot"
	"github.com/cask-ssb/cask/sbot/client"
)

// benchNode starts an in-process daemon on repo (unix socket only) and
// returns a client connected to it over the socket. Both are closed when
// the benchmark ends.
func benchNode(b *testing.B, repo string) (*sbot.Node, *client.Client) {
	b.Helper()
	cfg := sbot.Defaults(repo)
	cfg.Listen = "off"
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
	c, err := client.DialRepo(ctx, repo)
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-served; err != nil {
			b.Errorf("serve: %v", err)
		}
	})
	return n, c
}

// BenchmarkPublish publishes through the Go client over the unix socket
// with 1, 16 and 64 callers sharing one connection. Each publish is
// acknowledged only once durable; the writer group-commits concurrent ones.
func BenchmarkPublish(b *testing.B) {
	node, c := benchNode(b, b.TempDir())
	ctx := context.Background()
	for _, callers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			before := node.Store().LastSeq()
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			b.ResetTimer()
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						content := map[string]any{"type": "post", "text": "benchmark message", "n": i}
						if _, err := c.Publish(ctx, content); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			if got := node.Store().LastSeq() - before; got != int64(b.N) {
				b.Fatalf("store grew by %d messages, want %d", got, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// logStreamMessages is the size of the store BenchmarkLogStream reads.
const logStreamMessages = 100_000

// BenchmarkLogStream streams a whole log of 100,000 signed messages
// (1,000 feeds; about 700 bytes each) with createLogStream through the Go
// client over the unix socket; one op is the whole log.
func BenchmarkLogStream(b *testing.B) {
	repo := b.TempDir()
	authors, err := fill.Keys("logstream", 1000)
	if err != nil {
		b.Fatal(err)
	}
	if err := fill.Repo(context.Background(), repo, fill.Options{Authors: authors, Messages: logStreamMessages}); err != nil {
		b.Fatal(err)
	}
	_, c := benchNode(b, repo)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts map[string]any
	}{
		{"kvt", map[string]any{}},
		{"values", map[string]any{"keys": false}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var bytes int64
			for b.Loop() {
				count, size := 0, int64(0)
				var last json.RawMessage
				for v, err := range c.Log(ctx, tc.opts) {
					if err != nil {
						b.Fatal(err)
					}
					count++
					size += int64(len(v))
					last = v
				}
				if count != logStreamMessages {
					b.Fatalf("streamed %d messages, want %d", count, logStreamMessages)
				}
				if !json.Valid(last) {
					b.Fatalf("last item is not JSON: %.100q", last)
				}
				bytes = size
			}
			b.SetBytes(bytes)
			b.ReportMetric(float64(b.N*logStreamMessages)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
