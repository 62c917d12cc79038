// Package secretstream implements SSB's secret handshake v1 (SHS) and the
// box-stream that encrypts the connection afterwards: it turns a net.Conn
// into an authenticated, encrypted net.Conn whose peer key is known.
//
// Client and Server run the handshake over an existing connection; Dial and
// Listen wrap the usual dialing and accepting. The handshake steps are also
// exposed as I/O-free state machines (ClientHandshake, ServerHandshake) and
// the framing as the boxstream subpackage, so both can be checked against
// test vectors.
//
// This package knows nothing of feeds or RPC and imports nothing of the
// project. It must never send application data before both sides are
// authenticated, never reuse a nonce, and never panic on peer input.
package secretstream

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/cask-ssb/cask/secretstream/boxstream"
)

// DefaultHandshakeTimeout bounds a handshake when the context has no
// earlier deadline.
const DefaultHandshakeTimeout = 15 * time.Second

// goodbyeTimeout bounds the goodbye write in Close.
const goodbyeTimeout = 2 * time.Second

// ErrWriteClosed is returned by Write after CloseWrite or Close.
var ErrWriteClosed = errors.New("secretstream: write after close")

// Conn is an authenticated, encrypted connection. Read and Write may be
// called from different goroutines (one reader and one writer at a time is
// the intended use; concurrent calls of the same method are serialised).
type Conn struct {
	conn      net.Conn
	remote    ed25519.PublicKey
	local     ed25519.PublicKey
	keys      SessionKeys
	rmu       sync.Mutex
	r         *boxstream.Unboxer
	wmu       sync.Mutex
	w         *boxstream.Boxer
	wclosed   bool
	closeOnce sync.Once
	closeErr  error
}

func newConn(c net.Conn, local, remote ed25519.PublicKey, keys SessionKeys) *Conn {
	return &Conn{
		conn:   c,
		remote: remote,
		local:  local,
		keys:   keys,
		r:      boxstream.NewUnboxer(c, keys.DecryptKey, keys.DecryptNonce),
		w:      boxstream.NewBoxer(c, keys.EncryptKey, keys.EncryptNonce),
	}
}

// RemoteKey returns the peer's authenticated long-term Ed25519 key.
func (c *Conn) RemoteKey() ed25519.PublicKey { return append(ed25519.PublicKey(nil), c.remote...) }

// LocalKey returns our long-term Ed25519 public key.
func (c *Conn) LocalKey() ed25519.PublicKey { return append(ed25519.PublicKey(nil), c.local...) }

// Read reads decrypted bytes. It returns io.EOF after the peer's goodbye;
// a hang-up without goodbye is an error wrapping io.ErrUnexpectedEOF.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	// Errors are returned unwrapped so that net.Error timeouts keep their
	// type; box-stream errors already say where they come from.
	return c.r.Read(p)
}

// Write encrypts and sends p in frames of at most 4096 bytes.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return 0, ErrWriteClosed
	}
	n, err := c.w.Write(p)
	if err != nil {
		return n, fmt.Errorf("secretstream: write: %w", err)
	}
	return n, nil
}

// CloseWrite sends the box-stream goodbye (half close). Reading continues
// until the peer's goodbye.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.goodbyeLocked()
}

func (c *Conn) goodbyeLocked() error {
	if c.wclosed {
		return nil
	}
	c.wclosed = true
	if err := c.w.WriteGoodbye(); err != nil {
		return fmt.Errorf("secretstream: send goodbye: %w", err)
	}
	return nil
}

// Close sends the goodbye (unless already sent, or a Write is blocked) and
// closes the underlying connection.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		var gerr error
		if c.wmu.TryLock() {
			if !c.wclosed {
				_ = c.conn.SetWriteDeadline(time.Now().Add(goodbyeTimeout))
				gerr = c.goodbyeLocked()
			}
			c.wclosed = true
			c.wmu.Unlock()
		}
		cerr := c.conn.Close()
		switch {
		case cerr != nil:
			c.closeErr = fmt.Errorf("secretstream: close: %w", cerr)
		case gerr != nil && !errors.Is(gerr, net.ErrClosed) && !errors.Is(gerr, syscall.EPIPE) && !errors.Is(gerr, syscall.ECONNRESET):
			c.closeErr = gerr
		}
	})
	return c.closeErr
}

