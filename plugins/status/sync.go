package status

import (
	"context"

	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// Sync is how far we are behind the connected peers, from their EBT
// clocks: per feed we replicate, the latest sequence any peer advertises
// (or ours, when higher) is known to exist; what we hold of it is held.
type Sync struct {
	Known int64 `json:"known"` // messages known to exist, in the feeds the peers' clocks name
	Held  int64 `json:"held"`  // of those, the messages we hold
	// FeedsBehind counts the feeds of which a peer holds more than we do.
	FeedsBehind int `json:"feedsBehind"`
	// Peers counts the connected peers whose clock we know; Waiting those
	// whose clock has not arrived yet (or whose replication has not
	// started). Peers on legacy replication have no clock: not counted.
	Peers   int `json:"peers"`
	Waiting int `json:"waiting"`
	// CaughtUp: at least one peer's clock is known, none is awaited, and
	// we hold everything they advertise.
	CaughtUp bool `json:"caughtUp"`
}

// PeerSync is Sync with one connected peer.
type PeerSync struct {
	ID          string `json:"id"`
	Clock       bool   `json:"clock"` // its EBT clock arrived
	Known       int64  `json:"known"`
	Held        int64  `json:"held"`
	FeedsBehind int    `json:"feedsBehind"`
}

// Progress is the reply of sync.progress: the totals and each peer.
type Progress struct {
	Sync
	ByPeer []PeerSync `json:"byPeer"`
}

// SyncSource produces the sync progress.
type SyncSource interface {
	SyncProgress() Progress
}

// SyncService declares sync.progress (owner only), which `sbot sync`
// polls.
func SyncService(s SyncSource) service.Service {
	return service.Service{Name: "sync", Methods: []service.Method{
		service.Async("sync.progress", service.Owner, func(context.Context, *muxrpc.Request) (any, error) {
			return s.SyncProgress(), nil
		}),
	}}
}
