package netsim

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pairOn returns both ends of a connection from host a to host b.
func pairOn(t *testing.T, nw *Network, a, b string) (client, server net.Conn) {
	t.Helper()
	l, err := nw.Host(b).Listen(b + ":1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	client, err = nw.Host(a).DialContext(context.Background(), b+":1")
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestLinkShape(t *testing.T) {
	tests := []struct {
		name    string
		link    Link
		size    int
		atLeast time.Duration
	}{
		{"latency", Link{Latency: 50 * time.Millisecond}, 10, 50 * time.Millisecond},
		{"bandwidth", Link{Bandwidth: 1 << 20}, 200 << 10, 190 * time.Millisecond},
		{"both", Link{Latency: 20 * time.Millisecond, Bandwidth: 2 << 20}, 200 << 10, 110 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nw := NewNetwork(func(string, string) Link { return tc.link })
			c, s := pairOn(t, nw, "a", "b")
			start := time.Now()
			go func() { _, _ = c.Write(make([]byte, tc.size)) }()
			if _, err := io.ReadFull(s, make([]byte, tc.size)); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < tc.atLeast {
				t.Errorf("%d bytes arrived after %v, want at least %v", tc.size, d, tc.atLeast)
			}
			if got := nw.Stats().BytesSent; got != int64(tc.size) {
				t.Errorf("bytes sent = %d, want %d", got, tc.size)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	nw := NewNetwork(nil)
	c, s := pairOn(t, nw, "a", "b")
	// An orderly close: the peer reads what was sent, then EOF.
	if _, err := c.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if b, err := io.ReadAll(s); err != nil || string(b) != "bye" {
		t.Fatalf("after close: %q, %v", b, err)
	}

	// A partition resets the connections across it and refuses dials.
	c, s = pairOn(t, nw, "a", "c")
	nw.Partition(map[string]int{"a": 1})
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, ErrReset) {
		t.Errorf("read across a partition: %v, want ErrReset", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrReset) {
		t.Errorf("write across a partition: %v, want ErrReset", err)
	}
	l, err := nw.Host("d").Listen("d:2")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := nw.Host("a").DialContext(context.Background(), "d:2"); !errors.Is(err, ErrUnreachable) {
		t.Errorf("dial across a partition: %v, want ErrUnreachable", err)
	}
	nw.Heal()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	if c, err := nw.Host("a").DialContext(context.Background(), "d:2"); err != nil {
		t.Errorf("dial after heal: %v", err)
	} else {
		c.Close()
	}

	// A host going down resets its connections and cannot be reached.
	c, s = pairOn(t, nw, "e", "f")
	nw.SetDown("f", true)
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, ErrReset) {
		t.Errorf("read from a host that went down: %v, want ErrReset", err)
	}
	nw.SetDown("f", false)

	// Deadlines.
	c, _ = pairOn(t, nw, "g", "h")
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past its deadline: %v", err)
	}
	// A writer blocks once the window is full, until its deadline.
	_ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Write(make([]byte, 2*window)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("write to a peer that does not read: %v", err)
	}
	if st := nw.Stats(); st.Cuts < 2 || st.Connections < 5 {
		t.Errorf("stats %+v: want the cuts and connections counted", st)
	}
}
