package muxrpc

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ErrPeerNotReading is the cause of a disconnect when the peer took none of
// our bytes within Options.WriteTimeout, or let more than twice
// Options.MaxQueuedBytes pile up.
var ErrPeerNotReading = errors.New("muxrpc: peer does not read")

// writer serializes all packets of an endpoint. Senders only append to an
// in-memory queue under a short lock; a separate flush goroutine takes the
// whole queue and writes it to the connection without holding the lock, so
// packets sent in a burst (many stream items, many concurrent replies)
// leave in few large writes, a lone packet still goes out at once, and no
// sender ever waits for the network while holding the lock.
//
// The queue is bounded in bytes: data (stream items, async replies) waits
// while more than maxQueued bytes are queued. Control packets (stream ends,
// error replies, refusals) never wait, so the read loop never blocks on a
// write; if they alone pile up beyond twice the bound the peer is not
// reading and is disconnected. Each write to the connection must make
// progress within writeTimeout.
type writer struct {
	conn         io.Writer
	deadline     writeDeadliner // nil when the connection has none
	writeTimeout time.Duration
	maxQueued    int
	onErr        func(error)

	mu     sync.Mutex
	space  *sync.Cond    // broadcast when queued shrinks or err is set
	chunks []*[]byte     // packets waiting for the flusher, in pooled chunks
	queued int           // len(buf) plus what the flusher is writing
	err    error         // sticky: once set every send fails
	kick   chan struct{} // capacity 1: "buf is not empty"
	bye    bool          // goodbye queued: flush, then stop
	byeErr chan error    // the goodbye's write result
	exited chan struct{} // closed when flushLoop returns
}

type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

// writeChunk is the most bytes given to one Write of the connection: the
// write deadline is renewed per chunk, so it measures the peer's progress,
// not the size of the queue.
const writeChunk = 64 << 10

// smallChunk is the first chunk of a queue that starts with a small
// packet: most bursts (a reply, a few stream items, an event fanned out
// to a thousand connections at once) fit in it, and a thousand
// connections flushing together then hold 4 MiB of chunks, not 64.
const smallChunk = 4 << 10

// bufPool and smallPool hold queue buffers between bursts, so an idle
// connection holds none.
var (
	bufPool   = sync.Pool{New: func() any { b := make([]byte, 0, writeChunk); return &b }}
	smallPool = sync.Pool{New: func() any { b := make([]byte, 0, smallChunk); return &b }}
)

// appendLocked copies p to the end of the queue, filling pooled chunks:
// a small one first when p is small (moved into a big one if the burst
// outgrows it), then chunks of writeChunk bytes.
func (w *writer) appendLocked(p []byte) {
	for len(p) > 0 {
		if n := len(w.chunks); n > 0 && cap(*w.chunks[n-1]) == smallChunk && len(*w.chunks[n-1])+len(p) > smallChunk {
			// The burst outgrew the small chunk: move it into a big one,
			// so that up to writeChunk bytes still leave in one write.
			c := bufPool.Get().(*[]byte)
			*c = append((*c)[:0], *w.chunks[n-1]...)
			smallPool.Put(w.chunks[n-1])
			w.chunks[n-1] = c
		}
		if len(w.chunks) == 0 || len(*w.chunks[len(w.chunks)-1]) == cap(*w.chunks[len(w.chunks)-1]) {
			pool := &bufPool
			if len(w.chunks) == 0 && len(p) <= smallChunk/2 {
				pool = &smallPool
			}
			c := pool.Get().(*[]byte)
			*c = (*c)[:0]
			w.chunks = append(w.chunks, c)
		}
		last := w.chunks[len(w.chunks)-1]
		k := min(len(p), cap(*last)-len(*last))
		*last = append(*last, p[:k]...)
		p = p[k:]
	}
}

func newWriter(w io.Writer, maxQueued int, writeTimeout time.Duration, onErr func(error)) *writer {
	wr := &writer{
		conn:         w,
		writeTimeout: writeTimeout,
		maxQueued:    maxQueued,
		onErr:        onErr,
		kick:         make(chan struct{}, 1),
		byeErr:       make(chan error, 1),
		exited:       make(chan struct{}),
	}
	wr.space = sync.NewCond(&wr.mu)
	if d, ok := w.(writeDeadliner); ok && writeTimeout > 0 {
		wr.deadline = d
	}
	return wr
}

// send queues one packet. When s is not nil the packet belongs to that
// stream: it is refused once the stream's end was sent, and an end packet
// (end = true) marks it so. Checking under the writer lock guarantees that
// no data packet of a stream ever follows its end on the wire. wait makes a
// data packet wait while the queue is full; control packets pass wait =
// false and never block.
func (w *writer) send(s *stream, flag Flag, req int32, body []byte, end, wait bool) error {
	if len(body) == 0 {
		return fmt.Errorf("muxrpc: refusing to send packet req %d with empty body (reads as goodbye)", req)
	}
	return w.sendAll(s, flag, req, [][]byte{body}, end, wait)
}

