package muxrpc

import (
	"context"
	"io"
	"sync"
)

// queue holds the packets received for the incoming half of one stream
// until its consumer takes them. It is bounded by item count and bytes (one
// item is always admitted); push blocks while it is full, which pauses the
// endpoint's read loop and so back-pressures the whole connection.
type queue struct {
	mu       sync.Mutex
	items    []Packet
	head     int
	bytes    int
	maxItems int
	maxBytes int
	ended    bool  // no more items will come
	endErr   error // what pop returns once items are drained (io.EOF for a clean end)
	dropped  bool  // the consumer is gone: discard everything

	notEmpty chan struct{} // capacity 1: "something changed" for the consumer
	notFull  chan struct{} // capacity 1: "space freed" for the producer

	// e accounts the bytes of all queues and calls of the connection
	// (Endpoint.held, bounded by Options.MaxHeldBytes).
	e *Endpoint
}

func newQueue(maxItems, maxBytes int, e *Endpoint) *queue {
	return &queue{
		e:        e,
		maxItems: maxItems,
		maxBytes: maxBytes,
		notEmpty: make(chan struct{}, 1),
		notFull:  make(chan struct{}, 1),
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (q *queue) fullLocked(n int) bool {
	// The connection's budget: wait while other calls and queues hold
	// too much (something held is always released eventually, by a
	// consumer or a handler that returns).
	if held := q.e.held.Load(); held > 0 && held+int64(n) > int64(q.e.opts.MaxHeldBytes) {
		return true
	}
	count := len(q.items) - q.head
	if count == 0 {
		return false
	}
	return count >= q.maxItems || q.bytes+n > q.maxBytes
}

// push appends p, waiting while the queue is full. It returns false when
// done is closed first (the endpoint is shutting down).
func (q *queue) push(p Packet, done <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if q.dropped || q.ended {
			q.mu.Unlock()
			return true
		}
		if !q.fullLocked(len(p.Body)) {
			if q.head > 0 && q.head == len(q.items) {
				clear(q.items)
				q.items = q.items[:0]
				q.head = 0
			}
			q.items = append(q.items, p)
			q.bytes += len(p.Body)
			q.e.held.Add(int64(len(p.Body)))
			q.mu.Unlock()
			signal(q.notEmpty)
			return true
		}
		q.mu.Unlock()
		select {
		case <-q.notFull:
		case <-q.e.heldFreed:
		case <-done:
			return false
		}
	}
}

// finish marks the end of input: pop returns the queued items and then
// err, or io.EOF when err is nil. Only the first finish counts.
func (q *queue) finish(err error) {
	if err == nil {
		err = io.EOF
	}
	q.mu.Lock()
	if !q.ended {
		q.ended = true
		q.endErr = err
	}
	q.mu.Unlock()
	signal(q.notEmpty)
}

// drop discards queued and future items; pop returns err from now on.
func (q *queue) drop(err error) {
	q.mu.Lock()
	q.dropped = true
	clear(q.items)
	q.items = nil
	q.head = 0
	q.e.release(int64(q.bytes))
	q.bytes = 0
	if !q.ended {
		q.ended = true
		q.endErr = err
	}
	q.mu.Unlock()
	signal(q.notFull)
	signal(q.notEmpty)
}

// pop takes the next item, waiting for one.
func (q *queue) pop(ctx context.Context) (Packet, error) {
	for {
		q.mu.Lock()
		if q.head < len(q.items) {
			p := q.items[q.head]
			q.items[q.head] = Packet{}
			q.head++
			q.bytes -= len(p.Body)
			if q.head == len(q.items) {
				q.items = q.items[:0]
				q.head = 0
			} else if q.head > 64 && q.head*2 > len(q.items) {
				n := copy(q.items, q.items[q.head:])
				clear(q.items[n:])
				q.items = q.items[:n]
				q.head = 0
			}
			q.mu.Unlock()
			q.e.release(int64(len(p.Body)))
			signal(q.notFull)
			return p, nil
		}
		if q.ended {
			err := q.endErr
			q.mu.Unlock()
			return Packet{}, err
		}
		q.mu.Unlock()
		select {
		case <-q.notEmpty:
		case <-ctx.Done():
			return Packet{}, ctx.Err()
		}
	}
}
