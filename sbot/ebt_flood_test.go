package sbot_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/cask-ssb/cask/sbot"
)

// smallBufferProxy forwards TCP connections from a loopback port to
// target with 4 KiB send buffers on both of its sockets and 4 KiB
// copies, so that a side that stops reading stalls the other at once
// (nothing much is buffered in between). Receive buffers keep their
// default: with 4 KiB receive windows Linux loopback TCP moves about
// 80 KB/s (the window waits for delayed acknowledgements), which would
// measure the kernel, not the daemons. It returns its address; the
// test's cleanup stops it.
func smallBufferProxy(t testing.TB, target string) string {
	t.Helper()
	const size = 4 << 10
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		open = append(open, c)
		mu.Unlock()
	}
	small := func(c net.Conn) {
		tc := c.(*net.TCPConn)
		_ = tc.SetWriteBuffer(size)
		track(c)
	}
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.CopyBuffer(dst, src, make([]byte, size))
		_ = dst.(*net.TCPConn).CloseWrite()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			small(c)
			d, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			small(d)
			wg.Add(2)
			go pipe(d, c)
			go pipe(c, d)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// TestTwoDaemonFloodBothWays: two daemons each hold a feed of 50,000
// messages and replicate both ways at once, over TCP through a proxy
// with 4 KiB send buffers and 4 KiB copies. Neither side may stall (a session that wrote notes from its
// reading loop, or held its lock across a write, could deadlock here),
// and both end with everything.
func TestTwoDaemonFloodBothWays(t *testing.T) {
	n := 50000
	if testing.Short() {
		n = 5000
	}
	repoA, authorsA := filledRepo(t, 1, n)
	repoB, authorsB := filledRepo(t, 1, n)
	a, _ := ebtNode(t, repoA)
	b, _ := ebtNode(t, repoB)
	aID, bID := authorsA[0].ID, authorsB[0].ID
	if a.ID() != aID || b.ID() != bID {
		t.Fatal("the filled feeds are not the daemons' own")
	}
	target := ebtHostPort(ebtAddr(t, a))
	proxy := smallBufferProxy(t, target)
	addr := viaProxy(a, proxy)
	t0 := time.Now()
	ctx := context.Background()
	if err := b.ConnectAddress(ctx, addr); err != nil {
		t.Fatal(err)
	}
	// No stall: progress at least every 20 s, whatever the load.
	var lastA, lastB int64
	lastMove := time.Now()
	for {
		gotA, _, _, errA := b.Store().Latest(aID)
		gotB, _, _, errB := a.Store().Latest(bID)
		if err := errors.Join(errA, errB); err != nil {
			t.Fatal(err)
		}
		if gotA == int64(n) && gotB == int64(n) {
			break
		}
		if gotA != lastA || gotB != lastB {
			lastA, lastB, lastMove = gotA, gotB, time.Now()
		}
		if time.Since(lastMove) > 20*time.Second {
			t.Fatalf("replication stalled: b holds %d of a's %d, a holds %d of b's %d, nothing moved for 20 s", gotA, n, gotB, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(t0)
	t.Logf("%d messages each way through 4 KiB buffers in %s (%.0f msgs/s in all)", n, took.Round(time.Millisecond), float64(2*n)/took.Seconds())
	// Identical copies, spot-checked.
	for _, seq := range []int64{1, int64(n / 2), int64(n)} {
		for _, f := range [...]struct {
			src, dst *sbot.Node
		}{{a, b}, {b, a}} {
			want, err := f.src.Store().GetBySequence(f.src.ID(), seq)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.dst.Store().GetBySequence(f.src.ID(), seq)
			if err != nil {
				t.Fatal(err)
			}
			if got.Key != want.Key || string(got.Value) != string(want.Value) {
				t.Fatalf("seq %d of %s differs", seq, f.src.ID())
			}
		}
	}
}