// sendAll queues one packet per body, all with the same flag, under one
// lock and with one wake-up of the flusher: they leave in one write. The
// queue bound is checked once, before the first; end applies to the last.
func (w *writer) sendAll(s *stream, flag Flag, req int32, bodies [][]byte, end, wait bool) error {
	size := 0
	for _, body := range bodies {
		if len(body) == 0 {
			return fmt.Errorf("muxrpc: refusing to send packet req %d with empty body (reads as goodbye)", req)
		}
		size += HeaderSize + len(body)
	}
	if len(bodies) == 0 {
		return nil
	}
	w.mu.Lock()
	for wait && w.err == nil && w.queued >= w.maxQueued && (s == nil || !s.sentEnd.Load()) {
		w.space.Wait()
	}
	if s != nil {
		if s.sentEnd.Load() {
			w.mu.Unlock()
			return ErrStreamClosed
		}
		if end {
			s.sentEnd.Store(true)
			w.space.Broadcast() // writers of this stream stop waiting
		}
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	var hdr [HeaderSize]byte
	for _, body := range bodies {
		w.appendLocked(AppendHeader(hdr[:0], flag, uint32(len(body)), req))
		w.appendLocked(body)
	}
	w.queued += size
	var err error
	if w.queued > 2*w.maxQueued && w.queued > size {
		err = fmt.Errorf("%w: %d bytes queued for it", ErrPeerNotReading, w.queued)
		w.failLocked(err)
	}
	w.mu.Unlock()
	if err != nil {
		w.onErr(err)
		return err
	}
	signal(w.kick)
	return nil
}

func (w *writer) failLocked(err error) {
	if w.err == nil {
		w.err = err
	}
	w.space.Broadcast()
}

// flushLoop writes queued packets until done is closed or writing fails.
func (w *writer) flushLoop(done <-chan struct{}) {
	defer close(w.exited)
	for {
		select {
		case <-w.kick:
		case <-done:
			return
		}
		for {
			w.mu.Lock()
			cs := w.chunks
			w.chunks = nil
			bye := w.bye
			failed := w.err != nil && !bye
			w.mu.Unlock()
			if failed {
				recycle(cs)
				return
			}
			if len(cs) == 0 {
				break
			}
			var err error
			n := 0
			for _, c := range cs {
				n += len(*c)
				if err == nil {
					err = w.write(*c)
				}
			}
			recycle(cs)
			w.mu.Lock()
			w.queued -= n
			if err != nil {
				w.failLocked(err)
			}
			w.space.Broadcast()
			more := len(w.chunks) > 0
			w.mu.Unlock()
			if bye && !more {
				w.byeErr <- err
				return
			}
			if err != nil {
				w.onErr(err)
				return
			}
		}
	}
}

// write writes b in chunks, each within the write timeout.
func (w *writer) write(b []byte) error {
	for len(b) > 0 {
		k := min(len(b), writeChunk)
		if w.deadline != nil {
			_ = w.deadline.SetWriteDeadline(time.Now().Add(w.writeTimeout))
		}
		n, err := w.conn.Write(b[:k])
		if err != nil {
			if isTimeout(err) {
				return fmt.Errorf("%w: nothing written for %s: %w", ErrPeerNotReading, w.writeTimeout, err)
			}
			return fmt.Errorf("muxrpc: write to connection: %w", err)
		}
		b = b[n:]
	}
	return nil
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func recycle(cs []*[]byte) {
	for _, c := range cs {
		if cap(*c) == smallChunk {
			smallPool.Put(c)
		} else {
			bufPool.Put(c)
		}
	}
}

// goodbye queues the goodbye header behind what is queued, waits until the
// flusher wrote it, and makes every later send fail with errAfter.
func (w *writer) goodbye(errAfter error) error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	w.err = errAfter
	w.bye = true
	w.appendLocked(make([]byte, HeaderSize))
	w.queued += HeaderSize
	w.space.Broadcast()
	w.mu.Unlock()
	signal(w.kick)
	select {
	case err := <-w.byeErr:
		if err != nil {
			return fmt.Errorf("muxrpc: write goodbye: %w", err)
		}
		return nil
	case <-w.exited:
		return errors.New("muxrpc: goodbye not written: connection closed")
	}
}

// stop makes every later send fail with err without writing anything.
func (w *writer) stop(err error) {
	w.mu.Lock()
	w.failLocked(err)
	w.mu.Unlock()
}
