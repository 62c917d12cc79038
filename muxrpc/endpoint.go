package muxrpc

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for Options fields left zero.
const (
	// DefaultMaxStreams is the default limit of concurrent inbound calls
	// (async and streams) per connection; further calls get an error reply.
	DefaultMaxStreams = 256
	// DefaultStreamQueueItems and DefaultStreamQueueBytes bound the packets
	// buffered for one incoming stream half that its consumer has not read.
	DefaultStreamQueueItems = 256
	DefaultStreamQueueBytes = 256 << 10
	// DefaultGoodbyeTimeout is how long Close waits for the goodbye packet to
	// be written before it closes the connection anyway.
	DefaultGoodbyeTimeout = time.Second
	// DefaultMaxQueuedBytes bounds the bytes queued for sending on one
	// connection (replies, stream items); see Options.MaxQueuedBytes.
	DefaultMaxQueuedBytes = 8 << 20
	// DefaultMaxHeldBytes bounds the bytes of the peer's packets that one
	// connection holds: the arguments of calls being handled and the items
	// queued for consumers; see Options.MaxHeldBytes.
	DefaultMaxHeldBytes = 16 << 20
	// DefaultWriteTimeout is how long the peer may take none of our bytes
	// while we have some to send before it is disconnected.
	DefaultWriteTimeout = time.Minute
	// DefaultPacketTimeout is how long the rest of a packet may take to
	// arrive once its header did.
	DefaultPacketTimeout = time.Minute
)

// Options configure an Endpoint. The zero value is usable.
type Options struct {
	// Logger receives connection-level events (disconnect reasons, handler
	// panics, dropped packets at debug level). Default: discard.
	Logger *slog.Logger
	// MaxPacketSize is the largest packet body accepted from the peer;
	// a larger header disconnects it. Default DefaultMaxPacketSize.
	MaxPacketSize int
	// MaxStreams limits concurrent inbound calls. Default DefaultMaxStreams.
	MaxStreams int
	// StreamQueueItems and StreamQueueBytes bound each incoming stream
	// queue. Defaults DefaultStreamQueueItems, DefaultStreamQueueBytes.
	StreamQueueItems int
	StreamQueueBytes int
	// GoodbyeTimeout bounds Close's attempt to send the goodbye.
	GoodbyeTimeout time.Duration
	// RemoteKey is the peer's authenticated ed25519 key (from the secret
	// handshake), or nil for a trusted local connection. Handlers read it
	// with Request.RemoteKey to tell the owner from other peers.
	RemoteKey ed25519.PublicKey
	// MaxQueuedBytes bounds the bytes queued for sending: stream items and
	// async replies wait while more are queued; ends and error replies
	// never wait, and a peer that lets twice as much pile up is
	// disconnected. Default DefaultMaxQueuedBytes.
	MaxQueuedBytes int
	// MaxHeldBytes bounds the bytes of the peer's packets held at once:
	// a call whose arguments do not fit is refused with an error, and
	// stream items wait in the kernel (reading pauses) until consumers
	// made room. Default DefaultMaxHeldBytes (at least twice
	// MaxPacketSize).
	MaxHeldBytes int
	// WriteTimeout disconnects a peer that takes none of our bytes for
	// this long while we have some to send (needs a connection with
	// SetWriteDeadline). Default DefaultWriteTimeout; negative disables.
	WriteTimeout time.Duration
	// PacketTimeout disconnects a peer that stalls in the middle of a
	// packet: the body must arrive within this time after its header
	// (needs SetReadDeadline). Default DefaultPacketTimeout; negative
	// disables.
	PacketTimeout time.Duration
	// IdleTimeout disconnects a peer that sends nothing at all for this
	// long (needs SetReadDeadline). JS peers send gossip.ping every few
	// minutes, so a silent JS peer is a dead one. Zero (the default)
	// disables it.
	IdleTimeout time.Duration
	// BodyBudget, when set, bounds the bytes of packet bodies being
	// received at once by all endpoints sharing it (see Budget).
	BodyBudget *Budget
}

