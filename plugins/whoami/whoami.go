// Package whoami serves `whoami`: the node's own feed id.
package whoami

import (
	"context"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
)

// Reply is the answer of whoami.
type Reply struct {
	ID string `json:"id"`
}

// Register adds whoami to m.
func Register(m *muxrpc.Mux, id feeds.FeedRef) {
	m.RegisterAsync(muxrpc.Method{"whoami"}, func(context.Context, *muxrpc.Request) (any, error) {
		return Reply{ID: id.String()}, nil
	})
}
