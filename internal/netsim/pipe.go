package netsim

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// chunk is bytes in flight, readable from at on.
type chunk struct {
	b  []byte
	at time.Time
}

// stream is one direction of a connection: a bounded queue of chunks,
// each readable once the link's latency (and the time its bytes take at
// the link's bandwidth) has passed.
type stream struct {
	link Link

	mu     sync.Mutex
	chunks []chunk
	queued int
	free   time.Time // when the link is free to start sending again
	eof    bool      // the writer closed: EOF once drained
	broken bool      // reset: errors at once, nothing more delivered
	wake   chan struct{}
}

func newStream(link Link) *stream { return &stream{link: link, wake: make(chan struct{})} }

// signalLocked wakes every waiter.
func (s *stream) signalLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// deadline is a settable deadline with a channel that wakes waiters when
// it changes.
type deadline struct {
	mu   sync.Mutex
	t    time.Time
	wake chan struct{}
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	d.t = t
	if d.wake != nil {
		close(d.wake)
	}
	d.wake = make(chan struct{})
	d.mu.Unlock()
}

func (d *deadline) get() (time.Time, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.wake == nil {
		d.wake = make(chan struct{})
	}
	return d.t, d.wake
}

// wait blocks until wake is closed, until is reached (if not zero), the
// deadline passes or changes. It reports false when the deadline passed.
func wait(wake <-chan struct{}, until time.Time, dl *deadline) bool {
	t, changed := dl.get()
	now := time.Now()
	if !t.IsZero() && !now.Before(t) {
		return false
	}
	var timer <-chan time.Time
	var d time.Duration = -1
	if !until.IsZero() {
		d = until.Sub(now)
	}
	if !t.IsZero() && (d < 0 || t.Sub(now) < d) {
		d = t.Sub(now)
	}
	if d >= 0 {
		tm := time.NewTimer(d)
		defer tm.Stop()
		timer = tm.C
	}
	select {
	case <-wake:
	case <-changed:
	case <-timer:
	}
	return true
}

func (s *stream) read(p []byte, dl *deadline) (int, error) {
	for {
		s.mu.Lock()
		if s.broken {
			s.mu.Unlock()
			return 0, ErrReset
		}
		var until time.Time
		if len(s.chunks) > 0 {
			c := &s.chunks[0]
			if !time.Now().Before(c.at) {
				n := copy(p, c.b)
				c.b = c.b[n:]
				s.queued -= n
				if len(c.b) == 0 {
					s.chunks[0] = chunk{}
					s.chunks = s.chunks[1:]
				}
				s.signalLocked() // room for the writer
				s.mu.Unlock()
				return n, nil
			}
			until = c.at
		} else if s.eof {
			s.mu.Unlock()
			return 0, io.EOF
		}
		wake := s.wake
		s.mu.Unlock()
		if !wait(wake, until, dl) {
			return 0, os.ErrDeadlineExceeded
		}
	}
}

func (s *stream) write(p []byte, dl *deadline, sent func(int)) (int, error) {
	total := 0
	for len(p) > 0 {
		s.mu.Lock()
		if s.broken {
			s.mu.Unlock()
			return total, ErrReset
		}
		if s.eof {
			s.mu.Unlock()
			return total, net.ErrClosed
		}
		room := window - s.queued
		if room <= 0 {
			wake := s.wake
			s.mu.Unlock()
			if !wait(wake, time.Time{}, dl) {
				return total, os.ErrDeadlineExceeded
			}
			continue
		}
		n := min(room, len(p))
		now := time.Now()
		start := now
		if s.free.After(start) {
			start = s.free
		}
		if s.link.Bandwidth > 0 {
			s.free = start.Add(time.Duration(int64(n) * int64(time.Second) / s.link.Bandwidth))
		} else {
			s.free = start
		}
		s.chunks = append(s.chunks, chunk{b: append([]byte(nil), p[:n]...), at: s.free.Add(s.link.Latency)})
		s.queued += n
		s.signalLocked()
		s.mu.Unlock()
		sent(n)
		p = p[n:]
		total += n
	}
	return total, nil
}

func (s *stream) close(broken bool) {
	s.mu.Lock()
	if broken {
		s.broken = true
		s.chunks = nil
		s.queued = 0
	} else {
		s.eof = true
	}
	s.signalLocked()
	s.mu.Unlock()
}

// pipeConn is one end of a simulated connection.
type pipeConn struct {
	nw            *Network
	local, remote simAddr
	host          string // local host
	in, out       *stream
	rd, wd        deadline
	once          sync.Once
	peer          *pipeConn
}

func newPipe(nw *Network, link Link, a, b simAddr) (*pipeConn, *pipeConn) {
	ab, ba := newStream(link), newStream(link)
	x := &pipeConn{nw: nw, local: a, remote: b, host: a.host(), in: ba, out: ab}
	y := &pipeConn{nw: nw, local: b, remote: a, host: b.host(), in: ab, out: ba}
	x.peer, y.peer = y, x
	return x, y
}

func (c *pipeConn) Read(p []byte) (int, error) { return c.in.read(p, &c.rd) }

func (c *pipeConn) Write(p []byte) (int, error) {
	return c.out.write(p, &c.wd, func(n int) { c.nw.countSent(c.host, n) })
}

// Close is an orderly close: the peer reads what was sent, then EOF.
func (c *pipeConn) Close() error {
	c.once.Do(func() {
		c.out.close(false)
		c.in.close(true)
		c.nw.forget(c)
	})
	return nil
}

// reset cuts the connection at both ends: reads and writes fail at once.
func (c *pipeConn) reset() {
	for _, x := range []*pipeConn{c, c.peer} {
		x.in.close(true)
		x.out.close(true)
		x.nw.forget(x)
	}
}

func (c *pipeConn) LocalAddr() net.Addr  { return c.local }
func (c *pipeConn) RemoteAddr() net.Addr { return c.remote }

func (c *pipeConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}
func (c *pipeConn) SetReadDeadline(t time.Time) error  { c.rd.set(t); return nil }
func (c *pipeConn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }
