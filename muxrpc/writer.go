package muxrpc

import (
	"bufio"
	"fmt"
	"io"
	"sync"
)

// writer serializes all packets of an endpoint through one buffered writer.
// Senders only append to the buffer; a separate flush goroutine writes the
// buffer out whenever it gets the lock, so packets sent in a burst (many
// stream items, many concurrent replies) leave in few large writes, and a
// lone packet still goes out at once.
type writer struct {
	mu    sync.Mutex
	bw    *bufio.Writer
	err   error // sticky: once set every send fails
	kick  chan struct{}
	onErr func(error)
}

const writeBufferSize = 64 << 10

func newWriter(w io.Writer, onErr func(error)) *writer {
	return &writer{
		bw:    bufio.NewWriterSize(w, writeBufferSize),
		kick:  make(chan struct{}, 1),
		onErr: onErr,
	}
}

// send writes one packet. When s is not nil the packet belongs to that
// stream: it is refused once the stream's end was sent, and an end packet
// (end = true) marks it so. Checking under the writer lock guarantees that
// no data packet of a stream ever follows its end on the wire.
func (w *writer) send(s *stream, flag Flag, req int32, body []byte, end bool) error {
	if len(body) == 0 {
		return fmt.Errorf("muxrpc: refusing to send packet req %d with empty body (reads as goodbye)", req)
	}
	var hdr [HeaderSize]byte
	AppendHeader(hdr[:0], flag, uint32(len(body)), req)
	w.mu.Lock()
	if s != nil {
		if s.sentEnd.Load() {
			w.mu.Unlock()
			return ErrStreamClosed
		}
		if end {
			s.sentEnd.Store(true)
		}
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	_, err := w.bw.Write(hdr[:])
	if err == nil {
		_, err = w.bw.Write(body)
	}
	if err != nil {
		err = fmt.Errorf("muxrpc: write to connection: %w", err)
		w.err = err
	}
	w.mu.Unlock()
	if err != nil {
		w.onErr(err)
		return err
	}
	signal(w.kick)
	return nil
}

// flushLoop flushes buffered packets until done is closed.
func (w *writer) flushLoop(done <-chan struct{}) {
	for {
		select {
		case <-w.kick:
		case <-done:
			return
		}
		w.mu.Lock()
		var err error
		if w.err == nil && w.bw.Buffered() > 0 {
			if ferr := w.bw.Flush(); ferr != nil {
				err = fmt.Errorf("muxrpc: write to connection: %w", ferr)
				w.err = err
			}
		}
		w.mu.Unlock()
		if err != nil {
			w.onErr(err)
		}
	}
}

// goodbye writes the goodbye header, flushes, and makes every later send
// fail with errAfter.
func (w *writer) goodbye(errAfter error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.err = errAfter
	if _, err := w.bw.Write(Goodbye()); err != nil {
		return fmt.Errorf("muxrpc: write goodbye: %w", err)
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("muxrpc: flush goodbye: %w", err)
	}
	return nil
}

// stop makes every later send fail with err without writing anything.
func (w *writer) stop(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}
