package muxrpc

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// connReader reads packets from a connection for the read loop. While it
// waits for the next packet it holds only a small array; a pooled 64 KiB
// buffer is taken while data flows and given back when drained, so an idle
// connection costs little memory. It applies the read deadlines: the idle
// timeout while waiting for a packet, the packet timeout once a packet has
// started.
type connReader struct {
	r        io.Reader
	deadline readDeadliner // nil: no deadlines
	idle     time.Duration // 0: none
	packet   time.Duration // <= 0: none
	maxBody  int
	budget   *Budget         // shared bound on bodies being received
	done     <-chan struct{} // ends a wait for the budget

	small      [smallReadSize]byte
	buf        []byte // small[:] or *big
	big        *[]byte
	start, end int
	lastRead   int // bytes the last Read returned: a flood keeps the big buffer
	// deadline state: what was last set, and when
	mode  int // 0 none, 1 idle, 2 packet
	setAt time.Time
}

type readDeadliner interface{ SetReadDeadline(time.Time) error }

const (
	smallReadSize = 512
	bigReadSize   = 64 << 10
)

var readPool = sync.Pool{New: func() any { b := make([]byte, bigReadSize); return &b }}

func newConnReader(r io.Reader, maxBody int, idle, packet time.Duration) *connReader {
	c := &connReader{r: r, maxBody: maxBody, idle: idle, packet: packet}
	if d, ok := r.(readDeadliner); ok && (idle > 0 || packet > 0) {
		c.deadline = d
	}
	c.buf = c.small[:]
	return c
}

const (
	modeNone = iota
	modeIdle
	modePacket
)

// arm sets the read deadline for the wait ahead: idle (waiting for a
// packet) or packet (inside one).
func (c *connReader) arm(inPacket bool) {
	if c.deadline == nil {
		return
	}
	now := time.Now()
	switch {
	case inPacket && c.packet > 0:
		_ = c.deadline.SetReadDeadline(now.Add(c.packet))
		c.mode, c.setAt = modePacket, now
	case !inPacket && c.idle > 0:
		// Renewing costs a timer update: do it at most once a second.
		if c.mode != modeIdle || now.Sub(c.setAt) > time.Second {
			_ = c.deadline.SetReadDeadline(now.Add(c.idle))
			c.mode, c.setAt = modeIdle, now
		}
	default:
		if c.mode != modeNone {
			_ = c.deadline.SetReadDeadline(time.Time{})
			c.mode = modeNone
		}
	}
}

// fill makes sure need (<= bigReadSize) bytes are buffered. inPacket
// selects the deadline for any wait.
func (c *connReader) fill(need int, inPacket bool) error {
	armed := false
	for c.end-c.start < need {
		if c.start+need > len(c.buf) || c.end == len(c.buf) {
			if need > len(c.buf) || (c.big == nil && c.end == len(c.buf) && c.start == 0) {
				c.grow()
			} else {
				c.end = copy(c.buf, c.buf[c.start:c.end])
				c.start = 0
			}
		}
		if !armed {
			c.arm(inPacket || c.end > c.start)
			armed = true
		}
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		c.lastRead = n
		if c.big == nil && c.end == len(c.buf) {
			// The small buffer filled at once: data is flowing.
			c.grow()
		}
		if c.end-c.start >= need {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// grow moves the buffered bytes into a pooled big buffer.
func (c *connReader) grow() {
	if c.big != nil {
		return
	}
	c.big = readPool.Get().(*[]byte)
	b := *c.big
	c.end = copy(b, c.buf[c.start:c.end])
	c.start = 0
	c.buf = b
}

// consumed gives the big buffer back once it is drained.
func (c *connReader) consumed(n int) {
	c.start += n
	if c.start == c.end {
		c.start, c.end = 0, 0
		// Give the big buffer back only when data trickles in; while
		// reads come back full, more is on its way.
		if c.big != nil && c.lastRead < smallReadSize {
			readPool.Put(c.big)
			c.big = nil
			c.buf = c.small[:]
		}
	}
}

// release gives the big buffer back (the reader is done).
func (c *connReader) release() {
	if c.big != nil {
		readPool.Put(c.big)
		c.big = nil
	}
	c.buf = nil
}

// readPacket reads the next packet, with the results of ReadPacket.
func (c *connReader) readPacket() (Packet, error) {
	if err := c.fill(HeaderSize, false); err != nil {
		switch {
		case c.end > c.start && errors.Is(err, io.EOF):
			return Packet{}, fmt.Errorf("muxrpc: truncated packet header: %w", io.ErrUnexpectedEOF)
		case c.end > c.start && isTimeout(err):
			return Packet{}, fmt.Errorf("muxrpc: packet header not complete within %s: %w", c.packet, err)
		case isTimeout(err):
			return Packet{}, fmt.Errorf("muxrpc: peer idle for %s: %w", c.idle, err)
		}
		return Packet{}, err
	}
	p, n, err := parseHeader(c.buf[c.start:c.start+HeaderSize], c.maxBody)
	c.consumed(HeaderSize)
	if err != nil {
		return p, err
	}
	// The body grows as its bytes arrive: a header announcing megabytes
	// costs only what the peer really sent.
	k := min(n, c.end-c.start)
	body := make([]byte, k, max(k, min(n, initialBody)))
	copy(body, c.buf[c.start:c.start+k])
	c.consumed(k)
	if k < n {
		c.arm(true)
	}
	var reserved int64
	defer func() { c.budget.release(reserved) }()
	for len(body) < n {
		if len(body) == cap(body) {
			grow := min(n, 2*cap(body))
			if !c.budget.acquire(int64(grow-cap(body)), c.done) {
				return p, errors.New("muxrpc: endpoint closed while waiting to receive a packet")
			}
			c.arm(true) // the wait for the budget does not count
			reserved += int64(grow - cap(body))
			nb := make([]byte, len(body), grow)
			copy(nb, body)
			body = nb
		}
		m, err := c.r.Read(body[len(body):cap(body)])
		body = body[:len(body)+m]
		if err != nil && len(body) < n {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			if isTimeout(err) {
				return p, fmt.Errorf("muxrpc: packet req %d (%d bytes) not complete within %s: %w", p.Req, n, c.packet, err)
			}
			return p, fmt.Errorf("muxrpc: truncated packet body (req %d, %d of %d bytes): %w", p.Req, len(body), n, err)
		}
	}
	p.Body = body
	return p, nil
}

// initialBody is the first allocation for a body that is not buffered yet.
const initialBody = 64 << 10