// LocalAddr returns the underlying connection's local address.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the underlying connection's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets the underlying connection's deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// SetReadDeadline sets the underlying connection's read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the underlying connection's write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// Underlying returns the wrapped connection (for diagnostics only; writing
// to it corrupts the stream).
func (c *Conn) Underlying() net.Conn { return c.conn }

// handshakeIO applies the handshake deadline and context cancellation to
// conn; the returned stop function removes both and reports whether the
// context ended the handshake.
func handshakeIO(ctx context.Context, conn net.Conn) (stop func() error, err error) {
	deadline := time.Now().Add(DefaultHandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("secretstream: handshake: set deadline: %w", err)
	}
	stopAfter := context.AfterFunc(ctx, func() {
		// Unblock pending I/O at once.
		_ = conn.SetDeadline(time.Unix(1, 0))
	})
	return func() error {
		if !stopAfter() {
			// The context ended (the AfterFunc ran or is running).
			return ctx.Err()
		}
		// An error here means the connection is already closed (the
		// peer may hang up right after the handshake); the next Read or
		// Write reports that, so it is not a handshake failure.
		_ = conn.SetDeadline(time.Time{})
		return nil
	}, nil
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ioError classifies an I/O error during a handshake step.
func ioError(ctx context.Context, step string, err error, hangup error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("secretstream: handshake: %s: %w: %w", step, ErrHandshakeTimeout, ctxErr)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			// The connection deadline was the context's; its timer may
			// not have fired yet.
			return fmt.Errorf("secretstream: handshake: %s: %w: %w", step, ErrHandshakeTimeout, context.DeadlineExceeded)
		}
		return fmt.Errorf("secretstream: handshake: %s: %w: %w", step, ErrHandshakeTimeout, err)
	}
	if hangup != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		return fmt.Errorf("%w (%s: peer hung up: %w)", hangup, step, err)
	}
	return fmt.Errorf("secretstream: handshake: %s: %w", step, err)
}

