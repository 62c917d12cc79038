package muxrpc

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// StreamConnChunk is the largest data packet a StreamConn writes.
const StreamConnChunk = 32 << 10

// StreamConn is a duplex stream used as a net.Conn: bytes written go out
// as binary stream packets, bytes read are the bodies of the peer's
// packets in order. Tunnels run a secret handshake and a whole new muxrpc
// session over one (protocol.md §8.5).
//
// Read honours read deadlines (a deadline set while a Read is blocked
// unblocks it). A Write blocks while the connection does not take data; a
// write deadline that has already passed fails the Write at once, but one
// that passes during a blocked Write does not interrupt it. Close ends both
// halves of the stream. Done is closed by Close, or once both halves
// ended: the peer's (read up to io.EOF) and ours (CloseWrite).
type StreamConn struct {
	src           *Source
	snk           *Sink
	local, remote net.Addr

	rmu     sync.Mutex // serialises Read
	pending []byte

	mu         sync.Mutex
	rctx       context.Context
	rstop      context.CancelFunc
	wdl        time.Time
	closed     bool
	peerEnded  bool // Read returned io.EOF
	localEnded bool // CloseWrite was called
	done       chan struct{}
}

// NewStreamConn wraps the two halves of a duplex stream (from
// Endpoint.Duplex, or from Request.Source/Sink in a duplex handler).
// local and remote are what LocalAddr and RemoteAddr return (may be nil).
func NewStreamConn(src *Source, snk *Sink, local, remote net.Addr) *StreamConn {
	c := &StreamConn{src: src, snk: snk, local: local, remote: remote, done: make(chan struct{})}
	c.rctx, c.rstop = context.WithCancel(context.Background())
	return c
}

// Read reads bytes the peer sent. It returns io.EOF after the peer ended
// its half cleanly, and the peer's error if it ended with one.
func (c *StreamConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.pending) == 0 {
		c.mu.Lock()
		ctx, closed := c.rctx, c.closed
		c.mu.Unlock()
		if closed {
			return 0, net.ErrClosed
		}
		pkt, err := c.src.NextPacket(ctx)
		if err != nil {
			if ctx.Err() != nil {
				c.mu.Lock()
				replaced, closed := c.rctx != ctx, c.closed
				c.mu.Unlock()
				if closed {
					return 0, net.ErrClosed
				}
				if errors.Is(ctx.Err(), context.DeadlineExceeded) && !replaced {
					return 0, os.ErrDeadlineExceeded
				}
				if replaced {
					continue // the deadline changed: wait again with the new one
				}
			}
			if errors.Is(err, io.EOF) {
				c.mu.Lock()
				c.peerEnded = true
				both := c.localEnded
				c.mu.Unlock()
				if both {
					c.finish()
				}
			}
			return 0, err
		}
		c.pending = pkt.Body
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// finish marks the conn done (the peer's half ended and was read).
func (c *StreamConn) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
	default:
		close(c.done)
	}
}

// Write sends p in binary packets of at most StreamConnChunk bytes.
func (c *StreamConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	closed, wdl := c.closed, c.wdl
	c.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	if !wdl.IsZero() && !time.Now().Before(wdl) {
		return 0, os.ErrDeadlineExceeded
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), StreamConnChunk)
		// The writer copies the body into its buffer before returning.
		if err := c.snk.WriteRaw(FlagBinary, p[:k]); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// CloseWrite ends our half of the stream; reading continues.
func (c *StreamConn) CloseWrite() error {
	err := c.snk.Close()
	c.mu.Lock()
	c.localEnded = true
	both := c.peerEnded
	c.mu.Unlock()
	if both {
		c.finish()
	}
	return err
}

// Close ends both halves of the stream and unblocks a pending Read.
func (c *StreamConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.rstop()
	c.mu.Unlock()
	_ = c.snk.Close()
	_ = c.src.Close()
	c.finish()
	return nil
}

// Done is closed when the conn is finished (see StreamConn).
func (c *StreamConn) Done() <-chan struct{} { return c.done }

// LocalAddr returns the local address given to NewStreamConn.
func (c *StreamConn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the remote address given to NewStreamConn.
func (c *StreamConn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets both deadlines.
func (c *StreamConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline; zero means none.
func (c *StreamConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	old := c.rstop
	if t.IsZero() {
		c.rctx, c.rstop = context.WithCancel(context.Background())
	} else {
		c.rctx, c.rstop = context.WithDeadline(context.Background(), t)
	}
	old() // wakes a pending Read, which retries with the new context
	return nil
}

// SetWriteDeadline sets the write deadline (see StreamConn).
func (c *StreamConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wdl = t
	return nil
}

// StreamAddr is a net.Addr for stream conns, e.g. a tunnel address.
type StreamAddr string

// Network returns "muxrpc".
func (StreamAddr) Network() string { return "muxrpc" }

// String returns the address.
func (a StreamAddr) String() string { return string(a) }
