// Package status serves `status`: a snapshot of the daemon for its owner.
package status

import (
	"context"

	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// Peer is one connected peer.
type Peer struct {
	ID        string `json:"id"`
	Address   string `json:"address"`
	Transport string `json:"transport"`      // "net", "tunnel", ...
	Room      string `json:"room,omitempty"` // the room a tunnel goes through
	Direction string `json:"direction"`      // "in" or "out"
	Since     int64  `json:"since"`          // ms since epoch
	// Sync compares the peer's EBT clock with ours (nil: no EBT session).
	Sync *PeerSync `json:"sync,omitempty"`
}

// Room is one room the daemon is an attendant of (or tries to be).
type Room struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Source  string `json:"source"` // "config" or "joined"
	// State: "connecting", "attendant", "not a room", "left".
	State   string `json:"state"`
	Version string `json:"version,omitempty"` // "2" (room.metadata) or "1" (tunnel.isRoom)
	Name    string `json:"name,omitempty"`
	// Attendants online, and those of them we follow.
	Attendants []string `json:"attendants"`
	Followed   []string `json:"followed"`
	LastError  string   `json:"lastError,omitempty"`
}

// Report is the status reply.
type Report struct {
	ID       string   `json:"id"`
	Listen   []string `json:"listen"`
	Peers    []Peer   `json:"peers"`
	Rooms    []Room   `json:"rooms"`
	Messages int64    `json:"messages"`
	Feeds    int64    `json:"feeds"`
	LastSeq  int64    `json:"lastSeq"`
	Uptime   float64  `json:"uptimeSeconds"`
	Version  string   `json:"version"`
	// Forks lists the feeds seen forked (evidence kept in the store).
	Forks []Fork `json:"forks,omitempty"`
	// Sync: how far we are behind the connected peers.
	Sync Sync `json:"sync"`
}

// Fork is one recorded fork.
type Fork struct {
	Author   string `json:"author"`
	Sequence int64  `json:"sequence"`
	Peer     string `json:"peer"`
	Reason   string `json:"reason"`
}

// Source produces the report.
type Source interface {
	Status() Report
}

// Service declares status (owner only).
func Service(s Source) service.Service {
	return service.Service{Name: "status", Methods: []service.Method{
		service.Async("status", service.Owner, func(context.Context, *muxrpc.Request) (any, error) {
			return s.Status(), nil
		}),
	}}
}