// Handler answers calls made by the remote side. HandleCall runs in its own
// goroutine per call and owns the call until it returns: it replies with
// req.Return / req.Fail (async) or uses req.Source / req.Sink (streams).
// When it returns, an async call that got no reply is answered with an
// error, and an outgoing stream half that is still open is ended. ctx is
// cancelled when the connection ends, and for source calls also when the
// requester aborts. A panic is recovered and sent as an error reply.
type Handler interface {
	HandleCall(ctx context.Context, req *Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request)

// HandleCall calls f.
func (f HandlerFunc) HandleCall(ctx context.Context, req *Request) { f(ctx, req) }

// Endpoint is one side of a muxrpc connection. NewEndpoint starts its read
// loop; it runs until Close, a goodbye from the peer, a connection error, a
// protocol violation by the peer, or cancellation of the constructor's ctx.
// All methods are safe for concurrent use.
type Endpoint struct {
	conn   io.ReadWriteCloser
	h      Handler
	opts   Options
	log    *slog.Logger
	w      *writer
	ctx    context.Context // parent of handler contexts, cancelled at shutdown
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	nextReq int32
	calls   map[int32]*asyncCall // our async calls, by our request number
	out     map[int32]*stream    // streams we started, by our request number
	in      map[int32]*stream    // streams the peer started, by its number
	active  atomic.Int32         // inbound calls being handled
	// held counts the bytes of the peer's packets we hold: arguments of
	// calls being handled and items in stream queues. heldFreed wakes the
	// read loop when it waits for room.
	held      atomic.Int64
	heldFreed chan struct{}
	stopCtx   func() bool // unregisters the constructor ctx's AfterFunc

	closeOnce sync.Once
	err       error         // why it ended; nil for a clean close; set before done closes
	done      chan struct{} // closed at shutdown
	readDone  chan struct{} // closed when the read loop has returned
}

type asyncCall struct {
	ch chan Packet // capacity 1
}

// NewEndpoint starts a muxrpc endpoint on conn, answering the peer's calls
// with h (nil: every call is refused as "not in list of allowed methods").
// The endpoint owns conn and closes it when it ends. When ctx is done the
// endpoint closes as with Close; ctx is also the parent of the contexts
// handed to handlers.
func NewEndpoint(ctx context.Context, conn io.ReadWriteCloser, h Handler, opts Options) *Endpoint {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxPacketSize <= 0 {
		opts.MaxPacketSize = DefaultMaxPacketSize
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	if opts.StreamQueueItems <= 0 {
		opts.StreamQueueItems = DefaultStreamQueueItems
	}
	if opts.StreamQueueBytes <= 0 {
		opts.StreamQueueBytes = DefaultStreamQueueBytes
	}
	if opts.GoodbyeTimeout <= 0 {
		opts.GoodbyeTimeout = DefaultGoodbyeTimeout
	}
	if opts.MaxQueuedBytes <= 0 {
		opts.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if opts.MaxHeldBytes <= 0 {
		opts.MaxHeldBytes = max(DefaultMaxHeldBytes, 2*opts.MaxPacketSize)
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.PacketTimeout == 0 {
		opts.PacketTimeout = DefaultPacketTimeout
	}
	if h == nil {
		h = HandlerFunc(func(_ context.Context, req *Request) { _ = req.Fail(NotAllowedError(req.Method)) })
	}
	e := &Endpoint{
		conn:      conn,
		h:         h,
		opts:      opts,
		log:       opts.Logger,
		calls:     make(map[int32]*asyncCall),
		out:       make(map[int32]*stream),
		in:        make(map[int32]*stream),
		done:      make(chan struct{}),
		readDone:  make(chan struct{}),
		heldFreed: make(chan struct{}, 1),
	}
	e.ctx, e.cancel = context.WithCancel(ctx)
	e.w = newWriter(conn, opts.MaxQueuedBytes, opts.WriteTimeout, func(err error) { go e.shutdown(err, false) })
	stop := context.AfterFunc(ctx, func() { _ = e.Close() })
	e.mu.Lock()
	e.stopCtx = stop
	e.mu.Unlock()
	go e.w.flushLoop(e.done)
	go e.readLoop()
	return e
}

// RemoteKey returns Options.RemoteKey.
func (e *Endpoint) RemoteKey() ed25519.PublicKey { return e.opts.RemoteKey }

// Done is closed when the endpoint has ended.
func (e *Endpoint) Done() <-chan struct{} { return e.done }

// Context is cancelled when the endpoint ends, just before Done is closed.
// context.AfterFunc on it runs cleanup at the end without a goroutine
// waiting for it (what an idle connection costs counts).
func (e *Endpoint) Context() context.Context { return e.ctx }

// Err returns why the endpoint ended: nil while it runs and after a clean
// end (Close, or a goodbye from the peer), otherwise the connection or
// protocol error.
func (e *Endpoint) Err() error {
	select {
	case <-e.done:
		return e.err
	default:
		return nil
	}
}

// Close sends the goodbye packet (giving up after Options.GoodbyeTimeout),
// fails all pending calls and open streams with ErrClosed, cancels handler
// contexts and closes the connection. It waits for the read loop to stop,
// not for handlers to return. Closing twice is harmless.
func (e *Endpoint) Close() error {
	e.shutdown(nil, true)
	<-e.readDone
	return nil
}

// shutdown ends the endpoint once; cause nil means a clean end.
func (e *Endpoint) shutdown(cause error, sayGoodbye bool) {
	e.closeOnce.Do(func() {
		if cause != nil {
			e.log.Warn("muxrpc: connection ended", "err", cause)
		}
		e.mu.Lock()
		e.closed = true
		out, in := e.out, e.in
		e.calls, e.out, e.in = nil, nil, nil
		stopCtx := e.stopCtx
		e.mu.Unlock()

		if sayGoodbye {
			sent := make(chan struct{})
			go func() {
				if err := e.w.goodbye(ErrClosed); err != nil {
					e.log.Debug("muxrpc: goodbye not sent", "err", err)
				}
				close(sent)
			}()
			t := time.NewTimer(e.opts.GoodbyeTimeout)
			select {
			case <-sent:
			case <-t.C:
			}
			t.Stop()
		}
		if err := e.conn.Close(); err != nil {
			e.log.Debug("muxrpc: close connection", "err", err)
		}
		e.err = cause
		if stopCtx != nil {
			stopCtx()
		}
		e.cancel()
		close(e.done)
		go e.w.stop(ErrClosed) // may wait for a writer blocked on the closed conn

		endErr := ErrClosed
		if cause != nil {
			endErr = fmt.Errorf("%w: %w", ErrClosed, cause)
		}
		for _, s := range out {
			s.connDied(endErr)
		}
		for _, s := range in {
			s.connDied(endErr)
		}
	})
}

// closedErr is the error for operations after shutdown.
func (e *Endpoint) closedErr() error {
	<-e.done
	if e.err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, e.err)
	}
	return ErrClosed
}

func (e *Endpoint) readLoop() {
	defer close(e.readDone)
	cr := newConnReader(e.conn, e.opts.MaxPacketSize, e.opts.IdleTimeout, e.opts.PacketTimeout)
	cr.budget, cr.done = e.opts.BodyBudget, e.done
	defer cr.release()
	for {
		p, err := cr.readPacket()
		if err != nil {
			select {
			case <-e.done: // closed locally; the read error is a consequence
				return
			default:
			}
			switch {
			case errors.Is(err, ErrGoodbye):
				e.shutdown(nil, true)
			case errors.Is(err, io.EOF):
				e.shutdown(errors.New("muxrpc: peer closed the connection without goodbye"), false)
			default:
				e.shutdown(fmt.Errorf("muxrpc: disconnecting peer: %w", err), false)
			}
			return
		}
		e.dispatch(p)
	}
}

func (e *Endpoint) dispatch(p Packet) {
	switch {
	case p.Req == 0 || p.Req == math.MinInt32:
		e.log.Debug("muxrpc: dropping packet without usable request number", "req", p.Req)
	case p.Req < 0:
		e.handleReply(p)
	default:
		e.mu.Lock()
		s := e.in[p.Req]
		e.mu.Unlock()
		switch {
		case s != nil:
			s.deliver(p)
		case p.Flag.IsEnd():
			// end of a stream we already forgot (or rejected): drop
		default:
			e.handleRequest(p)
		}
	}
}

func (e *Endpoint) handleReply(p Packet) {
	id := -p.Req
	e.mu.Lock()
	if c, ok := e.calls[id]; ok {
		delete(e.calls, id)
		e.mu.Unlock()
		c.ch <- p
		return
	}
	s := e.out[id]
	e.mu.Unlock()
	if s == nil {
		e.log.Debug("muxrpc: dropping packet for unknown call", "req", p.Req, "flag", p.Flag)
		return
	}
	s.deliver(p)
}

// wireRequest is the JSON body of a request packet.
type wireRequest struct {
	Name Method          `json:"name"`
	Type CallType        `json:"type,omitempty"`
	Args json.RawMessage `json:"args"`
}

func parseRequest(p Packet) (*wireRequest, CallType, error) {
	if p.Flag.Type() != FlagJSON {
		return nil, "", fmt.Errorf("invalid request: body type %s, want json", p.Flag)
	}
	var wr wireRequest
	if err := json.Unmarshal(p.Body, &wr); err != nil {
		return nil, "", fmt.Errorf("invalid request: %w", err)
	}
	if len(wr.Name) == 0 {
		return nil, "", errors.New("invalid request: missing name")
	}
	args := bytes.TrimSpace(wr.Args)
	switch {
	case len(args) == 0 || bytes.Equal(args, []byte("null")):
		wr.Args = json.RawMessage("[]")
	case args[0] != '[':
		return &wr, "", errors.New("invalid request, args should be array")
	default:
		wr.Args = args
	}
	typ := TypeAsync
	if p.Flag.IsStream() {
		typ = wr.Type
		if !typ.IsStream() {
			return &wr, "", fmt.Errorf("invalid request: stream type %q, want source, sink or duplex", ShortArg(string(wr.Type)))
		}
	}
	return &wr, typ, nil
}

func (e *Endpoint) handleRequest(p Packet) {
	wr, typ, err := parseRequest(p)
	if err == nil && int(e.active.Load()) >= e.opts.MaxStreams {
		err = errors.New("muxrpc: too many concurrent calls (limit " + strconv.Itoa(e.opts.MaxStreams) + ")")
	}
	size := int64(len(p.Body))
	if err == nil && e.held.Load()+size > int64(e.opts.MaxHeldBytes) {
		err = errors.New("muxrpc: too many bytes held for this connection's calls (limit " + strconv.Itoa(e.opts.MaxHeldBytes) + ")")
	}
	if err != nil {
		name := "?"
		if wr != nil {
			name = ShortArg(wr.Name.String())
		}
		e.log.Debug("muxrpc: refusing request", "req", p.Req, "name", name, "err", err)
		e.refuse(p, err)
		return
	}
	req := &Request{Method: wr.Name, Type: typ, Args: wr.Args, Endpoint: e, req: p.Req}
	ctx, cancel := context.WithCancel(e.ctx)
	if typ.IsStream() {
		s := e.newStream(p.Req, -p.Req, true, typ)
		s.cancel = cancel
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			cancel()
			return
		}
		e.in[p.Req] = s
		e.mu.Unlock()
		req.stream = s
	}
	e.active.Add(1)
	e.held.Add(size)
	go e.serve(ctx, cancel, req, size)
}

// release returns n held bytes and wakes the read loop if it waits for
// room.
func (e *Endpoint) release(n int64) {
	if n != 0 {
		e.held.Add(-n)
		signal(e.heldFreed)
	}
}

// refuse answers a request that will not reach a handler. For streams it
// keeps a placeholder so data the peer sends before it sees the error is
// dropped instead of being read as new requests.
func (e *Endpoint) refuse(p Packet, err error) {
	if !p.Flag.IsStream() {
		_ = e.w.send(nil, FlagEnd|FlagJSON, -p.Req, errorBody(err), false, false)
		return
	}
	s := e.newStream(p.Req, -p.Req, true, TypeSource)
	s.q = nil
	e.mu.Lock()
	if !e.closed && len(e.in) < 2*e.opts.MaxStreams {
		e.in[p.Req] = s
	}
	e.mu.Unlock()
	_ = s.sendEnd(err)
}

func (e *Endpoint) serve(ctx context.Context, cancel context.CancelFunc, req *Request, size int64) {
	defer e.release(size)
	defer e.active.Add(-1)
	defer cancel()
	defer req.finish()
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("muxrpc: handler panicked", "method", req.Method.String(), "panic", r)
			_ = req.Fail(fmt.Errorf("muxrpc: handler for %s panicked: %v", req.Method, r))
		}
	}()
	e.h.HandleCall(ctx, req)
}

