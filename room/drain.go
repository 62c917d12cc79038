package room

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cask-ssb/cask/muxrpc"
)

// errDraining refuses new sessions on a draining node: the peer's next
// connection (through the load balancer) reaches another node.
var errDraining = errors.New("room draining: this node takes no new connections, connect again")

// drainer is the state of `room drain`.
type drainer struct {
	on     atomic.Bool
	mu     sync.Mutex
	cancel context.CancelFunc // stops the closing of connections
}

// DrainResult is the answer of `room drain`.
type DrainResult struct {
	Draining  bool `json:"draining"`
	Closing   int  `json:"closing"`   // connections being closed
	PerSecond int  `json:"perSecond"` // at this rate
}

// Drain makes the node refuse new sessions and report not ready, and
// closes its peer connections at perSecond a second (0: all at once) so
// that they reconnect, through the load balancer, to other nodes. The
// mesh stays up: forwarded tunnels and the union of attendants go on.
func (s *Server) Drain(perSecond int) DrainResult {
	s.drain.on.Store(true)
	s.mu.Lock()
	var eps []*muxrpc.Endpoint
	for _, pc := range s.conns {
		eps = append(eps, pc.ep)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	s.drain.mu.Lock()
	if s.drain.cancel != nil {
		s.drain.cancel()
	}
	s.drain.cancel = cancel
	s.drain.mu.Unlock()
	s.log.Info("draining", "connections", len(eps), "per-second", perSecond)
	go func() {
		var every time.Duration
		if perSecond > 0 {
			every = time.Second / time.Duration(perSecond)
		}
		for _, ep := range eps {
			if ctx.Err() != nil {
				return
			}
			s.metrics.drops.WithLabelValues("drain").Inc()
			go ep.Close()
			if every > 0 {
				select {
				case <-time.After(every):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return DrainResult{Draining: true, Closing: len(eps), PerSecond: perSecond}
}

// Undrain takes new sessions again.
func (s *Server) Undrain() DrainResult {
	s.drain.mu.Lock()
	if s.drain.cancel != nil {
		s.drain.cancel()
		s.drain.cancel = nil
	}
	s.drain.mu.Unlock()
	s.drain.on.Store(false)
	s.log.Info("drain cancelled: taking new sessions")
	return DrainResult{}
}

// Draining reports whether the node is draining.
func (s *Server) Draining() bool { return s.drain.on.Load() }

// Ready says whether a load balancer should send peers here: not while
// draining, nor while the database does not answer.
func (s *Server) Ready(ctx context.Context) error {
	if s.Draining() {
		return errors.New("draining")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := s.db.Mode(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

// registerReady mounts GET /readyz: 200 {"ready":true}, or 503 with the
// reason.
func (s *Server) registerReady(mux *http.ServeMux) {
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if err := s.Ready(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]any{"ready": false, "reason": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": true})
	})
}

// drainArgs decodes admin.drain's optional {"perSecond": N, "cancel": bool}.
func drainArgs(req *muxrpc.Request) (perSecond int, cancel bool, err error) {
	var a struct {
		PerSecond *int `json:"perSecond"`
		Cancel    bool `json:"cancel"`
	}
	var list []json.RawMessage
	if err := json.Unmarshal(req.Args, &list); err != nil {
		return 0, false, fmt.Errorf("admin.drain: args: %w", err)
	}
	if len(list) > 0 {
		if err := json.Unmarshal(list[0], &a); err != nil {
			return 0, false, fmt.Errorf("admin.drain: want {perSecond, cancel}: %w", err)
		}
	}
	perSecond = 20
	if a.PerSecond != nil {
		perSecond = *a.PerSecond
	}
	if perSecond < 0 || perSecond > 100000 {
		return 0, false, fmt.Errorf("admin.drain: perSecond %d: want 0 (all at once) to 100000", perSecond)
	}
	return perSecond, a.Cancel, nil
}
