package muxrpc

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
)

// Request is a call made by the peer, as handed to a Handler.
type Request struct {
	// Method is the called name, e.g. {"createHistoryStream"}.
	Method Method
	// Type is TypeAsync for requests without the stream flag (whatever
	// their "type" field said), else TypeSource, TypeSink or TypeDuplex.
	Type CallType
	// Args is the raw JSON args array (at least "[]").
	Args json.RawMessage
	// Endpoint is the connection the call came in on, for calling back.
	Endpoint *Endpoint

	req      int32
	stream   *stream
	answered atomic.Bool
}

// RemoteKey is the caller's key (Options.RemoteKey of the endpoint).
func (r *Request) RemoteKey() ed25519.PublicKey { return r.Endpoint.RemoteKey() }

// ErrNoArg is returned by Request.Arg for a missing argument.
var ErrNoArg = errors.New("muxrpc: missing argument")

// Arg decodes argument i (0-based) of the args array into v.
func (r *Request) Arg(i int, v any) error {
	var args []json.RawMessage
	if err := json.Unmarshal(r.Args, &args); err != nil {
		return fmt.Errorf("muxrpc: %s args: %w", r.Method, err)
	}
	if i < 0 || i >= len(args) {
		return fmt.Errorf("muxrpc: %s argument %d: %w", r.Method, i, ErrNoArg)
	}
	if err := json.Unmarshal(args[i], v); err != nil {
		return fmt.Errorf("muxrpc: %s argument %d: %w", r.Method, i, err)
	}
	return nil
}

// Return answers an async call with v (encoded as by Sink.Write, except
// that an empty []byte goes out as JSON ""). Only the first reply counts.
func (r *Request) Return(v any) error {
	if r.stream != nil {
		return fmt.Errorf("muxrpc: Return on %s call %s", r.Type, r.Method)
	}
	flag, body, err := encodeValue(v)
	if err != nil {
		_ = r.Fail(err)
		return err
	}
	if len(body) == 0 {
		flag, body = FlagJSON, []byte(`""`)
	}
	if !r.answered.CompareAndSwap(false, true) {
		return errors.New("muxrpc: call already answered")
	}
	return r.Endpoint.w.send(nil, flag, -r.req, body, false, true)
}

// Fail answers an async call with an error reply, or ends our half of a
// stream with err. A *CallError keeps its name and message; other errors
// are sent as {"name":"Error","message":err.Error()}.
func (r *Request) Fail(err error) error {
	if err == nil {
		err = errors.New("unspecified error")
	}
	if r.stream != nil {
		return r.stream.sendEnd(err)
	}
	if !r.answered.CompareAndSwap(false, true) {
		return errors.New("muxrpc: call already answered")
	}
	return r.Endpoint.w.send(nil, FlagEnd|FlagJSON, -r.req, errorBody(err), false, false)
}

// Source returns the incoming half of a sink or duplex call (nil for
// async and source calls).
func (r *Request) Source() *Source {
	if r.stream == nil || r.stream.q == nil {
		return nil
	}
	return &Source{s: r.stream}
}

// Sink returns the outgoing half of a source or duplex call (nil for async
// calls). For sink calls it is returned too, but only Close/CloseWithError
// make sense on it.
func (r *Request) Sink() *Sink {
	if r.stream == nil {
		return nil
	}
	return &Sink{s: r.stream}
}

// finish runs after the handler returned.
func (r *Request) finish() {
	if r.stream == nil {
		if !r.answered.Load() {
			_ = r.Fail(fmt.Errorf("muxrpc: handler for %s returned without a reply", r.Method))
		}
		return
	}
	if r.stream.q != nil {
		r.stream.q.drop(ErrStreamClosed)
	}
	_ = r.stream.sendEnd(nil)
}
