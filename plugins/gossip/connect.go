package gossip

import (
	"context"
	"errors"

	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// Connector is the daemon's connection manager as the gossip methods use it.
type Connector interface {
	// ConnectAddress dials a multiserver address ("net:HOST:PORT~shs:KEY",
	// or the legacy HOST:PORT:@KEY.ed25519), or returns at once when that
	// peer is already connected, whatever the address form or transport.
	// The connection outlives the call. remember also stores the address
	// so that it is redialled with back-off, after restarts too.
	ConnectAddress(ctx context.Context, address string, remember bool) error
	// Disconnect ends the connection with a peer named by an address or a
	// feed id and reports whether there was one. A configured or
	// remembered peer is not redialled until the owner connects to it
	// again; forget also removes it from the remembered ones.
	Disconnect(ctx context.Context, target string, forget bool) (bool, error)
	// Peers reports connected and configured peers, and the known
	// addresses.
	Peers() Report
}

// Report is the answer of gossip.peers.
type Report struct {
	Connected  []Connected  `json:"connected"`
	Configured []Configured `json:"configured"`
	Known      []Known      `json:"known"`
}

// Known is one address of the daemon's address book.
type Known struct {
	Address string `json:"address"`
	ID      string `json:"id"`
	// Sources say where the address comes from: "config", "remembered",
	// "pub", "room" (an attendant), "seen" (dialled successfully before).
	Sources []string `json:"sources"`
	// State is "connected", "dialling", "backoff", "ready" (dialled when
	// a slot is free), "standby" (not followed, and no feed is missing),
	// "paused", "blocked", or the keeper's state for a configured,
	// remembered or room peer.
	State       string `json:"state"`
	Followed    bool   `json:"followed"`
	Failures    int    `json:"failures"`              // in a row
	Dials       int    `json:"dials"`                 // since the daemon started
	NextDial    int64  `json:"nextDial,omitempty"`    // ms since epoch, in back-off
	LastSeen    int64  `json:"lastSeen,omitempty"`    // ms since epoch, last connected
	LastFailure int64  `json:"lastFailure,omitempty"` // ms since epoch
	LastError   string `json:"lastError,omitempty"`
}

// Connected is one live connection with a peer.
type Connected struct {
	ID        string `json:"id"`
	Address   string `json:"address"`
	Transport string `json:"transport"`
	Direction string `json:"direction"` // "in" or "out"
	Class     string `json:"class"`     // "owner", "followed" or "anonymous"
	Since     int64  `json:"since"`     // ms since epoch
	IdleMs    int64  `json:"idleMs"`    // since the peer's last call
}

// Configured is a peer the daemon keeps connecting to.
type Configured struct {
	Address string `json:"address"`
	ID      string `json:"id"`
	Source  string `json:"source"` // "config" (--peers) or "remembered" (connect --remember)
	// State is "connected", "dialling", "backoff" or "paused" (the owner
	// disconnected it: not redialled until connected again or a restart).
	State     string `json:"state"`
	Failures  int    `json:"failures"`            // dials failed in a row
	NextDial  int64  `json:"nextDial,omitempty"`  // ms since epoch, in back-off
	LastError string `json:"lastError,omitempty"` // why the last dial or connection ended
}

// connectArgs reads "ADDR" or {"address": ADDR, "remember": bool}.
func connectArgs(req *muxrpc.Request) (addr string, flag bool, err error) {
	if err := req.Arg(0, &addr); err == nil {
		var opt struct {
			Remember bool `json:"remember"`
			Forget   bool `json:"forget"`
		}
		_ = req.Arg(1, &opt)
		return addr, opt.Remember || opt.Forget, nil
	}
	var opt struct {
		Address  string `json:"address"`
		ID       string `json:"id"`
		Remember bool   `json:"remember"`
		Forget   bool   `json:"forget"`
	}
	if err := req.Arg(0, &opt); err != nil {
		return "", false, err
	}
	if opt.Address == "" {
		opt.Address = opt.ID
	}
	if opt.Address == "" {
		return "", false, errors.New("no address")
	}
	return opt.Address, opt.Remember || opt.Forget, nil
}

// Service declares gossip.connect, gossip.disconnect and gossip.peers, all
// owner only as in the JS stack.
func Service(c Connector) service.Service {
	connect := service.Async("gossip.connect", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		addr, remember, err := connectArgs(req)
		if err != nil {
			return nil, errors.New("gossip.connect: want a multiserver address (net:HOST:PORT~shs:KEY), optionally {address, remember: true}")
		}
		if err := c.ConnectAddress(ctx, addr, remember); err != nil {
			return nil, err
		}
		return true, nil
	})
	disconnect := service.Async("gossip.disconnect", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		target, forget, err := connectArgs(req)
		if err != nil {
			return nil, errors.New("gossip.disconnect: want a multiserver address or a feed id, optionally {address, forget: true}")
		}
		return c.Disconnect(ctx, target, forget)
	})
	peers := service.Async("gossip.peers", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		r := c.Peers()
		if r.Connected == nil {
			r.Connected = []Connected{}
		}
		if r.Configured == nil {
			r.Configured = []Configured{}
		}
		if r.Known == nil {
			r.Known = []Known{}
		}
		return r, nil
	})
	return service.Service{Name: "gossip", Methods: []service.Method{connect, disconnect, peers}}
}
