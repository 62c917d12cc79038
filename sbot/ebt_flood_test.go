package sbot_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/sbot"
)

// floodBuffer is the socket send and receive buffer size the flood
// test's proxy asks for (SO_SNDBUF and SO_RCVBUF; Linux doubles it for its
// bookkeeping, so about this much is data). 16 KiB is far below what one
// EBT sender batch (256 messages or 256 KiB) or a muxrpc writer flush
// puts on the wire, so every batch meets a full window and back-pressure
// reaches both daemons' writers at once. 4 KiB receive windows are not
// used: below a quarter of loopback's 64 KiB segment size the receiver's
// silly-window avoidance holds every window update for a delayed
// acknowledgement, and loopback TCP then moved about 80 KB/s (17× slower
// than at 16 KiB), which measures the kernel, not the daemons.
const floodBuffer = 16 << 10

// smallBufferProxy forwards TCP connections from a loopback port to
// target with floodBuffer send and receive buffers on both of its sockets
// (set before the handshake, so the window is small from the start) and
// copies of floodBuffer bytes, so that a side that stops reading stalls
// the other at once (little is buffered in between). It returns its
// address; the test's cleanup stops it.
func smallBufferProxy(t testing.TB, target string) string {
	t.Helper()
	const size = floodBuffer
	small := func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size),
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, size))
		})
		return errors.Join(err, serr)
	}
	// Accepted sockets inherit the listener's buffer sizes.
	lc := net.ListenConfig{Control: small}
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dialer := net.Dialer{Control: small}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		open = append(open, c)
		mu.Unlock()
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
			track(c)
			d, err := dialer.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			track(d)
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

// floodSize is the flood test's messages per direction: 10,000 (1,000
// with -short), or CASK_FLOOD_N (the full size is 50,000:
// CASK_FLOOD_N=50000 go test -race -run TestTwoDaemonFloodBothWays ./sbot/).
func floodSize(t testing.TB) int {
	if v := os.Getenv("CASK_FLOOD_N"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CASK_FLOOD_N=%q: want a positive number of messages", v)
		}
		return n
	}
	if testing.Short() {
		return 1000
	}
	return 10000
}

// TestTwoDaemonFloodBothWays: two daemons each hold a feed of floodSize
// messages and replicate both ways at once, over TCP through a proxy with
// 16 KiB send and receive buffers. Neither side may stall (a session that
// wrote notes from its reading loop, or held its lock across a write,
// could deadlock here), and both end with everything.
func TestTwoDaemonFloodBothWays(t *testing.T) {
	n := floodSize(t)
	// The two feeds are signed at once (one core each).
	repoA, repoB := t.TempDir(), t.TempDir()
	var authorsA, authorsB []feeds.KeyPair
	var errA, errB error
	var fills sync.WaitGroup
	fills.Add(2)
	go func() { defer fills.Done(); authorsA, errA = fillRepo(repoA, "flood-a", 1, n) }()
	go func() { defer fills.Done(); authorsB, errB = fillRepo(repoB, "flood-b", 1, n) }()
	fills.Wait()
	if err := errors.Join(errA, errB); err != nil {
		t.Fatal(err)
	}
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
	lastMove, lastLog := time.Now(), time.Now()
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
		if time.Since(lastLog) > 30*time.Second {
			lastLog = time.Now()
			t.Logf("after %s: b holds %d of a's %d, a holds %d of b's %d", time.Since(t0).Round(time.Second), gotA, n, gotB, n)
		}
		if time.Since(lastMove) > 20*time.Second {
			t.Fatalf("replication stalled: b holds %d of a's %d, a holds %d of b's %d, nothing moved for 20 s", gotA, n, gotB, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(t0)
	t.Logf("%d messages each way through %d KiB buffers in %s (%.0f msgs/s in all)", n, floodBuffer>>10, took.Round(time.Millisecond), float64(2*n)/took.Seconds())
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
