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
	Direction string `json:"direction"` // "in" or "out"
	Since     int64  `json:"since"`     // ms since epoch
}

// Report is the status reply.
type Report struct {
	ID       string   `json:"id"`
	Listen   []string `json:"listen"`
	Peers    []Peer   `json:"peers"`
	Messages int64    `json:"messages"`
	Feeds    int64    `json:"feeds"`
	LastSeq  int64    `json:"lastSeq"`
	Uptime   float64  `json:"uptimeSeconds"`
	Version  string   `json:"version"`
	// Forks lists the feeds seen forked (evidence kept in the store).
	Forks []Fork `json:"forks,omitempty"`
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
