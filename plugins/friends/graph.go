package friends

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/indexes/contacts"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// EdgeGraph is what friends.get and friends.hopStream read.
type EdgeGraph interface {
	Graph
	Out(a feeds.FeedRef) map[feeds.FeedRef]contacts.Edge
	Sources() []feeds.FeedRef
}

// Edge weights as ssb-friends 5 gives them.
const (
	WeightFollow  = 1
	WeightBlock   = -1
	WeightNeither = -2
)

func weight(e contacts.Edge) int {
	switch {
	case e.Blocking:
		return WeightBlock
	case e.Following:
		return WeightFollow
	}
	return WeightNeither
}

// hopStreamPoll is how often a live hopStream looks for changed hops.
const hopStreamPoll = time.Second

// GraphService declares friends.get ({source?, dest?}: the edge weights
// from source, to dest, between them, or the whole graph) and
// friends.hopStream ({old, live, start, max}: the hops map, then the
// changed hops while live). Owner only.
func GraphService(g EdgeGraph, self feeds.FeedRef, hops int) service.Service {
	get := service.Async("friends.get", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var opt struct {
			Source string `json:"source"`
			Dest   string `json:"dest"`
		}
		_ = req.Arg(0, &opt)
		var src, dst feeds.FeedRef
		var err error
		if opt.Source != "" {
			if src, err = feeds.ParseFeedRef(opt.Source); err != nil {
				return nil, err
			}
		}
		if opt.Dest != "" {
			if dst, err = feeds.ParseFeedRef(opt.Dest); err != nil {
				return nil, err
			}
		}
		row := func(a feeds.FeedRef) map[string]int {
			out := map[string]int{}
			for t, e := range g.Out(a) {
				if opt.Dest == "" || t == dst {
					out[t.String()] = weight(e)
				}
			}
			return out
		}
		switch {
		case opt.Source != "" && opt.Dest != "":
			e, ok := g.Out(src)[dst]
			if !ok {
				return nil, nil
			}
			return weight(e), nil
		case opt.Source != "":
			return row(src), nil
		case opt.Dest != "":
			out := map[string]int{}
			for _, a := range g.Sources() {
				if e, ok := g.Out(a)[dst]; ok {
					out[a.String()] = weight(e)
				}
			}
			return out, nil
		}
		out := map[string]map[string]int{}
		for _, a := range g.Sources() {
			out[a.String()] = row(a)
		}
		return out, nil
	})
	hopStream := service.Source("friends.hopStream", service.Owner, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		var opt struct {
			Old   *bool  `json:"old"`
			Live  *bool  `json:"live"`
			Start string `json:"start"`
			Max   *int   `json:"max"`
		}
		_ = req.Arg(0, &opt)
		from, max := self, hops
		if opt.Start != "" {
			f, err := feeds.ParseFeedRef(opt.Start)
			if err != nil {
				return errors.New("friends.hopStream: start is not a feed id")
			}
			from = f
		}
		if opt.Max != nil {
			max = min(max0(*opt.Max), 10)
		}
		enc := func(m map[feeds.FeedRef]int) map[string]int {
			o := make(map[string]int, len(m))
			for f, d := range m {
				o[f.String()] = d
			}
			return o
		}
		cur := maps.Clone(g.Hops(from, max))
		if opt.Old == nil || *opt.Old {
			if err := out.Write(enc(cur)); err != nil {
				return nil
			}
		}
		if opt.Live == nil || !*opt.Live {
			return nil
		}
		t := time.NewTicker(hopStreamPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-out.Done():
				return nil
			case <-t.C:
			}
			next := g.Hops(from, max)
			diff := map[feeds.FeedRef]int{}
			for f, d := range next {
				if old, ok := cur[f]; !ok || old != d {
					diff[f] = d
				}
			}
			for f := range cur {
				if _, ok := next[f]; !ok {
					diff[f] = -1 // no longer within max hops
				}
			}
			if len(diff) == 0 {
				continue
			}
			cur = maps.Clone(next)
			if err := out.Write(enc(diff)); err != nil {
				return nil
			}
		}
	})
	return service.Service{Name: "friends-graph", Methods: []service.Method{get, hopStream}}
}
