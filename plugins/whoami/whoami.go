// Package whoami serves `whoami`: the node's own feed id.
package whoami

import (
	"context"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// Reply is the answer of whoami.
type Reply struct {
	ID string `json:"id"`
}

// Service declares whoami (owner only: ssb-server refuses it to anonymous
// peers).
func Service(id feeds.FeedRef) service.Service {
	return service.Service{Name: "whoami", Methods: []service.Method{
		service.Async("whoami", service.Owner, func(context.Context, *muxrpc.Request) (any, error) {
			return Reply{ID: id.String()}, nil
		}),
	}}
}