// register assigns the next request number to a call or stream.
func (e *Endpoint) register(c *asyncCall, s *stream) (int32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return 0, ErrClosed
	}
	if e.nextReq == math.MaxInt32 {
		return 0, errors.New("muxrpc: request numbers exhausted on this connection")
	}
	e.nextReq++
	n := e.nextReq
	if c != nil {
		e.calls[n] = c
	}
	if s != nil {
		s.id, s.wire = n, n
		e.out[n] = s
	}
	return n, nil
}

func (e *Endpoint) forgetCall(n int32) {
	e.mu.Lock()
	delete(e.calls, n)
	e.mu.Unlock()
}

func requestBody(method Method, typ CallType, args []any) ([]byte, error) {
	if len(method) == 0 {
		return nil, errors.New("muxrpc: empty method name")
	}
	if args == nil {
		args = []any{}
	}
	body, err := json.Marshal(struct {
		Name Method   `json:"name"`
		Type CallType `json:"type"`
		Args []any    `json:"args"`
	}{method, typ, args})
	if err != nil {
		return nil, fmt.Errorf("muxrpc: encode %s request for %s: %w", typ, method, err)
	}
	return body, nil
}

// Async calls an async (or sync) method and decodes the reply into out:
// nil discards it, *json.RawMessage and *[]byte take the body as is,
// *string takes a string reply (type 1) or a JSON string, *Packet the
// whole packet, and anything else is a json.Unmarshal target. A remote
// error is returned as *CallError. ctx bounds the wait; a late reply is
// dropped.
func (e *Endpoint) Async(ctx context.Context, out any, method Method, args ...any) error {
	body, err := requestBody(method, TypeAsync, args)
	if err != nil {
		return err
	}
	c := &asyncCall{ch: make(chan Packet, 1)}
	n, err := e.register(c, nil)
	if err != nil {
		return fmt.Errorf("muxrpc: call %s: %w", method, e.closedErr())
	}
	if err := e.w.send(nil, FlagJSON, n, body, false, true); err != nil {
		e.forgetCall(n)
		return fmt.Errorf("muxrpc: call %s: %w", method, err)
	}
	select {
	case p := <-c.ch:
		if p.Flag.IsEnd() {
			if err := bodyError(p.Flag, p.Body); err != nil {
				return fmt.Errorf("muxrpc: call %s: %w", method, err)
			}
			return fmt.Errorf("muxrpc: call %s: %w", method, &CallError{Name: "Error", Message: "error reply without message: " + string(p.Body)})
		}
		if err := decodeValue(out, p); err != nil {
			return fmt.Errorf("muxrpc: call %s: decode reply: %w", method, err)
		}
		return nil
	case <-ctx.Done():
		e.forgetCall(n)
		return fmt.Errorf("muxrpc: call %s: %w", method, context.Cause(ctx))
	case <-e.done:
		return fmt.Errorf("muxrpc: call %s: %w", method, e.closedErr())
	}
}

