package muxrpc

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestDeadlines: a peer that reads nothing, one that stalls inside a
// packet and (with IdleTimeout) one that sends nothing are disconnected
// after the configured time.
func TestDeadlines(t *testing.T) {
	flood := NewMux()
	flood.RegisterSource(Method{"flood"}, func(ctx context.Context, _ *Request, out *Sink) error {
		item := make([]byte, 64<<10)
		for {
			if err := out.WriteRaw(FlagBinary, item); err != nil {
				return err
			}
		}
	})
	for _, tc := range []struct {
		name string
		opts Options
		peer func(c net.Conn) error // what the hostile peer does
		want error
	}{
		{"does not read", Options{WriteTimeout: 300 * time.Millisecond, MaxQueuedBytes: 256 << 10}, func(c net.Conn) error {
			_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
			return writePacketTo(c, FlagStream|FlagJSON, 1, `{"name":["flood"],"type":"source","args":[]}`)
		}, ErrPeerNotReading},
		{"stalls inside a packet", Options{PacketTimeout: 300 * time.Millisecond}, func(c net.Conn) error {
			_, err := c.Write(append(AppendHeader(nil, FlagJSON, 1000, 1), `{"name":`...))
			return err
		}, nil},
		{"sends nothing", Options{IdleTimeout: 300 * time.Millisecond}, func(c net.Conn) error { return nil }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, cb := tcpConns(t)
			defer ca.Close()
			if err := tc.peer(ca); err != nil {
				t.Fatal(err)
			}
			e := NewEndpoint(context.Background(), cb, flood, tc.opts)
			defer e.Close()
			select {
			case <-e.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("hostile peer still connected after 10 s")
			}
			if e.Err() == nil {
				t.Fatal("endpoint ended without an error")
			}
			if tc.want != nil && !errors.Is(e.Err(), tc.want) {
				t.Fatalf("ended with %v, want %v", e.Err(), tc.want)
			}
			t.Logf("disconnected: %v", e.Err())
		})
	}
}

func writePacketTo(c net.Conn, flag Flag, req int32, body string) error {
	_, err := c.Write(append(AppendHeader(nil, flag, uint32(len(body)), req), body...))
	return err
}
