package muxrpc

import (
	"bytes"
	"context"
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
