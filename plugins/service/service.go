// Package service is how a plugin declares what it offers the daemon: its
// muxrpc methods, each with who may call it, and optional hooks run for
// every peer connection, after every append, and for the daemon's
// lifetime. The daemon (sbot) mounts a list of services; adding a service
// is a new package plus one line in that list.
//
// The package only describes services and mounts their methods on a
// muxrpc.Mux. It never opens connections, stores or goroutines itself.
package service

import (
	"context"
	"fmt"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/muxrpc"
)

// Access says who may call a method.
type Access int

const (
	// Owner: only the owner (the unix socket, or our own key over TCP).
	Owner Access = iota
	// Anyone: any authenticated peer, as the JS stack allows anonymous
	// peers (manifest, createHistoryStream, ebt.*, blobs reads, gossip.ping).
	Anyone
	// Custom: Method.Check decides for peers that are not the owner (the
	// owner may always call).
	Custom
)

func (a Access) String() string {
	switch a {
	case Owner:
		return "owner"
	case Anyone:
		return "anyone"
	case Custom:
		return "custom"
	}
	return fmt.Sprintf("Access(%d)", int(a))
}

// Method is one muxrpc method of a service.
type Method struct {
	Name   muxrpc.Method
	Type   muxrpc.CallType
	Access Access
	// Check decides for a peer that is not the owner when Access is
	// Custom. It must be fast: it runs before every call.
	Check func(ctx context.Context, req *muxrpc.Request) bool

	async  muxrpc.AsyncFunc
	source muxrpc.SourceFunc
	sink   muxrpc.SinkFunc
	duplex muxrpc.DuplexFunc
}

// Async declares an async method.
func Async(name string, a Access, f muxrpc.AsyncFunc) Method {
	return Method{Name: muxrpc.ParseMethod(name), Type: muxrpc.TypeAsync, Access: a, async: f}
}

// Sync declares a method listed as sync in the manifest (called like an
// async one on the wire).
func Sync(name string, a Access, f muxrpc.AsyncFunc) Method {
	return Method{Name: muxrpc.ParseMethod(name), Type: muxrpc.TypeSync, Access: a, async: f}
}

// Source declares a source method.
func Source(name string, a Access, f muxrpc.SourceFunc) Method {
	return Method{Name: muxrpc.ParseMethod(name), Type: muxrpc.TypeSource, Access: a, source: f}
}

// Sink declares a sink method.
func Sink(name string, a Access, f muxrpc.SinkFunc) Method {
	return Method{Name: muxrpc.ParseMethod(name), Type: muxrpc.TypeSink, Access: a, sink: f}
}

// Duplex declares a duplex method.
func Duplex(name string, a Access, f muxrpc.DuplexFunc) Method {
	return Method{Name: muxrpc.ParseMethod(name), Type: muxrpc.TypeDuplex, Access: a, duplex: f}
}

// WithCheck returns m with Access Custom and check as its test.
func (m Method) WithCheck(check func(ctx context.Context, req *muxrpc.Request) bool) Method {
	m.Access, m.Check = Custom, check
	return m
}

// Peer is one connection with a remote peer (never the owner), as
// OnConnect hooks see it.
type Peer interface {
	// ID is the peer's feed (its secret-handshake key).
	ID() feeds.FeedRef
	// Endpoint calls the peer.
	Endpoint() *muxrpc.Endpoint
	// Dialled reports whether we dialled the peer (false: it dialled us).
	Dialled() bool
	// WaitCall waits until the peer has called one of names (before or
	// after WaitCall was called) and returns that name; ctx ending or the
	// connection closing returns the error.
	WaitCall(ctx context.Context, names ...string) (string, error)
}

// Service is what a plugin offers. Every field is optional except Name.
type Service struct {
	Name    string
	Methods []Method
	// OnConnect runs for every connection with a remote peer that is not
	// the owner, in a goroutine owned by that connection. It must return
	// when ctx ends (the connection closes or the daemon stops); the
	// connection waits for it before it is gone.
	OnConnect func(ctx context.Context, p Peer)
	// OnAppend runs after each message is committed, in append order, on
	// the writer's goroutine: it must not block.
	OnAppend func(m *classic.Message)
	// Run runs while the daemon serves. It must return when ctx ends; an
	// error before that stops the daemon.
	Run func(ctx context.Context) error
}

// Mount registers the methods of svcs on m and sets m.Allow from their
// declarations. isOwner tells the owner's calls from other peers'. A
// method declared twice is an error.
func Mount(m *muxrpc.Mux, isOwner func(req *muxrpc.Request) bool, svcs ...Service) error {
	access := map[string]Method{}
	for _, s := range svcs {
		for _, meth := range s.Methods {
			key := meth.Name.String()
			if _, dup := access[key]; dup {
				return fmt.Errorf("service %s: method %s is declared twice", s.Name, key)
			}
			if meth.Access == Custom && meth.Check == nil {
				return fmt.Errorf("service %s: method %s has custom access but no check", s.Name, key)
			}
			access[key] = meth
			switch meth.Type {
			case muxrpc.TypeAsync:
				m.RegisterAsync(meth.Name, meth.async)
			case muxrpc.TypeSync:
				m.RegisterSync(meth.Name, meth.async)
			case muxrpc.TypeSource:
				m.RegisterSource(meth.Name, meth.source)
			case muxrpc.TypeSink:
				m.RegisterSink(meth.Name, meth.sink)
			case muxrpc.TypeDuplex:
				m.RegisterDuplex(meth.Name, meth.duplex)
			default:
				return fmt.Errorf("service %s: method %s has unknown type %q", s.Name, key, meth.Type)
			}
		}
	}
	m.Allow = func(ctx context.Context, req *muxrpc.Request) bool {
		if isOwner(req) {
			return true
		}
		meth, ok := access[req.Method.String()]
		if !ok {
			return false
		}
		switch meth.Access {
		case Anyone:
			return true
		case Custom:
			return meth.Check(ctx, req)
		}
		return false
	}
	return nil
}

// MountAll registers svcs on a new Mux where every caller counts as the
// owner: for plugin tests.
func MountAll(svcs ...Service) (*muxrpc.Mux, error) {
	m := muxrpc.NewMux()
	err := Mount(m, func(*muxrpc.Request) bool { return true }, svcs...)
	return m, err
}
