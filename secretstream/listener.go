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

// ListenerConfig configures NewListener.
type ListenerConfig struct {
	AppKey AppKey
	Local  ed25519.PrivateKey
	// Authorize is called per client after it authenticated (may be nil).
	Authorize func(remote ed25519.PublicKey) error
	// HandshakeTimeout bounds each handshake (default DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// MaxPending limits concurrent handshakes (default 64); further
	// connections wait in the kernel's accept queue.
	MaxPending int
	// Logger receives one debug line per failed handshake (default
	// slog.Default()).
	Logger *slog.Logger
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
	sem    chan struct{}
	wg     sync.WaitGroup
	failed atomic.Uint64

	errMu sync.Mutex
	err   error // permanent accept error of the inner listener
	errc  chan struct{}
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
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	ln := &Listener{
		inner:  l,
		cfg:    cfg,
		conns:  make(chan *Conn),
		ctx:    ctx,
		cancel: cancel,
		sem:    make(chan struct{}, cfg.MaxPending),
		errc:   make(chan struct{}),
	}
	ln.wg.Add(1)
	go ln.acceptLoop()
	return ln
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		select {
		case l.sem <- struct{}{}:
		case <-l.ctx.Done():
			return
		}
		conn, err := l.inner.Accept()
		if err != nil {
			<-l.sem
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
		l.wg.Add(1)
		go l.handshake(conn)
	}
}

// isTemporary reports errors worth retrying Accept after.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (l *Listener) handshake(conn net.Conn) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	c, err := Server(ctx, conn, l.cfg.AppKey, l.cfg.Local, l.cfg.Authorize)
	cancel()
	<-l.sem
	if err != nil {
		l.failed.Add(1)
		l.cfg.Logger.Info("secretstream: refused connection: handshake failed", "remote", conn.RemoteAddr().String(), "err", err)
		return
	}
	select {
	case l.conns <- c:
	case <-l.ctx.Done():
		c.Close()
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
