package room

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/httpauth"
	"github.com/cask-ssb/cask/plugins/tunnel"
	"github.com/cask-ssb/cask/room/mesh"
	"github.com/cask-ssb/cask/room/web"
)

// meshOn says the room is one node of a mesh.
func (c Config) meshOn() bool { return c.MeshListen != "" || len(c.MeshWith) > 0 }

func (c Config) validateMesh() []error {
	if !c.meshOn() {
		if c.MeshKeyFile != "" {
			return []error{errors.New("mesh-key-file: set only with mesh-listen or mesh-with")}
		}
		return nil
	}
	var errs []error
	if c.MeshKeyFile == "" {
		errs = append(errs, errors.New("mesh-key-file: required with mesh-listen or mesh-with (create one with `room mesh-key FILE`)"))
	}
	if c.MeshListen != "" {
		if _, _, err := net.SplitHostPort(c.MeshListen); err != nil {
			errs = append(errs, fmt.Errorf("mesh-listen %q: want HOST:PORT: %w", c.MeshListen, err))
		}
	}
	for _, a := range c.MeshWith {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("mesh-with %q: want HOST:PORT: %w", a, err))
		}
	}
	return errs
}

// newMesh sets up the room's mesh node, if configured.
func (s *Server) newMesh() error {
	if !s.cfg.meshOn() {
		return nil
	}
	key, err := mesh.LoadKey(s.cfg.MeshKeyFile)
	if err != nil {
		return err
	}
	mm := mesh.NewMetrics()
	s.metrics.reg.MustRegister(mm.Collectors()...)
	ping := min(2*time.Second, s.cfg.KeepAlive)
	s.mesh, err = mesh.New(mesh.Options{
		Listen: s.cfg.MeshListen, Listener: s.cfg.meshListener, With: s.cfg.MeshWith, Key: key, Identity: s.keys, Att: s.att,
		Solutions: webSolutions{s},
		Logger:    s.log, RPCLogger: s.rpcLog, Metrics: mm, PingInterval: ping, HandshakeTimeout: s.cfg.HandshakeTimeout,
		Splice: func() tunnel.SpliceOptions {
			l := s.live()
			so := tunnel.SpliceOptions{MaxBytes: l.MaxTunnelBytes, Count: func(n int) { s.metrics.bytes.Add(float64(n)) }}
			if l.TunnelRate > 0 {
				so.Rate, so.Burst = l.TunnelRate, l.TunnelBurst
			}
			return so
		},
	})
	return err
}

// meshForward is tunnel.ServerOptions.Forward: nil without a mesh.
func (s *Server) meshForward() func(ctx context.Context, origin, target feeds.FeedRef) (*muxrpc.Source, *muxrpc.Sink, func(), error) {
	if s.mesh == nil {
		return nil
	}
	return s.mesh.Forward
}

// startMesh runs the mesh node until ctx ends or the returned stop is
// called (which waits for it).
func (s *Server) startMesh(ctx context.Context) (stop func(), err error) {
	if s.mesh == nil {
		return func() {}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- s.mesh.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		return nil, err
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			s.log.Error("mesh stopped", "err", err)
		}
	}, nil
}

// Mesh is the room's mesh node (nil without a mesh).
func (s *Server) Mesh() *mesh.Node { return s.mesh }

// MeshStatus is a node's part of `room status`.
type MeshStatus struct {
	Node  string   `json:"node"`
	Links []string `json:"links"` // ids of the nodes linked
	// Attendants counts the union of every node's attendants.
	Attendants int `json:"attendants"`
}

func (s *Server) meshStatus() *MeshStatus {
	if s.mesh == nil {
		return nil
	}
	return &MeshStatus{Node: s.mesh.ID(), Links: s.mesh.Links(), Attendants: s.att.UnionLen()}
}

// webSolutions hands sign-in solutions other nodes received to this
// node's web side.
type webSolutions struct{ s *Server }

func (w webSolutions) SendSolution(ctx context.Context, cid feeds.FeedRef, sc, cc, sol string) error {
	return w.s.web.SendSolution(ctx, cid, sc, cc, sol)
}

// Holds says whether another node of the mesh holds a connection of id
// (web.RemotePeers).
func (p roomPeers) Holds(id feeds.FeedRef) bool {
	return p.s.mesh != nil && len(p.s.att.Holders(id)) > 0
}

// RequestSolution asks the node holding id for its app's sign-in
// solution (web.RemotePeers).
func (p roomPeers) RequestSolution(ctx context.Context, id feeds.FeedRef, sc, cc string) (string, error) {
	if p.s.mesh == nil {
		return "", errors.New("room: not connected")
	}
	return p.s.mesh.RequestSolution(ctx, id, sc, cc)
}

// authenticator serves httpAuth.sendSolution and invalidateAllSolutions:
// the web side, and with a mesh, a solution for a challenge this node did
// not make goes to the other nodes (the browser may wait on any of them).
func (s *Server) authenticator() httpauth.Authenticator {
	if s.mesh == nil {
		return s.web
	}
	return meshAuth{s}
}

type meshAuth struct{ s *Server }

func (a meshAuth) SendSolution(ctx context.Context, cid feeds.FeedRef, sc, cc, sol string) error {
	err := a.s.web.SendSolution(ctx, cid, sc, cc, sol)
	if !errors.Is(err, web.ErrNoChallenge) {
		return err
	}
	if merr := a.s.mesh.SendSolution(ctx, cid, sc, cc, sol); merr != nil {
		a.s.log.Debug("sign-in solution taken by no node", "member", cid.String(), "err", merr)
		return err
	}
	return nil
}

func (a meshAuth) InvalidateAll(ctx context.Context, cid feeds.FeedRef) error {
	// Sessions live in the shared database: one node ends them all.
	return a.s.web.InvalidateAll(ctx, cid)
}
