package muxrpc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// pipePair connects two endpoints over net.Pipe.
func pipePair(t testing.TB, ha, hb Handler, oa, ob Options) (*Endpoint, *Endpoint) {
	t.Helper()
	ca, cb := net.Pipe()
	ctx := context.Background()
	a := NewEndpoint(ctx, ca, ha, oa)
	b := NewEndpoint(ctx, cb, hb, ob)
	t.Cleanup(func() {
		_ = a.Close()
		_ = b.Close()
	})
	return a, b
}

// tcpPair connects two endpoints over a 127.0.0.1 TCP connection.
func tcpPair(t testing.TB, ha, hb Handler, oa, ob Options) (*Endpoint, *Endpoint) {
	t.Helper()
	ca, cb := tcpConns(t)
	ctx := context.Background()
	a := NewEndpoint(ctx, ca, ha, oa)
	b := NewEndpoint(ctx, cb, hb, ob)
	t.Cleanup(func() {
		_ = a.Close()
		_ = b.Close()
	})
	return a, b
}

func tcpConns(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- c
	}()
	ca, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cb := <-acc
	if cb == nil {
		t.Fatal("accept failed")
	}
	return ca, cb
}

// rawPeer speaks packets by hand to an Endpoint.
type rawPeer struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func newRawPeer(t testing.TB, h Handler, opts Options) (*rawPeer, *Endpoint) {
	t.Helper()
	ca, cb := net.Pipe()
	e := NewEndpoint(context.Background(), cb, h, opts)
	t.Cleanup(func() {
		_ = e.Close()
		_ = ca.Close()
	})
	return &rawPeer{t: t, conn: ca, r: bufio.NewReader(ca)}, e
}

func (p *rawPeer) send(flag Flag, req int32, body string) {
	p.t.Helper()
	b := AppendHeader(nil, flag, uint32(len(body)), req)
	b = append(b, body...)
	_ = p.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatalf("raw send: %v", err)
	}
}

func (p *rawPeer) sendBytes(b []byte) error {
	_ = p.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := p.conn.Write(b)
	return err
}

func (p *rawPeer) recv() Packet {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	pkt, err := ReadPacket(p.r, nil, 0)
	if err != nil {
		p.t.Fatalf("raw recv: %v", err)
	}
	return pkt
}

func (p *rawPeer) recvErr() (Packet, error) {
	_ = p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	return ReadPacket(p.r, nil, 0)
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (e *Endpoint) streamCounts() (out, in, calls int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.out), len(e.in), len(e.calls)
}

// testMux has the methods most tests use.
func testMux() *Mux {
	m := NewMux()
	m.RegisterAsync(Method{"echo"}, func(ctx context.Context, req *Request) (any, error) {
		var args []json.RawMessage
		if err := json.Unmarshal(req.Args, &args); err != nil {
			return nil, err
		}
		if len(args) == 0 {
			return nil, nil
		}
		return args[0], nil
	})
	m.RegisterAsync(Method{"fail"}, func(ctx context.Context, req *Request) (any, error) {
		return nil, &CallError{Name: "TypeError", Message: "this went wrong"}
	})
	m.RegisterAsync(Method{"text"}, func(ctx context.Context, req *Request) (any, error) {
		var s string
		if err := req.Arg(0, &s); err != nil {
			return nil, err
		}
		return s, nil
	})
	m.RegisterAsync(Method{"bytes"}, func(ctx context.Context, req *Request) (any, error) {
		return []byte{1, 2, 3}, nil
	})
	m.RegisterAsync(Method{"block"}, func(ctx context.Context, req *Request) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	m.RegisterAsync(Method{"panic"}, func(ctx context.Context, req *Request) (any, error) {
		panic("kaboom")
	})
	m.RegisterSource(Method{"count"}, func(ctx context.Context, req *Request, out *Sink) error {
		var n int
		if err := req.Arg(0, &n); err != nil {
			return err
		}
		for i := 1; i <= n; i++ {
			if err := out.Write(map[string]int{"seq": i}); err != nil {
				return err
			}
		}
		return nil
	})
	m.RegisterSource(Method{"countThenFail"}, func(ctx context.Context, req *Request, out *Sink) error {
		for i := 1; i <= 3; i++ {
			if err := out.Write(i); err != nil {
				return err
			}
		}
		return errors.New("source broke")
	})
	m.RegisterSink(Method{"sum"}, func(ctx context.Context, req *Request, in *Source) error {
		total := 0
		for {
			var v int
			err := in.Decode(ctx, &v)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			total += v
		}
		if total < 0 {
			return fmt.Errorf("negative total %d", total)
		}
		return nil
	})
	m.RegisterDuplex(Method{"dup", "echo"}, func(ctx context.Context, req *Request, in *Source, out *Sink) error {
		for {
			p, err := in.NextPacket(ctx)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := out.WriteRaw(p.Flag.Type(), p.Body); err != nil {
				return err
			}
		}
	})
	return m
}

func newBufReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 64<<10) }
