package muxrpc

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Function shapes for Mux registrations. A stream function owns its stream
// until it returns; returning nil ends our half with `true`, an error ends
// it with that error.
type (
	AsyncFunc  func(ctx context.Context, req *Request) (any, error)
	SourceFunc func(ctx context.Context, req *Request, out *Sink) error
	SinkFunc   func(ctx context.Context, req *Request, in *Source) error
	DuplexFunc func(ctx context.Context, req *Request, in *Source, out *Sink) error
)

type muxEntry struct {
	typ    CallType // manifest type (TypeSync for sync)
	async  AsyncFunc
	source SourceFunc
	sink   SinkFunc
	duplex DuplexFunc
}

// Mux is a Handler that dispatches calls by method name and type, answers
// `manifest` itself, and refuses unknown or disallowed methods with the JS
// error text (see NotAllowedError). Register methods before serving.
type Mux struct {
	// Allow, when set, is asked before each call except `manifest`; false
	// refuses the call like an unknown method. Use req.RemoteKey to tell
	// the owner from other peers. Set it before serving.
	Allow func(ctx context.Context, req *Request) bool

	mu      sync.RWMutex
	entries map[string]muxEntry
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{entries: make(map[string]muxEntry)} }

func muxKey(m Method) string { return strings.Join(m, "\x00") }

func (m *Mux) register(method Method, e muxEntry) {
	if len(method) == 0 {
		panic("muxrpc: Mux.Register with empty method")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries == nil {
		m.entries = make(map[string]muxEntry)
	}
	m.entries[muxKey(method)] = e
}

// RegisterAsync registers an async method.
func (m *Mux) RegisterAsync(method Method, f AsyncFunc) {
	m.register(method, muxEntry{typ: TypeAsync, async: f})
}

// RegisterSync registers a method listed as "sync" in the manifest; on the
// wire it is called like an async one.
func (m *Mux) RegisterSync(method Method, f AsyncFunc) {
	m.register(method, muxEntry{typ: TypeSync, async: f})
}

// RegisterSource registers a source method.
func (m *Mux) RegisterSource(method Method, f SourceFunc) {
	m.register(method, muxEntry{typ: TypeSource, source: f})
}

// RegisterSink registers a sink method.
func (m *Mux) RegisterSink(method Method, f SinkFunc) {
	m.register(method, muxEntry{typ: TypeSink, sink: f})
}

// RegisterDuplex registers a duplex method.
func (m *Mux) RegisterDuplex(method Method, f DuplexFunc) {
	m.register(method, muxEntry{typ: TypeDuplex, duplex: f})
}

// Manifest returns the method tree with type strings as leaves, e.g.
// {"manifest":"sync","whoami":"async","ebt":{"replicate":"duplex"}}.
// A method that is also a namespace (a.b registered next to a) keeps the
// namespace.
func (m *Mux) Manifest() map[string]any {
	m.mu.RLock()
	defer m.mu.RUnlock()
	root := map[string]any{"manifest": string(TypeSync)}
	for k, e := range m.entries {
		parts := strings.Split(k, "\x00")
		node := root
		for _, p := range parts[:len(parts)-1] {
			child, ok := node[p].(map[string]any)
			if !ok {
				child = map[string]any{}
				node[p] = child
			}
			node = child
		}
		last := parts[len(parts)-1]
		if _, isNS := node[last].(map[string]any); !isNS {
			node[last] = string(e.typ)
		}
	}
	return root
}

// HandleCall implements Handler.
func (m *Mux) HandleCall(ctx context.Context, req *Request) {
	m.mu.RLock()
	e, ok := m.entries[muxKey(req.Method)]
	m.mu.RUnlock()
	if !ok && len(req.Method) == 1 && req.Method[0] == "manifest" && req.Type == TypeAsync {
		_ = req.Return(m.Manifest())
		return
	}
	if !ok || (m.Allow != nil && !m.Allow(ctx, req)) {
		_ = req.Fail(NotAllowedError(req.Method))
		return
	}
	wireType := e.typ
	if wireType == TypeSync {
		wireType = TypeAsync
	}
	if wireType != req.Type {
		_ = req.Fail(&CallError{Name: "Error", Message: fmt.Sprintf("no %s:%s", req.Type, ShortArg(req.Method.String()))})
		return
	}
	var err error
	switch req.Type {
	case TypeAsync:
		var v any
		v, err = e.async(ctx, req)
		if err == nil {
			_ = req.Return(v)
			return
		}
	case TypeSource:
		err = e.source(ctx, req, req.Sink())
	case TypeSink:
		err = e.sink(ctx, req, req.Source())
	case TypeDuplex:
		err = e.duplex(ctx, req, req.Source(), req.Sink())
	}
	if err != nil {
		_ = req.Fail(err)
	}
}
