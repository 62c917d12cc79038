// Package friends serves the owner's queries on the follow graph:
// friends.hops, friends.isFollowing and friends.isBlocking (the names and
// shapes of ssb-friends).
package friends

import (
	"context"
	"errors"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// Graph is what the methods read.
type Graph interface {
	Hops(from feeds.FeedRef, max int) map[feeds.FeedRef]int
	Follows(a, b feeds.FeedRef) bool
	Blocks(a, b feeds.FeedRef) bool
}

// Service declares the friends methods (owner only). self is our feed;
// hops the default distance.
func Service(g Graph, self feeds.FeedRef, hops int) service.Service {
	hopsM := service.Async("friends.hops", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var opt struct {
			Start string `json:"start"`
			Max   *int   `json:"max"`
		}
		_ = req.Arg(0, &opt)
		from, max := self, hops
		if opt.Start != "" {
			f, err := feeds.ParseFeedRef(opt.Start)
			if err != nil {
				return nil, err
			}
			from = f
		}
		if opt.Max != nil {
			max = min(max0(*opt.Max), 10)
		}
		out := map[string]int{}
		for f, d := range g.Hops(from, max) {
			out[f.String()] = d
		}
		return out, nil
	})
	pair := func(req *muxrpc.Request) (feeds.FeedRef, feeds.FeedRef, error) {
		var opt struct {
			Source string `json:"source"`
			Dest   string `json:"dest"`
		}
		if err := req.Arg(0, &opt); err != nil {
			return feeds.FeedRef{}, feeds.FeedRef{}, errors.New("want {source, dest}")
		}
		a, err := feeds.ParseFeedRef(opt.Source)
		if err != nil {
			return a, a, err
		}
		b, err := feeds.ParseFeedRef(opt.Dest)
		return a, b, err
	}
	following := service.Async("friends.isFollowing", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		a, b, err := pair(req)
		if err != nil {
			return nil, err
		}
		return g.Follows(a, b), nil
	})
	blocking := service.Async("friends.isBlocking", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		a, b, err := pair(req)
		if err != nil {
			return nil, err
		}
		return g.Blocks(a, b), nil
	})
	return service.Service{Name: "friends", Methods: []service.Method{hopsM, following, blocking}}
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}
