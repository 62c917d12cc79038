package secretstream

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of ListenerConfig.
const (
	// DefaultHelloTimeout bounds the wait for a client's first message
	// (msg1, which a real client sends as soon as it is connected).
	DefaultHelloTimeout = 5 * time.Second
	// DefaultMaxPending bounds the handshakes in progress.
	DefaultMaxPending = 256
	// DefaultMaxPendingPerIP bounds the handshakes in progress from one
	// IP address.
	DefaultMaxPendingPerIP = 16
	// DefaultRefusalSummaryEvery is how often at most the listener logs
	// a summary of refused connections at info level.
	DefaultRefusalSummaryEvery = time.Minute
)

// ListenerConfig configures NewListener.
type ListenerConfig struct {
	AppKey AppKey
	Local  ed25519.PrivateKey
	// Authorize is called per client after it authenticated (may be nil).
	Authorize func(remote ed25519.PublicKey) error
	// HandshakeTimeout bounds each handshake (default DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// HelloTimeout bounds the wait for the client's first message
	// (default DefaultHelloTimeout).
	HelloTimeout time.Duration
	// MaxPending limits concurrent handshakes (default
	// DefaultMaxPending) and MaxPendingPerIP those from one IP address
	// (default DefaultMaxPendingPerIP). A new connection beyond a limit
	// evicts the oldest pending handshake (of its IP when that is the
	// saturated limit) that still waits for its hello, or else the oldest
	// one: idle sockets never lock out new peers.
	MaxPending      int
	MaxPendingPerIP int
	// Logger receives one debug line per refused connection and, at most
	// once per RefusalSummaryEvery (default DefaultRefusalSummaryEvery), an
	// info line counting them (default slog.Default()).
	Logger              *slog.Logger
	RefusalSummaryEvery time.Duration
	// Refused, if set, is called for every connection whose handshake
	// failed, timed out or was evicted (metrics). It must not block.
	Refused func(remote net.Addr, err error)
}

// Listener accepts connections from an inner listener, runs the server
// handshake for each in its own goroutine and hands out completed
// connections from Accept. Failed handshakes are logged and counted, never
// returned by Accept.
type Listener struct {
	inner  net.Listener
	cfg    ListenerConfig
	conns  chan *Conn
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	failed atomic.Uint64

	pmu     sync.Mutex
	pending map[*pendingConn]struct{}
	perIP   map[string]int
	seq     uint64

	smu         sync.Mutex
	nRefused    uint64 // since the last summary
	lastSummary time.Time

	errMu sync.Mutex
	err   error // permanent accept error of the inner listener
	errc  chan struct{}
}

// pendingConn is a handshake in progress.
type pendingConn struct {
	conn     net.Conn
	ip       string
	seq      uint64 // accept order
	gotHello atomic.Bool
	evicted  atomic.Bool
}

// Listen wraps l: its Accept returns authenticated *Conn values (as
// net.Conn). See Listener.
func Listen(l net.Listener, appKey AppKey, local ed25519.PrivateKey, authorize func(ed25519.PublicKey) error) net.Listener {
	return NewListener(l, ListenerConfig{AppKey: appKey, Local: local, Authorize: authorize})
}

// NewListener starts accepting on l with the given configuration.
func NewListener(l net.Listener, cfg ListenerConfig) *Listener {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = DefaultHelloTimeout
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.MaxPendingPerIP <= 0 {
		cfg.MaxPendingPerIP = DefaultMaxPendingPerIP
	}
	if cfg.RefusalSummaryEvery <= 0 {
		cfg.RefusalSummaryEvery = DefaultRefusalSummaryEvery
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	ln := &Listener{
		inner:   l,
		cfg:     cfg,
		conns:   make(chan *Conn),
		ctx:     ctx,
		cancel:  cancel,
		pending: map[*pendingConn]struct{}{},
		perIP:   map[string]int{},
		errc:    make(chan struct{}),
	}
	ln.wg.Add(1)
	go ln.acceptLoop()
	return ln
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		conn, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// e.g. EMFILE: back off and retry.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
					continue
				case <-l.ctx.Done():
					return
				}
			}
			if l.ctx.Err() != nil {
				return
			}
			l.errMu.Lock()
			l.err = fmt.Errorf("secretstream: accept: %w", err)
			l.errMu.Unlock()
			close(l.errc)
			return
		}
		backoff = 0
		p := l.admit(conn)
		l.wg.Add(1)
		go l.handshake(p)
	}
}

