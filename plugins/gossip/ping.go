// Package gossip serves `gossip.connect` (owner only: dial a peer) and
// `gossip.ping`, the keep-alive duplex that JS peers
// (ssb-conn) open right after connecting: each side sends its current time
// in ms; we answer every number received with ours, and send our own time
// periodically so the peer's inactivity timer never fires.
package gossip

import (
	"context"
	"time"

	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// Options for the ping service.
type Options struct {
	// Interval between our own pings; default 60 s (JS peers time out
	// idle connections after 5 s to 10 min depending on their config).
	Interval time.Duration
	Now      func() time.Time
}

// PingService declares gossip.ping (anyone: JS peers open it right after
// connecting).
func PingService(opts Options) service.Service {
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ping := service.Duplex("gossip.ping", service.Anyone, func(ctx context.Context, req *muxrpc.Request, in *muxrpc.Source, out *muxrpc.Sink) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			t := time.NewTicker(opts.Interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if out.Write(opts.Now().UnixMilli()) != nil {
						return
					}
				}
			}
		}()
		for _, err := range in.All(ctx) {
			if err != nil {
				return nil // the peer ended or the connection went away
			}
			if err := out.Write(opts.Now().UnixMilli()); err != nil {
				return nil
			}
		}
		return nil
	})
	return service.Service{Name: "gossip.ping", Methods: []service.Method{ping}}
}
