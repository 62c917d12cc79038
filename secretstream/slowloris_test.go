package secretstream_test

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cask-ssb/cask/secretstream"
)

// idleFlood keeps n TCP connections to addr open that never send a byte;
// a connection the server closes is reopened after reopenDelay. stop ends
// it and closes them all.
func idleFlood(t testing.TB, addr string, n int, reopenDelay time.Duration) (opened *atomic.Int64, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	opened = new(atomic.Int64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	ready := make(chan struct{}, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for ctx.Err() == nil {
				var d net.Dialer
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					if first {
						ready <- struct{}{}
						first = false
					}
					time.Sleep(reopenDelay)
					continue
				}
				opened.Add(1)
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				if first {
					ready <- struct{}{}
					first = false
				}
				// Wait until the server hangs up (or we stop).
				stopRead := context.AfterFunc(ctx, func() { c.Close() })
				_, _ = io.Copy(io.Discard, c)
				stopRead()
				c.Close()
				select {
				case <-ctx.Done():
				case <-time.After(reopenDelay):
				}
			}
		}()
	}
	for range n {
		<-ready
	}
	return opened, func() {
		cancel()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// dualListener accepts on 127.0.0.1 and on [::1] (two loopback
// addresses, so a test can play two hosts).
type dualListener struct {
	v4, v6 net.Listener
	conns  chan net.Conn
	errs   chan error
}

func newDualListener(t testing.TB) *dualListener {
	t.Helper()
	v4, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	v6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		v4.Close()
		t.Fatalf("IPv6 loopback: %v", err)
	}
	d := &dualListener{v4: v4, v6: v6, conns: make(chan net.Conn), errs: make(chan error, 2)}
	for _, l := range []net.Listener{v4, v6} {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					d.errs <- err
					return
				}
				d.conns <- c
			}
		}()
	}
	return d
}

func (d *dualListener) Accept() (net.Conn, error) {
	select {
	case c := <-d.conns:
		return c, nil
	case err := <-d.errs:
		return nil, err
	}
}

func (d *dualListener) Close() error {
	d.v4.Close()
	d.v6.Close()
	return nil
}

func (d *dualListener) Addr() net.Addr { return d.v4.Addr() }

// serveListener accepts authenticated connections on 127.0.0.1 and [::1]
// and closes them.
func serveListener(t testing.TB, cfg secretstream.ListenerConfig) (*secretstream.Listener, *dualListener) {
	t.Helper()
	raw := newDualListener(t)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := secretstream.NewListener(raw, cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l, raw
}

func connectOnce(addr string, app secretstream.AppKey, client ed25519.PrivateKey, server ed25519.PublicKey, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	c, err := secretstream.Dial(ctx, "tcp", addr, app, client, server)
	if err != nil {
		return time.Since(start), err
	}
	took := time.Since(start)
	c.Close()
	return took, nil
}

// TestSlowlorisIdleConnections: 300 connections that never send a byte
// do not lock out a legitimate peer: it connects in under a second, again
// and again, for the whole time they stay open. From another address they
// are reopened as soon as the server drops them; from the peer's own
// address they stay open.
func TestSlowlorisIdleConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("slowloris test opens hundreds of connections")
	}
	for _, tc := range []struct {
		name     string
		sameHost bool
		reopen   time.Duration
	}{
		{"other host, reopened at once", false, 20 * time.Millisecond},
		{"same host, kept open", true, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serverKey, clientKey := newKey(t), newKey(t)
			app := testAppKey(3)
			l, raw := serveListener(t, secretstream.ListenerConfig{AppKey: app, Local: serverKey})
			floodAddr := raw.v6.Addr().String()
			if tc.sameHost {
				floodAddr = raw.v4.Addr().String()
			}
			opened, stop := idleFlood(t, floodAddr, 300, tc.reopen)
			defer stop()
			var worst time.Duration
			for i := range 20 {
				took, err := connectOnce(raw.v4.Addr().String(), app, clientKey, pub(serverKey), raceScale*time.Second)
				if err != nil {
					t.Fatalf("connect %d under the flood failed after %s: %v", i, took, err)
				}
				worst = max(worst, took)
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("worst connect %s; idle connections opened: %d; failed handshakes: %d", worst, opened.Load(), l.FailedHandshakes())
			if l.FailedHandshakes() == 0 {
				t.Fatal("no idle connection was dropped: the flood did not reach the limits")
			}
		})
	}
}

// TestHelloTimeout: a client that connects and sends nothing is dropped
// after HelloTimeout, not after the whole handshake timeout.
func TestHelloTimeout(t *testing.T) {
	serverKey := newKey(t)
	l, _ := serveListener(t, secretstream.ListenerConfig{AppKey: testAppKey(3), Local: serverKey, HelloTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", l.Addr().String()) // 127.0.0.1
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("server sent data to a silent client")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("silent client dropped after %s, want about 200ms", took)
	}
}

// BenchmarkConnectUnderIdleFlood: the latency of a legitimate connect
// while 1,000 idle connections are open (reopened when dropped). Reports
// the median and worst in ms.
func BenchmarkConnectUnderIdleFlood(b *testing.B) {
	serverKey, clientKey := newKey(b), newKey(b)
	app := testAppKey(3)
	_, raw := serveListener(b, secretstream.ListenerConfig{AppKey: app, Local: serverKey})
	_, stop := idleFlood(b, raw.v6.Addr().String(), 1000, 10*time.Millisecond)
	defer stop()
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		took, err := connectOnce(raw.v4.Addr().String(), app, clientKey, pub(serverKey), 10*time.Second)
		if err != nil {
			b.Fatalf("connect %d: %v", i, err)
		}
		lat = append(lat, took)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
