// Package publish serves the owner-only write methods: publish (sign and
// append a new message of the node's own feed) and add (append an
// already-signed message of any feed, after validating it).
package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// Publisher does the work; the daemon implements it.
type Publisher interface {
	// Publish signs content as the next message of the own feed, appends it
	// durably and returns its KVT JSON.
	Publish(ctx context.Context, content json.RawMessage) (json.RawMessage, error)
	// Add validates a signed message value (or KVT) and appends it; it
	// returns its KVT JSON.
	Add(ctx context.Context, msg json.RawMessage) (json.RawMessage, error)
}

// Service declares publish and add (owner only).
func Service(p Publisher) service.Service {
	return service.Service{Name: "publish", Methods: []service.Method{
		service.Async("publish", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
			var content json.RawMessage
			if err := req.Arg(0, &content); err != nil {
				return nil, errors.New("publish: want a content object argument")
			}
			return p.Publish(ctx, content)
		}),
		service.Async("add", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
			var msg json.RawMessage
			if err := req.Arg(0, &msg); err != nil {
				return nil, fmt.Errorf("add: want a message argument")
			}
			return p.Add(ctx, msg)
		}),
	}}
}