// Source starts a source call and returns the stream of its items. The
// stream is aborted (our end sent, queued items dropped) when ctx is done or
// Source.Close is called.
func (e *Endpoint) Source(ctx context.Context, method Method, args ...any) (*Source, error) {
	s, err := e.startStream(ctx, method, TypeSource, args)
	if err != nil {
		return nil, err
	}
	return &Source{s: s}, nil
}

// Sink starts a sink call. Write items to the returned Sink; its Close
// sends our end and waits for the remote's end (and its error, if any).
// ctx done aborts the call.
func (e *Endpoint) Sink(ctx context.Context, method Method, args ...any) (*Sink, error) {
	s, err := e.startStream(ctx, method, TypeSink, args)
	if err != nil {
		return nil, err
	}
	return &Sink{s: s, ctx: ctx}, nil
}

// Duplex starts a duplex call. Closing the Sink ends our half; closing the
// Source aborts the whole stream. ctx done aborts the call.
func (e *Endpoint) Duplex(ctx context.Context, method Method, args ...any) (*Source, *Sink, error) {
	s, err := e.startStream(ctx, method, TypeDuplex, args)
	if err != nil {
		return nil, nil, err
	}
	return &Source{s: s}, &Sink{s: s, ctx: ctx}, nil
}

func (e *Endpoint) startStream(ctx context.Context, method Method, typ CallType, args []any) (*stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("muxrpc: call %s: %w", method, context.Cause(ctx))
	}
	body, err := requestBody(method, typ, args)
	if err != nil {
		return nil, err
	}
	s := e.newStream(0, 0, false, typ)
	if _, err := e.register(nil, s); err != nil {
		return nil, fmt.Errorf("muxrpc: call %s: %w", method, e.closedErr())
	}
	if err := e.w.send(nil, FlagStream|FlagJSON, s.wire, body, false, true); err != nil {
		e.removeStream(s)
		return nil, fmt.Errorf("muxrpc: call %s: %w", method, err)
	}
	s.setStopAbort(context.AfterFunc(ctx, func() { s.abort(context.Cause(ctx)) }))
	return s, nil
}

func (e *Endpoint) removeStream(s *stream) {
	e.mu.Lock()
	m := e.out
	if s.inbound {
		m = e.in
	}
	if m != nil && m[s.id] == s {
		delete(m, s.id)
	}
	e.mu.Unlock()
	s.release()
}
