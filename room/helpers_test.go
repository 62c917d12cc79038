package room

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/tunnel"
	"github.com/cask-ssb/cask/secretstream"
)

// startRoom runs a room on 127.0.0.1 with a fresh repo until the test ends.
func startRoom(t testing.TB, mutate func(*Config)) *Server {
	t.Helper()
	return startRoomTraced(t, mutate, nil)
}

func startRoomTraced(t testing.TB, mutate func(*Config), trace func(feeds.FeedRef, muxrpc.Method)) *Server {
	t.Helper()
	cfg := Defaults(t.TempDir())
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTPListen = "off"
	cfg.DebugListen = "off"
	cfg.Mode = "open"
	cfg.KeepAlive = 5 * time.Second
	cfg.WriteTimeout = 5 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	level := slog.LevelWarn
	if os.Getenv("ROOM_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	s, err := New(Options{Config: cfg, Trace: trace, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("room did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("room Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("room did not stop within 15 s")
		}
	})
	return s
}

func (s *Server) tcpAddr() string {
	a, err := feeds.ParseAddress(s.Address())
	if err != nil {
		panic(err)
	}
	return a.DialAddr()
}

func newKey(t testing.TB) feeds.KeyPair {
	t.Helper()
	kp, err := feeds.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// client is a minimal room client: it answers tunnel.ping and accepts
// tunnels the room opens to it.
type client struct {
	kp   feeds.KeyPair
	room feeds.FeedRef
	ep   *muxrpc.Endpoint
	acc  *tunnel.Acceptor
	raw  net.Conn
}

type dialOpts struct {
	wrap    func(net.Conn) net.Conn // wraps the TCP conn (proxies, stalls)
	rcvBuf  int                     // SO_RCVBUF before connecting (0: default)
	noPings bool                    // do not answer tunnel.ping
}

func dial(ctx context.Context, s *Server, kp feeds.KeyPair, o dialOpts) (*client, error) {
	d := &net.Dialer{}
	if o.rcvBuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.rcvBuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	raw, err := d.DialContext(ctx, "tcp", s.tcpAddr())
	if err != nil {
		return nil, err
	}
	conn := raw
	if o.wrap != nil {
		conn = o.wrap(raw)
	}
	sc, err := secretstream.Client(ctx, conn, s.caps, kp.Private, s.ID().PublicKey())
	if err != nil {
		return nil, err
	}
	c := &client{kp: kp, room: s.ID(), raw: raw}
	m := muxrpc.NewMux()
	if !o.noPings {
		m.RegisterSync(muxrpc.Method{"tunnel", "ping"}, func(context.Context, *muxrpc.Request) (any, error) {
			return time.Now().UnixMilli(), nil
		})
	}
	c.acc = tunnel.NewAcceptor(kp.ID, func(r feeds.FeedRef) bool { return r == s.ID() }, 4)
	c.acc.Register(m)
	c.ep = muxrpc.NewEndpoint(context.Background(), sc, m, muxrpc.Options{RemoteKey: sc.RemoteKey()})
	return c, nil
}

func mustDial(t testing.TB, s *Server, kp feeds.KeyPair) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := dial(ctx, s, kp, dialOpts{})
	if err != nil {
		t.Fatalf("dial room: %v", err)
	}
	t.Cleanup(func() { c.ep.Close() })
	return c
}

type attEvent struct {
	Type string   `json:"type"`
	ID   string   `json:"id"`
	IDs  []string `json:"ids"`
}

// view follows a room.attendants stream and keeps the set it implies.
type view struct {
	mu     sync.Mutex
	set    map[string]bool
	errs   []string // protocol errors seen (duplicate joined, unknown left)
	events []attEvent
	ended  chan struct{}
	endErr error
	notify chan struct{}
}

func (c *client) subscribe(ctx context.Context) (*view, error) {
	src, err := c.ep.Source(ctx, muxrpc.Method{"room", "attendants"})
	if err != nil {
		return nil, err
	}
	v := &view{set: map[string]bool{}, ended: make(chan struct{}), notify: make(chan struct{}, 1)}
	first := make(chan error, 1)
	go func() {
		defer close(v.ended)
		gotState := false
		for {
			var ev attEvent
			err := src.Decode(ctx, &ev)
			if err != nil {
				v.mu.Lock()
				v.endErr = err
				v.mu.Unlock()
				if !gotState {
					first <- err
				}
				return
			}
			v.mu.Lock()
			v.events = append(v.events, ev)
			switch ev.Type {
			case "state":
				v.set = map[string]bool{}
				for _, id := range ev.IDs {
					v.set[id] = true
				}
			case "joined":
				if v.set[ev.ID] {
					v.errs = append(v.errs, "joined twice: "+ev.ID)
				}
				v.set[ev.ID] = true
			case "left":
				if !v.set[ev.ID] {
					v.errs = append(v.errs, "left while absent: "+ev.ID)
				}
				delete(v.set, ev.ID)
			default:
				v.errs = append(v.errs, "unknown event "+ev.Type)
			}
			v.mu.Unlock()
			select {
			case v.notify <- struct{}{}:
			default:
			}
			if !gotState {
				gotState = true
				first <- nil
			}
		}
	}()
	select {
	case err := <-first:
		if err != nil {
			return nil, err
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return v, nil
}

func (v *view) snapshot() (map[string]bool, []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	cp := make(map[string]bool, len(v.set))
	for k := range v.set {
		cp[k] = true
	}
	return cp, append([]string(nil), v.errs...)
}

// waitFor waits until pred holds for the view's set.
func (v *view) waitFor(timeout time.Duration, pred func(map[string]bool) bool) bool {
	deadline := time.After(timeout)
	for {
		set, _ := v.snapshot()
		if pred(set) {
			return true
		}
		select {
		case <-v.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			return false
		}
	}
}

func callErr(err error) string {
	var ce *muxrpc.CallError
	if errors.As(err, &ce) {
		return ce.Message
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// stallConn stops reading and/or writing when told to, without closing
// the TCP connection: a peer that never reads, or one that vanished.
type stallConn struct {
	net.Conn
	mu          sync.Mutex
	stallRead   chan struct{} // closed: reads block until Close
	stallWrite  chan struct{} // closed: writes block until Close
	closed      chan struct{}
	readClosed  bool
	writeClosed bool
	once        sync.Once
}

func newStallConn(c net.Conn) *stallConn {
	return &stallConn{Conn: c, stallRead: make(chan struct{}), stallWrite: make(chan struct{}), closed: make(chan struct{})}
}

func (c *stallConn) stopReading() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.readClosed {
		c.readClosed = true
		close(c.stallRead)
	}
}

func (c *stallConn) stopWriting() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.writeClosed {
		c.writeClosed = true
		close(c.stallWrite)
	}
}

func (c *stallConn) Read(p []byte) (int, error) {
	select {
	case <-c.stallRead:
		<-c.closed
		return 0, net.ErrClosed
	default:
	}
	return c.Conn.Read(p)
}

func (c *stallConn) Write(p []byte) (int, error) {
	select {
	case <-c.stallWrite:
		<-c.closed
		return 0, net.ErrClosed
	default:
	}
	return c.Conn.Write(p)
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// metricValue reads a counter or gauge.
func metricValue(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	go func() { c.Collect(ch); close(ch) }()
	var v float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err == nil {
			if d.Counter != nil {
				v += d.Counter.GetValue()
			}
			if d.Gauge != nil {
				v += d.Gauge.GetValue()
			}
		}
	}
	return v
}
