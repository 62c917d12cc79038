package sbot

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/sbot/client"
	"github.com/cask-ssb/cask/secretstream"
)

// startNodeLimits runs an in-process node on a temp repo with the given
// peer limits.
func startNodeLimits(t testing.TB, limits PeerLimits) (*Node, *client.Client) {
	t.Helper()
	cfg := Defaults(t.TempDir())
	cfg.Listen = "127.0.0.1:0"
	n, err := New(Options{Config: cfg, Limits: limits})
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

// dialAnon runs the handshake with n under a new key and returns the
// raw encrypted connection (no muxrpc endpoint: the test writes packets
// by hand and reads nothing).
// A small receive buffer (readBuf > 0) makes a peer that does not read
// fill up at once instead of after megabytes of kernel buffers.
func dialAnon(ctx context.Context, n *Node, readBuf int) (*secretstream.Conn, feeds.FeedRef, error) {
	kp, err := feeds.GenerateKeyPair(nil)
	if err != nil {
		return nil, feeds.FeedRef{}, err
	}
	caps, _ := Defaults("").CapsKey()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", n.TCPAddr())
	if err != nil {
		return nil, kp.ID, err
	}
	if readBuf > 0 {
		_ = raw.(*net.TCPConn).SetReadBuffer(readBuf)
	}
	sc, err := secretstream.Client(ctx, raw, secretstream.AppKey(caps), kp.Private, ed25519.PublicKey(n.ID().PublicKey()))
	return sc, kp.ID, err
}

func writePacket(c net.Conn, flag muxrpc.Flag, req int32, body []byte) error {
	hdr := muxrpc.AppendHeader(nil, flag, uint32(len(body)), req)
	if _, err := c.Write(hdr); err != nil {
		return err
	}
	_, err := c.Write(body)
	return err
}

// connectedPeers returns the ids of n's TCP peers.
func connectedPeers(n *Node) map[string]bool {
	out := map[string]bool{}
	for _, p := range n.Status().Peers {
		out[p.ID] = true
	}
	return out
}

// heapWatch samples the Go heap in use until stop is called and returns
// the highest sample.
func heapWatch() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

// TestHostilePeersMemoryBounded: one anonymous peer sends 4 MiB requests
// whose errors would echo them and asks for a large blob again and again,
// reading nothing; 60 peers each send 4 MiB − 1 of a packet and stall.
// The Go heap of the whole process (daemon and attackers) stays under
// 300 MB, and every one of them is disconnected by the deadlines.
func TestHostilePeersMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("moves hundreds of megabytes")
	}
	// All attackers dial from 127.0.0.1 at once: let their handshakes in.
	n, c := startNodeLimits(t, PeerLimits{PacketTimeout: time.Second, WriteTimeout: time.Second, MaxPendingPerIP: 100})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A 4 MB blob for the flooder to ask for.
	blob := make([]byte, 4_000_000)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	snk, err := c.Endpoint().Sink(ctx, muxrpc.Method{"blobs", "add"})
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(blob); off += 64 << 10 {
		if err := snk.WriteRaw(muxrpc.FlagBinary, blob[off:min(off+64<<10, len(blob))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := snk.Close(); err != nil {
		t.Fatal(err)
	}
	var blobID feeds.BlobRef
	copy(blobID[:], sha256Sum(blob))
	blob = nil

	runtime.GC()
	peak := heapWatch()
	big := strings.Repeat("A", 4<<20-200) // shared by every attacker
	var wg sync.WaitGroup
	var hostile sync.Map // feed id -> what it did
	errs := make(chan error, 100)

	// The flooder.
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc, id, err := dialAnon(ctx, n, 4<<10)
		if err != nil {
			errs <- fmt.Errorf("flooder: %w", err)
			return
		}
		defer sc.Close()
		hostile.Store(id.String(), "flooder")
		bodies := [3][]byte{}
		bodies[0], _ = json.Marshal(map[string]any{"name": []string{"blobs", "has"}, "args": []string{big}})
		bodies[1], _ = json.Marshal(map[string]any{"name": []string{big}, "args": []any{}})
		bodies[2], _ = json.Marshal(map[string]any{"name": []string{"blobs", "get"}, "type": "source", "args": []string{blobID.String()}})
		req := int32(0)
		for _, i := range []int{0, 1, 2, 2, 2, 2, 0, 1, 2, 2, 2, 2} {
			req++
			flag := muxrpc.FlagJSON
			if i == 2 {
				flag |= muxrpc.FlagStream
			}
			if err := writePacket(sc, flag, req, bodies[i]); err != nil {
				return // disconnected: what we wanted
			}
		}
	}()
	// The stallers.
	stall := make([]byte, 4<<20-2) // shared: 4 MiB - 2 of a 4 MiB - 1 body
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc, id, err := dialAnon(ctx, n, 0)
			if err != nil {
				errs <- fmt.Errorf("staller %d: %w", i, err)
				return
			}
			hostile.Store(id.String(), "staller")
			hdr := muxrpc.AppendHeader(nil, muxrpc.FlagJSON, 4<<20-1, 1)
			if _, err := sc.Write(hdr); err != nil {
				sc.Close()
				return
			}
			if _, err := sc.Write(stall); err != nil {
				sc.Close()
				return
			}
			<-ctx.Done() // stall until the test ends
			sc.Close()
		}()
	}
	// Every hostile peer must be gone within a few deadlines.
	deadline := time.Now().Add(raceScale * 30 * time.Second)
	for {
		time.Sleep(200 * time.Millisecond)
		peers := connectedPeers(n)
		var still []string
		count := 0
		hostile.Range(func(k, v any) bool {
			count++
			if peers[k.(string)] {
				still = append(still, v.(string))
			}
			return true
		})
		if count == 61 && len(still) == 0 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			wg.Wait()
			t.Fatalf("after %d s, %d of %d hostile peers are still connected: %v", raceScale*30, len(still), count, still)
		}
		select {
		case err := <-errs:
			cancel()
			wg.Wait()
			t.Fatal(err)
		default:
		}
	}
	cancel()
	wg.Wait()
	p := peak()
	t.Logf("peak Go heap in use: %d MB", p>>20)
	if p > 300<<20 {
		t.Fatalf("peak Go heap %d MB, want under 300 MB", p>>20)
	}
	// The daemon still serves.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if _, err := c.Whoami(ctx2); err != nil {
		t.Fatalf("whoami after the attack: %v", err)
	}
}

func sha256Sum(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}
