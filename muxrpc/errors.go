package muxrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"
)

// Endpoint-level errors.
var (
	// ErrClosed is returned for calls and stream operations after the
	// endpoint was closed (locally, by goodbye, or by a connection error;
	// Endpoint.Err tells which).
	ErrClosed = errors.New("muxrpc: endpoint closed")
	// ErrStreamClosed is returned by Sink writes after this half of the
	// stream was ended, for example because the remote aborted it.
	ErrStreamClosed = errors.New("muxrpc: stream closed")
)

// StreamEndedError is returned by Sink writes after the peer ended the
// stream with an error: errors.Is(err, ErrStreamClosed) holds, and
// errors.As finds the peer's *CallError.
type StreamEndedError struct {
	Remote error // the peer's error, usually a *CallError
}

func (e *StreamEndedError) Error() string { return e.Remote.Error() }

// Unwrap returns the peer's error and ErrStreamClosed.
func (e *StreamEndedError) Unwrap() []error { return []error{e.Remote, ErrStreamClosed} }

// CallError is an error reported by the remote side of a call: an async
// error reply, or a stream ended with an error object. Its JSON form is the
// JS one, {"name":"Error","message":"...","stack":"..."}.
type CallError struct {
	Name    string `json:"name"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

func (e *CallError) Error() string {
	name := e.Name
	if name == "" {
		name = "Error"
	}
	return "muxrpc: remote " + name + ": " + e.Message
}

// NotAllowedError returns the error a JS peer gives for unknown or forbidden
// methods: "method:<parts joined by ,> is not in list of allowed methods".
// JS clients (ssb-ebt, ssb-room-client) match this text to detect a missing
// feature, so it must be exact.
// A name longer than MaxQuoted bytes is cut (see ShortArg), so that a
// peer cannot make us queue its own megabytes back to it.
func NotAllowedError(m Method) *CallError {
	return &CallError{Name: "Error", Message: "method:" + ShortArg(strings.Join(m, ",")) + " is not in list of allowed methods"}
}

// MaxQuoted is the most bytes of a peer's argument that an error message
// quotes (ShortArg). Every name and id of SSB fits (a feed id has 53
// bytes, a method name a few dozen).
const MaxQuoted = 100

// ShortArg returns s, or its first MaxQuoted bytes (cut on a UTF-8
// boundary) followed by "…" when it is longer. Error replies quote a peer's
// arguments through it.
func ShortArg(s string) string { return shorten(s, MaxQuoted) }

// MaxErrorMessage caps the message of every error reply we send, whatever
// the handler put in it (a safety net for handlers that quote a peer's
// argument without ShortArg).
const MaxErrorMessage = 1024

func shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// errorBody is the JSON body of an error reply for err. A *CallError in the
// chain keeps its name and message; anything else is sent as name "Error"
// with err.Error() as message.
func errorBody(err error) []byte {
	ce := &CallError{Name: "Error", Message: err.Error()}
	var remote *CallError
	if errors.As(err, &remote) {
		ce = &CallError{Name: remote.Name, Message: remote.Message}
		if ce.Name == "" {
			ce.Name = "Error"
		}
	}
	ce.Name = shorten(ce.Name, MaxQuoted)
	ce.Message = shorten(ce.Message, MaxErrorMessage)
	b, mErr := json.Marshal(ce)
	if mErr != nil { // cannot happen for two strings
		return []byte(`{"name":"Error","message":"unencodable error"}`)
	}
	return b
}

// bodyError interprets the body of an error reply or a stream end. It
// returns nil for a clean end: `true`, `null`, `{}` or any value that is not
// an object naming an error (some clients end streams with `{}`).
func bodyError(flag Flag, body []byte) error {
	if flag.Type() == FlagString {
		if len(body) == 0 {
			return nil
		}
		return &CallError{Name: "Error", Message: string(body)}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if flag.Type() == FlagJSON {
			var s string
			if json.Unmarshal(trimmed, &s) == nil && s != "" {
				return &CallError{Name: "Error", Message: s}
			}
		}
		return nil
	}
	var raw struct {
		Name    any `json:"name"`
		Message any `json:"message"`
		Stack   any `json:"stack"`
	}
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return &CallError{Name: "Error", Message: "unparsable error body: " + string(trimmed)}
	}
	if raw.Name == nil && raw.Message == nil {
		return nil
	}
	ce := &CallError{Name: anyString(raw.Name), Message: anyString(raw.Message), Stack: anyString(raw.Stack)}
	if ce.Name == "" {
		ce.Name = "Error"
	}
	return ce
}

func anyString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}
