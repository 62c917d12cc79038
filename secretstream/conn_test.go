package secretstream_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/cask-ssb/cask/secretstream"
)

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func testAppKey(b byte) secretstream.AppKey {
	var k secretstream.AppKey
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

// tcpPair returns both ends of a fresh 127.0.0.1 TCP connection.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

type handshakeResult struct {
	conn *secretstream.Conn
	err  error
}

// handshake runs Client and Server concurrently over a TCP pair.
func handshake(t testing.TB, clientApp, serverApp secretstream.AppKey, clientKey, serverKey ed25519.PrivateKey, expectServer ed25519.PublicKey, authorize func(ed25519.PublicKey) error) (c, s handshakeResult) {
	t.Helper()
	cc, sc := tcpPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := make(chan handshakeResult, 1)
	go func() {
		conn, err := secretstream.Server(ctx, sc, serverApp, serverKey, authorize)
		ch <- handshakeResult{conn, err}
	}()
	conn, err := secretstream.Client(ctx, cc, clientApp, clientKey, expectServer)
	c = handshakeResult{conn, err}
	s = <-ch
	for _, r := range []handshakeResult{c, s} {
		if r.conn != nil {
			t.Cleanup(func() { r.conn.Close() })
		}
	}
	return c, s
}

func TestHandshakeOutcomes(t *testing.T) {
	clientKey, serverKey, otherKey := newKey(t), newKey(t), newKey(t)
	refuse := errors.New("not on the list")
	tests := []struct {
		name                   string
		clientApp, serverApp   secretstream.AppKey
		expect                 ed25519.PublicKey
		authorize              func(ed25519.PublicKey) error
		wantClient, wantServer error
	}{
		{name: "ok", clientApp: testAppKey(1), serverApp: testAppKey(1), expect: pub(serverKey)},
		{name: "ok main net, authorize accepts", clientApp: secretstream.MainNetAppKey(), serverApp: secretstream.MainNetAppKey(), expect: pub(serverKey),
			authorize: func(k ed25519.PublicKey) error {
				if !k.Equal(pub(clientKey)) {
					return errors.New("wrong key passed to authorize")
				}
				return nil
			}},
		{name: "wrong app key", clientApp: testAppKey(1), serverApp: testAppKey(2), expect: pub(serverKey),
			wantClient: secretstream.ErrWrongAppKey, wantServer: secretstream.ErrWrongAppKey},
		{name: "wrong server key", clientApp: testAppKey(1), serverApp: testAppKey(1), expect: pub(otherKey),
			wantClient: secretstream.ErrServerAuthFailed, wantServer: secretstream.ErrClientAuthFailed},
		{name: "authorize refuses", clientApp: testAppKey(1), serverApp: testAppKey(1), expect: pub(serverKey),
			authorize:  func(ed25519.PublicKey) error { return refuse },
			wantClient: secretstream.ErrServerAuthFailed, wantServer: refuse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := handshake(t, tt.clientApp, tt.serverApp, clientKey, serverKey, tt.expect, tt.authorize)
			check := func(side string, r handshakeResult, want error) {
				if want == nil {
					if r.err != nil {
						t.Fatalf("%s: %v", side, r.err)
					}
					return
				}
				if !errors.Is(r.err, want) {
					t.Fatalf("%s: err = %v, want %v", side, r.err, want)
				}
			}
			check("client", c, tt.wantClient)
			check("server", s, tt.wantServer)
			if tt.wantServer == refuse && !errors.Is(s.err, secretstream.ErrUnauthorized) {
				t.Fatalf("server: err = %v, want ErrUnauthorized too", s.err)
			}
			if tt.wantClient != nil && tt.wantClient != secretstream.ErrWrongAppKey && !errors.Is(c.err, secretstream.ErrAuthFailed) {
				t.Fatalf("client: err = %v should also match ErrAuthFailed", c.err)
			}
			if c.err == nil {
				if !c.conn.RemoteKey().Equal(pub(serverKey)) || !s.conn.RemoteKey().Equal(pub(clientKey)) {
					t.Fatal("RemoteKey mismatch")
				}
			}
		})
	}
}

