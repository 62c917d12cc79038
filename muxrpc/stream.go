package muxrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"
	"sync/atomic"
)

// stream is the shared state of one source/sink/duplex call, on either
// side. Each side sends exactly one end packet per stream; the stream is
// forgotten when both ends have been seen.
type stream struct {
	e       *Endpoint
	id      int32 // key in e.in (inbound) or e.out
	wire    int32 // request number on the packets we send
	inbound bool  // the peer started it
	typ     CallType
	q       *queue // incoming half; nil when we take no data (inbound source, outbound sink)

	sentEnd atomic.Bool // set under the writer lock
	gotEnd  atomic.Bool
	// remoteEnd is closed when the peer's end arrived; remoteErr is its error.
	remoteEnd chan struct{}
	remoteErr error

	cancel context.CancelFunc // inbound: the handler's context

	stopMu    sync.Mutex
	stopAbort func() bool // outbound: unregisters the ctx AfterFunc
	forgotten bool
}

// setStopAbort records the function that unregisters the call ctx's
// AfterFunc; if the stream is already forgotten it runs it at once.
func (s *stream) setStopAbort(f func() bool) {
	s.stopMu.Lock()
	if s.forgotten {
		s.stopMu.Unlock()
		f()
		return
	}
	s.stopAbort = f
	s.stopMu.Unlock()
}

// release unregisters the ctx AfterFunc (the stream is done with).
func (s *stream) release() {
	s.stopMu.Lock()
	s.forgotten = true
	f := s.stopAbort
	s.stopAbort = nil
	s.stopMu.Unlock()
	if f != nil {
		f()
	}
}

func (e *Endpoint) newStream(id, wire int32, inbound bool, typ CallType) *stream {
	s := &stream{e: e, id: id, wire: wire, inbound: inbound, typ: typ, remoteEnd: make(chan struct{})}
	takesData := typ == TypeDuplex || (inbound && typ == TypeSink) || (!inbound && typ == TypeSource)
	if takesData {
		s.q = newQueue(e.opts.StreamQueueItems, e.opts.StreamQueueBytes, e)
	}
	return s
}

// deliver handles a packet from the peer for this stream (read loop only).
func (s *stream) deliver(p Packet) {
	if !p.Flag.IsEnd() {
		if s.q == nil || s.gotEnd.Load() {
			return
		}
		if !s.q.push(p, s.e.done) {
			return
		}
		return
	}
	if s.gotEnd.Swap(true) {
		return // duplicate end
	}
	s.remoteErr = bodyError(p.Flag, p.Body)
	close(s.remoteEnd)
	if s.q != nil {
		s.q.finish(s.remoteErr)
	}
	switch {
	case !s.inbound:
		// Our own call: answer the peer's end at once.
		_ = s.sendEnd(nil)
	case s.typ == TypeSource:
		// The requester aborted (or acknowledged our end): stop the producer.
		if s.cancel != nil {
			s.cancel()
		}
		_ = s.sendEnd(nil)
	default:
		// Inbound sink/duplex: the handler sees the end on its Source and
		// our end goes out when it returns.
	}
	s.maybeForget()
}

// sendEnd sends our end packet (true, or err as error object) once.
func (s *stream) sendEnd(err error) error {
	body := []byte("true")
	if err != nil {
		body = errorBody(err)
	}
	if werr := s.e.w.send(s, FlagStream|FlagEnd|FlagJSON, s.wire, body, true, false); werr != nil {
		return werr
	}
	s.maybeForget()
	return nil
}

func (s *stream) maybeForget() {
	if s.sentEnd.Load() && s.gotEnd.Load() {
		s.e.removeStream(s)
	}
}

// abort ends the stream from our side without waiting: queued and later
// incoming data is dropped and our end is sent.
func (s *stream) abort(cause error) {
	if cause == nil {
		cause = ErrStreamClosed
	}
	if s.q != nil {
		s.q.drop(cause)
	}
	_ = s.sendEnd(nil)
}

// connDied fails the stream after the connection ended.
func (s *stream) connDied(err error) {
	if s.q != nil {
		s.q.finish(err)
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.release()
}

// Source is the incoming half of a stream: the items of a source or duplex
// call we made, or the data of a sink or duplex call the peer made. It has
// a single consumer.
type Source struct {
	s *stream
}

// NextPacket returns the next data packet. At the end it returns io.EOF
// (clean end), a *CallError (the peer ended with an error), ErrClosed
// (wrapped; the connection ended) or ctx's error.
func (src *Source) NextPacket(ctx context.Context) (Packet, error) {
	return src.s.q.pop(ctx)
}

// Next returns the next item's body (JSON, UTF-8 text or bytes as sent).
func (src *Source) Next(ctx context.Context) ([]byte, error) {
	p, err := src.s.q.pop(ctx)
	return p.Body, err
}

// Decode reads the next item into v, with the rules of Endpoint.Async.
func (src *Source) Decode(ctx context.Context, v any) error {
	p, err := src.s.q.pop(ctx)
	if err != nil {
		return err
	}
	return decodeValue(v, p)
}

// All iterates over the item bodies until the end; a clean end stops the
// iteration without an error, any other end is yielded once. Breaking out
// of the loop aborts the stream.
func (src *Source) All(ctx context.Context) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for {
			p, err := src.s.q.pop(ctx)
			if err != nil {
				if !isEOF(err) {
					yield(nil, err)
				}
				return
			}
			if !yield(p.Body, nil) {
				_ = src.Close()
				return
			}
		}
	}
}