// Client runs the client side of the secret handshake over conn with the
// server whose long-term key is remote, and returns the encrypted
// connection. ctx bounds the handshake (at most DefaultHandshakeTimeout).
// On failure conn is closed.
func Client(ctx context.Context, conn net.Conn, appKey AppKey, local ed25519.PrivateKey, remote ed25519.PublicKey) (*Conn, error) {
	c, err := client(ctx, conn, appKey, local, remote)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func client(ctx context.Context, conn net.Conn, appKey AppKey, local ed25519.PrivateKey, remote ed25519.PublicKey) (*Conn, error) {
	h, err := NewClientHandshake(appKey, local, remote, nil)
	if err != nil {
		return nil, err
	}
	stop, err := handshakeIO(ctx, conn)
	if err != nil {
		return nil, err
	}
	fail := func(e error) (*Conn, error) {
		_ = stop()
		return nil, e
	}
	if _, err := conn.Write(h.Hello()); err != nil {
		return fail(ioError(ctx, "send hello", err, nil))
	}
	var msg2 [HelloSize]byte
	if _, err := io.ReadFull(conn, msg2[:]); err != nil {
		return fail(ioError(ctx, "read server hello", err, ErrWrongAppKey))
	}
	if err := h.VerifyChallenge(msg2[:]); err != nil {
		return fail(err)
	}
	msg3, err := h.Authenticate()
	if err != nil {
		return fail(err)
	}
	if _, err := conn.Write(msg3); err != nil {
		return fail(ioError(ctx, "send authentication", err, ErrServerAuthFailed))
	}
	var msg4 [ServerAcceptSize]byte
	if _, err := io.ReadFull(conn, msg4[:]); err != nil {
		return fail(ioError(ctx, "read server accept", err, ErrServerAuthFailed))
	}
	if err := h.VerifyAccept(msg4[:]); err != nil {
		return fail(err)
	}
	if err := stop(); err != nil {
		return nil, fmt.Errorf("secretstream: handshake: %w: %w", ErrHandshakeTimeout, err)
	}
	keys, err := h.SessionKeys()
	if err != nil {
		return nil, err
	}
	return newConn(conn, h.localPublic, h.remotePublic, keys), nil
}

// Server runs the server side of the secret handshake over conn. authorize
// (may be nil) is called with the client's long-term key after the client
// authenticated and before we accept; a non-nil error closes the connection
// without accepting and is returned wrapped with ErrUnauthorized. ctx bounds
// the handshake (at most DefaultHandshakeTimeout). On failure conn is
// closed.
func Server(ctx context.Context, conn net.Conn, appKey AppKey, local ed25519.PrivateKey, authorize func(remote ed25519.PublicKey) error) (*Conn, error) {
	c, err := server(ctx, conn, appKey, local, authorize)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func server(ctx context.Context, conn net.Conn, appKey AppKey, local ed25519.PrivateKey, authorize func(remote ed25519.PublicKey) error) (*Conn, error) {
	return serverWith(ctx, conn, appKey, local, authorize, 0, nil)
}

// serverWith is server with a shorter deadline for the client's hello
// (helloTimeout > 0) and a hook called once the hello was read.
func serverWith(ctx context.Context, conn net.Conn, appKey AppKey, local ed25519.PrivateKey, authorize func(remote ed25519.PublicKey) error, helloTimeout time.Duration, gotHello func()) (*Conn, error) {
	h, err := NewServerHandshake(appKey, local, nil)
	if err != nil {
		return nil, err
	}
	stop, err := handshakeIO(ctx, conn)
	if err != nil {
		return nil, err
	}
	fail := func(e error) (*Conn, error) {
		_ = stop()
		return nil, e
	}
	var msg1 [HelloSize]byte
	if helloTimeout > 0 {
		_ = conn.SetReadDeadline(time.Now().Add(helloTimeout))
	}
	if _, err := io.ReadFull(conn, msg1[:]); err != nil {
		if helloTimeout > 0 && ctx.Err() == nil && isNetTimeout(err) {
			return fail(fmt.Errorf("secretstream: handshake: read client hello: %w: nothing within %s: %w", ErrHandshakeTimeout, helloTimeout, err))
		}
		return fail(ioError(ctx, "read client hello", err, nil))
	}
	if helloTimeout > 0 {
		// Back to the deadline of the whole handshake.
		d := time.Now().Add(DefaultHandshakeTimeout)
		if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
			d = cd
		}
		_ = conn.SetReadDeadline(d)
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("secretstream: handshake: %w: %w", ErrHandshakeTimeout, err))
		}
	}
	if gotHello != nil {
		gotHello()
	}
	if err := h.VerifyHello(msg1[:]); err != nil {
		return fail(err)
	}
	if _, err := conn.Write(h.Challenge()); err != nil {
		return fail(ioError(ctx, "send server hello", err, nil))
	}
	var msg3 [ClientAuthSize]byte
	if _, err := io.ReadFull(conn, msg3[:]); err != nil {
		return fail(ioError(ctx, "read client authentication", err, nil))
	}
	if err := h.VerifyAuth(msg3[:]); err != nil {
		return fail(err)
	}
	if authorize != nil {
		if err := authorize(h.RemoteKey()); err != nil {
			return fail(fmt.Errorf("%w: %w", ErrUnauthorized, err))
		}
	}
	msg4, err := h.Accept()
	if err != nil {
		return fail(err)
	}
	if _, err := conn.Write(msg4); err != nil {
		return fail(ioError(ctx, "send accept", err, nil))
	}
	if err := stop(); err != nil {
		return nil, fmt.Errorf("secretstream: handshake: %w: %w", ErrHandshakeTimeout, err)
	}
	keys, err := h.SessionKeys()
	if err != nil {
		return nil, err
	}
	return newConn(conn, h.localPublic, h.remotePublic, keys), nil
}

// Dial connects to addr and runs the client handshake with the server
// whose long-term key is remote.
func Dial(ctx context.Context, network, addr string, appKey AppKey, local ed25519.PrivateKey, remote ed25519.PublicKey) (*Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("secretstream: dial %s: %w", addr, err)
	}
	c, err := Client(ctx, conn, appKey, local, remote)
	if err != nil {
		return nil, fmt.Errorf("secretstream: dial %s: %w", addr, err)
	}
	return c, nil
}