func TestInvalidRemoteKeys(t *testing.T) {
	// identity point (small order), a non-decoding y, and a short key.
	identity := make([]byte, 32)
	identity[0] = 1
	bad := bytes.Repeat([]byte{0xff}, 32)
	bad[31] = 0x7f // y = 2^255-1 >= p: not canonical
	notOnCurve := make([]byte, 32)
	notOnCurve[0] = 2 // y = 2 is not on the curve
	for name, k := range map[string][]byte{"identity": identity, "non-canonical": bad, "not on curve": notOnCurve, "short": identity[:31]} {
		t.Run(name, func(t *testing.T) {
			_, err := secretstream.NewClientHandshake(testAppKey(1), newKey(t), k, nil)
			if !errors.Is(err, secretstream.ErrInvalidKey) {
				t.Fatalf("err = %v, want ErrInvalidKey", err)
			}
		})
	}
}

func TestDataTransfer(t *testing.T) {
	clientKey, serverKey := newKey(t), newKey(t)
	c, s := handshake(t, testAppKey(3), testAppKey(3), clientKey, serverKey, pub(serverKey), nil)
	if c.err != nil || s.err != nil {
		t.Fatalf("handshake: %v / %v", c.err, s.err)
	}
	sizes := []int{1, 4095, 4096, 4097, 100_000, 1 << 20}
	mk := func(seed byte) []byte {
		total := 0
		for _, n := range sizes {
			total += n
		}
		b := make([]byte, total)
		for i := range b {
			b[i] = byte(i*31) ^ seed
		}
		return b
	}
	up, down := mk(1), mk(2)
	var wg sync.WaitGroup
	send := func(conn *secretstream.Conn, data []byte, errs chan<- error) {
		defer wg.Done()
		off := 0
		for _, n := range sizes {
			if _, err := conn.Write(data[off : off+n]); err != nil {
				errs <- err
				return
			}
			off += n
		}
		errs <- conn.CloseWrite()
	}
	errs := make(chan error, 4)
	got := make([][]byte, 2)
	recv := func(i int, conn *secretstream.Conn) {
		defer wg.Done()
		b, err := io.ReadAll(conn) // ends at the peer's goodbye (io.EOF)
		got[i] = b
		errs <- err
	}
	wg.Add(4)
	go send(c.conn, up, errs)
	go send(s.conn, down, errs)
	go recv(0, s.conn)
	go recv(1, c.conn)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got[0], up) || !bytes.Equal(got[1], down) {
		t.Fatalf("data mismatch: up %d/%d, down %d/%d bytes", len(got[0]), len(up), len(got[1]), len(down))
	}
	if _, err := c.conn.Write([]byte("late")); !errors.Is(err, secretstream.ErrWriteClosed) {
		t.Fatalf("write after CloseWrite: %v", err)
	}
	if err := c.conn.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestHalfCloseRequestResponse(t *testing.T) {
	clientKey, serverKey := newKey(t), newKey(t)
	c, s := handshake(t, testAppKey(4), testAppKey(4), clientKey, serverKey, pub(serverKey), nil)
	if c.err != nil || s.err != nil {
		t.Fatalf("handshake: %v / %v", c.err, s.err)
	}
	done := make(chan error, 1)
	go func() {
		req, err := io.ReadAll(s.conn) // until the client's goodbye
		if err != nil {
			done <- err
			return
		}
		if _, err := s.conn.Write(append([]byte("re: "), req...)); err != nil {
			done <- err
			return
		}
		done <- s.conn.Close()
	}()
	if _, err := c.conn.Write([]byte("question")); err != nil {
		t.Fatal(err)
	}
	if err := c.conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(c.conn)
	if err != nil {
		t.Fatal(err)
	}
	if string(resp) != "re: question" {
		t.Fatalf("response %q", resp)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestHangupWithoutGoodbye(t *testing.T) {
	clientKey, serverKey := newKey(t), newKey(t)
	c, s := handshake(t, testAppKey(5), testAppKey(5), clientKey, serverKey, pub(serverKey), nil)
	if c.err != nil || s.err != nil {
		t.Fatalf("handshake: %v / %v", c.err, s.err)
	}
	if _, err := c.conn.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	c.conn.Underlying().Close() // no goodbye
	buf := make([]byte, 100)
	n, err := io.ReadFull(s.conn, buf[:7])
	if err != nil || string(buf[:n]) != "partial" {
		t.Fatalf("read: %q %v", buf[:n], err)
	}
	_, err = s.conn.Read(buf)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	key := newKey(t)
	t.Run("client, silent server", func(t *testing.T) {
		cc, _ := tcpPair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := secretstream.Client(ctx, cc, testAppKey(1), key, pub(newKey(t)))
		if !errors.Is(err, secretstream.ErrHandshakeTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrHandshakeTimeout and context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v", d)
		}
	})
	t.Run("server, silent client, canceled", func(t *testing.T) {
		_, sc := tcpPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := secretstream.Server(ctx, sc, testAppKey(1), key, nil)
		if !errors.Is(err, secretstream.ErrHandshakeTimeout) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want ErrHandshakeTimeout and context.Canceled", err)
		}
	})
}

func TestListener(t *testing.T) {
	serverKey, clientKey := newKey(t), newKey(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := secretstream.Listen(inner, testAppKey(7), serverKey, nil)
	defer ln.Close()
	addr := ln.Addr().String()

	// A stalled connection (never sends a hello) must not block others.
	stalled, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	// A client on another network fails; Accept must not report it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := secretstream.Dial(ctx, "tcp", addr, testAppKey(8), clientKey, pub(serverKey)); !errors.Is(err, secretstream.ErrWrongAppKey) {
		t.Fatalf("wrong-network dial: %v", err)
	}
	type accepted struct {
		c   net.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		acc <- accepted{c, err}
	}()
	cc, err := secretstream.Dial(ctx, "tcp", addr, testAppKey(7), clientKey, pub(serverKey))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var a accepted
	select {
	case a = <-acc:
	case <-time.After(10 * time.Second):
		t.Fatal("Accept blocked behind a stalled handshake")
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	sc := a.c.(*secretstream.Conn)
	if !sc.RemoteKey().Equal(pub(clientKey)) {
		t.Fatal("accepted conn has wrong remote key")
	}
	if _, err := cc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q %v", buf, err)
	}
	sc.Close()
	if f := ln.(*secretstream.Listener).FailedHandshakes(); f != 1 {
		t.Fatalf("FailedHandshakes = %d, want 1", f)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

func TestConcurrentReadWrite(t *testing.T) {
	clientKey, serverKey := newKey(t), newKey(t)
	c, s := handshake(t, testAppKey(9), testAppKey(9), clientKey, serverKey, pub(serverKey), nil)
	if c.err != nil || s.err != nil {
		t.Fatalf("handshake: %v / %v", c.err, s.err)
	}
	// Several writers on one conn: frames never interleave.
	const writers, per = 4, 50
	msg := bytes.Repeat([]byte("abcdefgh"), 1024) // 8 KiB = 2 frames
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if _, err := c.conn.Write(msg); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); c.conn.CloseWrite() }()
	got, err := io.ReadAll(s.conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != writers*per*len(msg) || !bytes.Equal(got[:len(msg)], msg) {
		t.Fatalf("got %d bytes", len(got))
	}
}

// TestReadDeadlineResumes: a read timeout is a net.Error and does not break
// the stream; reading continues after the deadline is lifted.
func TestReadDeadlineResumes(t *testing.T) {
	clientKey, serverKey := newKey(t), newKey(t)
	c, s := handshake(t, testAppKey(6), testAppKey(6), clientKey, serverKey, pub(serverKey), nil)
	if c.err != nil || s.err != nil {
		t.Fatalf("handshake: %v / %v", c.err, s.err)
	}
	if err := s.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	_, err := s.conn.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a net.Error timeout", err)
	}
	if _, ok := err.(net.Error); !ok {
		t.Fatalf("timeout error %T is not a net.Error itself", err)
	}
	if err := s.conn.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.conn.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	n, err := io.ReadFull(s.conn, buf[:5])
	if err != nil || string(buf[:n]) != "after" {
		t.Fatalf("read after timeout: %q %v", buf[:n], err)
	}
}

// TestLowOrderEphemeralRejected: a hello with a valid MAC over a low-order
// ephemeral key (here u = 0 and u = 1) is rejected by both roles.
func TestLowOrderEphemeralRejected(t *testing.T) {
	app := testAppKey(11)
	serverKey := newKey(t)
	for _, u := range []byte{0, 1} {
		var eph [32]byte
		eph[0] = u
		m := hmac.New(sha512.New, app[:])
		m.Write(eph[:])
		hello := append(m.Sum(nil)[:32], eph[:]...)
		s, err := secretstream.NewServerHandshake(app, serverKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.VerifyHello(hello); !errors.Is(err, secretstream.ErrInvalidKey) {
			t.Errorf("server, u=%d: err = %v, want ErrInvalidKey", u, err)
		}
		c, err := secretstream.NewClientHandshake(app, newKey(t), pub(serverKey), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.VerifyChallenge(hello); !errors.Is(err, secretstream.ErrInvalidKey) {
			t.Errorf("client, u=%d: err = %v, want ErrInvalidKey", u, err)
		}
	}
}