// isTemporary reports errors worth retrying Accept after.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func ipOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// admit registers a new pending handshake, evicting older ones when a
// limit is reached.
func (l *Listener) admit(conn net.Conn) *pendingConn {
	p := &pendingConn{conn: conn, ip: ipOf(conn.RemoteAddr())}
	var evict []*pendingConn
	l.pmu.Lock()
	l.seq++
	p.seq = l.seq
	for l.perIP[p.ip] >= l.cfg.MaxPendingPerIP {
		v := l.oldestLocked(p.ip)
		if v == nil {
			break
		}
		evict = append(evict, v)
		l.removeLocked(v)
	}
	for len(l.pending) >= l.cfg.MaxPending {
		v := l.oldestLocked("")
		if v == nil {
			break
		}
		evict = append(evict, v)
		l.removeLocked(v)
	}
	l.pending[p] = struct{}{}
	l.perIP[p.ip]++
	l.pmu.Unlock()
	for _, v := range evict {
		v.evicted.Store(true)
		v.conn.Close() // its handshake fails and is logged as evicted
	}
	return p
}

// oldestLocked picks the pending handshake to evict (of ip, or of any IP
// when ip is ""): the oldest that still waits for its hello, else the
// oldest.
func (l *Listener) oldestLocked(ip string) *pendingConn {
	var idle, any *pendingConn
	for p := range l.pending {
		if ip != "" && p.ip != ip {
			continue
		}
		if any == nil || p.seq < any.seq {
			any = p
		}
		if !p.gotHello.Load() && (idle == nil || p.seq < idle.seq) {
			idle = p
		}
	}
	if idle != nil {
		return idle
	}
	return any
}

func (l *Listener) removeLocked(p *pendingConn) {
	if _, ok := l.pending[p]; !ok {
		return
	}
	delete(l.pending, p)
	if l.perIP[p.ip]--; l.perIP[p.ip] <= 0 {
		delete(l.perIP, p.ip)
	}
}

func (l *Listener) handshake(p *pendingConn) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	c, err := serverWith(ctx, p.conn, l.cfg.AppKey, l.cfg.Local, l.cfg.Authorize, l.cfg.HelloTimeout, func() { p.gotHello.Store(true) })
	cancel()
	if err != nil {
		p.conn.Close()
	}
	l.pmu.Lock()
	l.removeLocked(p)
	l.pmu.Unlock()
	if err != nil {
		if p.evicted.Load() {
			err = fmt.Errorf("secretstream: evicted: a newer connection needed the slot (pending handshakes limited to %d, %d per IP): %w", l.cfg.MaxPending, l.cfg.MaxPendingPerIP, err)
		}
		l.refused(p.conn.RemoteAddr(), err)
		return
	}
	select {
	case l.conns <- c:
	case <-l.ctx.Done():
		c.Close()
	}
}

// refused logs a failed handshake at debug level, and a summary at info
// level at most once per RefusalSummaryEvery.
func (l *Listener) refused(remote net.Addr, err error) {
	l.failed.Add(1)
	if l.cfg.Refused != nil {
		l.cfg.Refused(remote, err)
	}
	l.cfg.Logger.Debug("secretstream: refused connection: handshake failed", "remote", remote.String(), "err", err)
	l.smu.Lock()
	l.nRefused++
	now := time.Now()
	var n uint64
	if now.Sub(l.lastSummary) >= l.cfg.RefusalSummaryEvery {
		n = l.nRefused
		l.nRefused = 0
		l.lastSummary = now
	}
	l.smu.Unlock()
	if n > 0 {
		l.cfg.Logger.Info("secretstream: refused connections (failed, timed out or evicted handshakes; details at debug level)",
			"count", n, "total", l.failed.Load(), "last_remote", remote.String(), "last_err", err)
	}
}

// Accept returns the next connection whose handshake succeeded.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.ctx.Done():
		return nil, fmt.Errorf("secretstream: accept: %w", net.ErrClosed)
	case <-l.errc:
		l.errMu.Lock()
		defer l.errMu.Unlock()
		return nil, l.err
	}
}

// Close stops accepting, closes the inner listener and aborts pending
// handshakes. It waits for the listener's goroutines to end.
func (l *Listener) Close() error {
	l.cancel()
	err := l.inner.Close()
	l.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("secretstream: close listener: %w", err)
	}
	return nil
}

// Addr returns the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// FailedHandshakes returns how many handshakes have failed so far.
func (l *Listener) FailedHandshakes() uint64 { return l.failed.Load() }
