package blobs

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
)

// wantsOf makes a want map of n distinct blobs, starting at blob first.
func wantsOf(first, n int) map[string]json.Number {
	msg := map[string]json.Number{}
	for i := first; i < first+n; i++ {
		var ref feeds.BlobRef
		ref[0], ref[1], ref[2] = byte(i), byte(i>>8), byte(i>>16)
		msg[ref.String()] = "-1"
	}
	return msg
}

// TestWantBounds: wants held for peers are bounded per peer and in all,
// and expire.
func TestWantBounds(t *testing.T) {
	now := time.Unix(1700000000, 0)
	m := New(&memStore{m: map[feeds.BlobRef][]byte{}}, nil)
	m.Now = func() time.Time { return now }

	tests := []struct {
		name      string
		peers     int
		perPeer   int
		wantHeld  int
		wantPerP0 int
	}{
		{"one peer over its bound", 1, 2 * MaxPeerWants, MaxPeerWants, MaxPeerWants},
		{"many peers over the global bound", 2*MaxWants/MaxPeerWants + 1, MaxPeerWants, MaxWants, MaxPeerWants},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m.wants = map[feeds.BlobRef]*want{}
			var ps []*peer
			for i := range tc.peers {
				p := newPeer(context.Background(), nil)
				ps = append(ps, p)
				m.process(p, wantsOf(i*tc.perPeer, tc.perPeer))
			}
			if len(m.wants) != tc.wantHeld || ps[0].wants != tc.wantPerP0 {
				t.Fatalf("%d wants held (%d for the first peer), want %d (%d)", len(m.wants), ps[0].wants, tc.wantHeld, tc.wantPerP0)
			}
			// They expire: after WantTTL a sweep forgets them all.
			now = now.Add(WantTTL + sweepEvery + time.Second)
			m.process(ps[0], map[string]json.Number{})
			if len(m.wants) != 0 || ps[0].wants != 0 {
				t.Fatalf("after the TTL %d wants held (%d for the first peer), want none", len(m.wants), ps[0].wants)
			}
			// And the peer may want again.
			m.process(ps[0], wantsOf(0, 3))
			if len(m.wants) != 3 {
				t.Fatalf("after expiry the peer's new wants: %d held, want 3", len(m.wants))
			}
		})
	}
}

// TestWaitersBounded: at most MaxWaiters blobs.want calls wait; a call
// that gives up leaves nothing behind but a want that expires.
func TestWaitersBounded(t *testing.T) {
	now := time.Unix(1700000000, 0)
	var mu sync.Mutex
	m := New(&memStore{m: map[feeds.BlobRef][]byte{}}, nil)
	m.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range MaxWaiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ref feeds.BlobRef
			ref[0], ref[1] = byte(i), byte(i>>8)
			if ok, err := m.Want(ctx, ref); ok || !errors.Is(err, context.Canceled) {
				t.Errorf("want %d: %v, %v; want canceled", i, ok, err)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.mu.Lock()
		n := m.nWaiters
		m.mu.Unlock()
		if n == MaxWaiters {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiting, want %d", n, MaxWaiters)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := m.Want(context.Background(), feeds.BlobRef{0xff, 0xff}); !errors.Is(err, ErrTooManyWaiters) {
		t.Fatalf("want beyond the bound: %v, want ErrTooManyWaiters", err)
	}
	cancel()
	wg.Wait()
	m.mu.Lock()
	left, held := m.nWaiters+len(m.waiters), len(m.wants)
	m.mu.Unlock()
	if left != 0 || held != MaxWaiters {
		t.Fatalf("after the calls gave up: %d waiters left, %d wants held; want 0 and %d (until they expire)", left, held, MaxWaiters)
	}
	mu.Lock()
	now = now.Add(WantTTL + sweepEvery + time.Second)
	mu.Unlock()
	m.process(newPeer(context.Background(), nil), map[string]json.Number{feeds.BlobRef{9}.String(): "-1"})
	if len(m.wants) != 1 {
		t.Fatalf("after the TTL %d wants held, want only the new one", len(m.wants))
	}
}

// TestAnnounceNeverWaits: announcing to a peer that reads nothing returns
// at once, and what is queued for it is bounded.
func TestAnnounceNeverWaits(t *testing.T) {
	m := New(&memStore{m: map[feeds.BlobRef][]byte{}}, nil)
	p := newPeer(context.Background(), nil)
	m.peers[nil] = p
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2 * MaxWants {
			var ref feeds.BlobRef
			ref[0], ref[1], ref[2] = byte(i), byte(i>>8), byte(i>>16)
			m.announce(map[string]int64{ref.String(): 10}, nil)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("announce waited for a peer that does not read")
	}
	if len(p.pending) != MaxWants {
		t.Fatalf("%d announcements queued for the peer, want the bound %d", len(p.pending), MaxWants)
	}
}
