package muxrpc

import "sync"

// Budget bounds the bytes of packet bodies being received at once by all
// the endpoints that share it (for example every peer of a daemon): a body
// larger than the initial allocation grows only with bytes from the
// budget, and its reader waits while the budget is spent. A peer that
// stalls inside a packet holds its share until Options.PacketTimeout
// drops it. One body may always proceed when nothing else holds the
// budget. A nil *Budget is unlimited.
type Budget struct {
	mu      sync.Mutex
	max     int64
	used    int64
	changed chan struct{} // closed and replaced at every release
}

// NewBudget returns a budget of max bytes.
func NewBudget(max int64) *Budget {
	return &Budget{max: max, changed: make(chan struct{})}
}

// acquire takes n bytes, waiting until they are free or done is closed.
func (b *Budget) acquire(n int64, done <-chan struct{}) bool {
	if b == nil || n <= 0 {
		return true
	}
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.max {
			b.used += n
			b.mu.Unlock()
			return true
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-done:
			return false
		}
	}
}

// release gives n bytes back.
func (b *Budget) release(n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// Used returns the bytes taken now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
