package muxrpc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// scriptConn replays fixed bytes as what the peer sent and swallows writes.
type scriptConn struct {
	r      io.Reader
	mu     sync.Mutex
	closed bool
}

func (c *scriptConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, io.ErrClosedPipe
	}
	return len(p), nil
}
func (c *scriptConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func packetBytes(flag Flag, req int32, body string) []byte {
	return append(AppendHeader(nil, flag, uint32(len(body)), req), body...)
}

func FuzzEndpoint(f *testing.F) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	f.Add(cat(packetBytes(FlagJSON, 1, `{"name":["echo"],"args":[1]}`), Goodbye()))
	f.Add(cat(packetBytes(FlagJSON, 1, `{"name":"manifest","args":[]}`)))
	f.Add(cat(packetBytes(FlagStream|FlagJSON, 1, `{"name":["count"],"type":"source","args":[3]}`),
		packetBytes(FlagStream|FlagEnd|FlagJSON, 1, `true`)))
	f.Add(cat(packetBytes(FlagStream|FlagJSON, 2, `{"name":["sum"],"type":"sink","args":[]}`),
		packetBytes(FlagStream|FlagJSON, 2, `5`), packetBytes(FlagStream|FlagString, 2, `x`),
		packetBytes(FlagStream|FlagEnd|FlagJSON, 2, `true`)))
	f.Add(cat(packetBytes(FlagStream|FlagJSON, 3, `{"name":["dup","echo"],"type":"duplex","args":[]}`),
		packetBytes(FlagStream, 3, "\x00\x01"), packetBytes(FlagStream|FlagEnd|FlagJSON, 3, `{"name":"Error","message":"m"}`)))
	f.Add(cat(packetBytes(FlagJSON, -5, `{}`), packetBytes(FlagEnd|FlagJSON, 0, `1`), packetBytes(3, 9, `zz`)))
	f.Add(cat(packetBytes(FlagJSON, 7, `{"name":["block"],"args":{}}`), packetBytes(FlagJSON, 8, `[`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		conn := &scriptConn{r: bytes.NewReader(data)}
		e := NewEndpoint(context.Background(), conn, testMux(), Options{MaxPacketSize: 1 << 16, StreamQueueItems: 4})
		select {
		case <-e.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("endpoint did not end after its input ended")
		}
		_ = e.Close()
	})
}

// chunkReader returns its data in reads of the sizes given by sizes
// (cycled), so packets straddle reads in every way.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if len(r.sizes) > 0 {
		n = min(n, int(r.sizes[r.i%len(r.sizes)])*37+1)
		r.i++
	}
	n = copy(p, r.data[:min(n, len(r.data))])
	r.data = r.data[n:]
	return n, nil
}

// FuzzConnReader: the read loop's packet reader (lazy buffers, bodies
// grown as they arrive) parses exactly what ReadPacket parses, however
// the bytes are split into reads.
func FuzzConnReader(f *testing.F) {
	f.Add(append(packetBytes(FlagJSON, 1, `{"name":["a"],"args":[]}`), Goodbye()...), []byte{0, 3, 200})
	f.Add(packetBytes(FlagStream|FlagBinary, -3, string(bytes.Repeat([]byte{7}, 3000))), []byte{1})
	f.Add([]byte{0x0a, 0, 0, 0x10, 0, 0, 0, 0, 1, 'x'}, []byte{})
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		const max = 1 << 16
		want := bufio.NewReader(bytes.NewReader(data))
		cr := newConnReader(&chunkReader{data: data, sizes: sizes}, max, 0, 0)
		defer cr.release()
		for {
			wp, werr := ReadPacket(want, nil, max)
			gp, gerr := cr.readPacket()
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("ReadPacket: %v; connReader: %v", werr, gerr)
			}
			if werr != nil {
				for _, target := range []error{ErrGoodbye, ErrPacketTooLarge, ErrBadPacketType, io.ErrUnexpectedEOF, io.EOF} {
					if errors.Is(werr, target) != errors.Is(gerr, target) {
						t.Fatalf("ReadPacket: %v; connReader: %v", werr, gerr)
					}
				}
				return
			}
			if wp.Flag != gp.Flag || wp.Req != gp.Req || !bytes.Equal(wp.Body, gp.Body) {
				t.Fatalf("packets differ: %v/%d/%d bytes vs %v/%d/%d bytes", wp.Flag, wp.Req, len(wp.Body), gp.Flag, gp.Req, len(gp.Body))
			}
		}
	})
}