// Close stops reading: queued and later items are dropped and Next then
// returns ErrStreamClosed. On a call we made it aborts the stream (our end
// is sent if not yet; for a duplex this also ends our outgoing half). On a
// sink or duplex call the peer made it only stops the incoming data: our
// end still goes out when the handler returns, with the handler's error if
// any, so that the peer learns why the call failed.
func (src *Source) Close() error {
	s := src.s
	if s.inbound {
		if s.q != nil {
			s.q.drop(ErrStreamClosed)
		}
		return nil
	}
	s.abort(ErrStreamClosed)
	return nil
}

// Sink is the outgoing half of a stream: the data of a sink or duplex call
// we made, or the items of a source or duplex call the peer made.
type Sink struct {
	s   *stream
	ctx context.Context // outbound sink calls: bounds Close's wait
}

// Write sends one item: []byte as binary, string as UTF-8 text (an empty
// string as JSON ""), json.RawMessage as is, anything else as JSON. An
// empty []byte is skipped (a zero-length packet would read as goodbye).
// After our end was sent (Close, or the peer aborted) it returns
// ErrStreamClosed. Write blocks while the connection does not take data.
func (snk *Sink) Write(v any) error {
	flag, body, err := encodeValue(v)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		if snk.s.sentEnd.Load() {
			return ErrStreamClosed
		}
		return nil
	}
	return snk.s.writeErr(snk.s.e.w.send(snk.s, FlagStream|flag, snk.s.wire, body, false, true))
}

// writeErr turns ErrStreamClosed from a write into the peer's error when
// the peer ended the stream with one: a sink or duplex call that the
// server ends early reports why, not just that the stream is closed.
func (s *stream) writeErr(err error) error {
	if err == nil || !errors.Is(err, ErrStreamClosed) {
		return err
	}
	select {
	case <-s.remoteEnd:
		if s.remoteErr != nil {
			return &StreamEndedError{Remote: s.remoteErr}
		}
	default:
	}
	return err
}

// WriteRaw sends one item with the given body type (FlagBinary, FlagString
// or FlagJSON). An empty body is skipped for binary, sent as JSON "" for
// strings and refused for JSON.
func (snk *Sink) WriteRaw(typ Flag, body []byte) error {
	typ = typ.Type()
	if len(body) == 0 {
		switch typ {
		case FlagBinary:
			return nil
		case FlagString:
			typ, body = FlagJSON, []byte(`""`)
		default:
			return errors.New("muxrpc: empty JSON body")
		}
	}
	return snk.s.writeErr(snk.s.e.w.send(snk.s, FlagStream|typ, snk.s.wire, body, false, true))
}

// WriteRawAll sends one item per body, all of type typ (FlagBinary,
// FlagString or FlagJSON), queued together so that they leave in one
// write of the connection: a batch of small items costs one syscall, not
// one each. Empty bodies are refused.
func (snk *Sink) WriteRawAll(typ Flag, bodies [][]byte) error {
	return snk.s.writeErr(snk.s.e.w.sendAll(snk.s, FlagStream|typ.Type(), snk.s.wire, bodies, false, true))
}

// Close ends our outgoing half with `true`. For a sink call we made it
// then waits for the peer's end and returns its error, if any.
func (snk *Sink) Close() error {
	return snk.close(nil)
}

// CloseWithError ends our outgoing half with err as the error object.
func (snk *Sink) CloseWithError(err error) error {
	if err == nil {
		err = errors.New("unspecified error")
	}
	return snk.close(err)
}

func (snk *Sink) close(err error) error {
	s := snk.s
	if serr := s.sendEnd(err); serr != nil && !errors.Is(serr, ErrStreamClosed) {
		return serr
	}
	if s.inbound || s.typ != TypeSink {
		return nil
	}
	ctx := snk.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case <-s.remoteEnd:
		return s.remoteErr
	case <-s.e.done:
		return s.e.closedErr()
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Done is closed when the peer has ended its half of the stream (for a
// source call the peer made: when the requester aborted or acknowledged).
func (snk *Sink) Done() <-chan struct{} { return snk.s.remoteEnd }

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// encodeValue picks the body type for a Go value the way the JS encoder
// does: bytes → binary, strings → text, everything else → JSON.
func encodeValue(v any) (Flag, []byte, error) {
	switch x := v.(type) {
	case nil:
		return FlagJSON, []byte("null"), nil
	case json.RawMessage:
		if len(x) == 0 {
			return FlagJSON, []byte("null"), nil
		}
		return FlagJSON, x, nil
	case []byte:
		return FlagBinary, x, nil
	case string:
		if x == "" {
			return FlagJSON, []byte(`""`), nil
		}
		return FlagString, []byte(x), nil
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return 0, nil, fmt.Errorf("muxrpc: encode %T: %w", v, err)
		}
		return FlagJSON, b, nil
	}
}

// decodeValue stores a received body into out (see Endpoint.Async).
func decodeValue(out any, p Packet) error {
	switch o := out.(type) {
	case nil:
		return nil
	case *Packet:
		*o = p
		return nil
	case *[]byte:
		*o = p.Body
		return nil
	case *json.RawMessage:
		switch p.Flag.Type() {
		case FlagJSON:
			*o = p.Body
			return nil
		case FlagString:
			b, err := json.Marshal(string(p.Body))
			*o = b
			return err
		default:
			b, err := json.Marshal(p.Body)
			*o = b
			return err
		}
	case *string:
		if p.Flag.Type() == FlagJSON {
			return json.Unmarshal(p.Body, o)
		}
		*o = string(p.Body)
		return nil
	default:
		switch p.Flag.Type() {
		case FlagJSON:
			return json.Unmarshal(p.Body, out)
		case FlagString:
			b, err := json.Marshal(string(p.Body))
			if err != nil {
				return err
			}
			return json.Unmarshal(b, out)
		default:
			b, err := json.Marshal(p.Body)
			if err != nil {
				return err
			}
			return json.Unmarshal(b, out)
		}
	}
}
