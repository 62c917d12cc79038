// Package about serves ssb-about's reduced "about" values from the about
// index (indexes/about): about.socialValue, about.latestValue,
// about.latestValues and about.socialValues. Owner only.
package about

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/about"
	"github.com/cask-ssb/cask/indexes/content"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
	"github.com/cask-ssb/cask/plugins/viewread"
)

// Values lists every author's latest value of dest's property key, in
// author order.
func Values(ctx context.Context, st viewread.Store, dest, key string) ([]about.Value, error) {
	prefix := about.Prefix(nil, dest, key)
	var out []about.Value
	for e, err := range st.IndexScan(ctx, store.IndexRange{Index: about.Name, Lo: prefix, Hi: prefixEnd(prefix)}) {
		if err != nil {
			return nil, err
		}
		if v, ok := about.DecodeValue(len(prefix), e.Key, e.Value); ok {
			out = append(out, v)
		}
	}
	return out, nil
}

func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// newer reports whether a was stated after b (claimed timestamp, then
// receive order).
func newer(a, b about.Value) bool {
	if a.ClaimedTS != b.ClaimedTS {
		return a.ClaimedTS > b.ClaimedTS
	}
	return a.Seq > b.Seq
}

// Latest is the most recent value anyone stated (nil when none).
func Latest(vs []about.Value) json.RawMessage {
	var best *about.Value
	for i := range vs {
		if best == nil || newer(vs[i], *best) {
			best = &vs[i]
		}
	}
	if best == nil {
		return nil
	}
	return best.JSON
}

// Social is ssb-about's socialValue: our own value, else the one dest
// assigned itself, else the value most authors state (the most recent
// of the tied ones).
func Social(vs []about.Value, self, dest string) json.RawMessage {
	for _, v := range vs {
		if v.Author == self {
			return v.JSON
		}
	}
	for _, v := range vs {
		if v.Author == dest {
			return v.JSON
		}
	}
	type tally struct {
		n    int
		last about.Value
	}
	counts := map[string]*tally{}
	var best *tally
	for _, v := range vs {
		t := counts[string(v.JSON)]
		if t == nil {
			t = &tally{last: v}
			counts[string(v.JSON)] = t
		}
		t.n++
		if newer(v, t.last) {
			t.last = v
		}
	}
	for _, t := range counts {
		if best == nil || t.n > best.n || (t.n == best.n && newer(t.last, best.last)) {
			best = t
		}
	}
	if best == nil {
		return nil
	}
	return best.last.JSON
}

type keyDest struct {
	Key  string   `json:"key"`
	Keys []string `json:"keys"`
	Dest string   `json:"dest"`
}

func parse(req *muxrpc.Request, method string) (keyDest, error) {
	var o keyDest
	if err := viewread.Options(req.Args, &o, nil); err != nil {
		return o, fmt.Errorf("%s: %w", method, err)
	}
	if !content.IsLink(o.Dest) {
		return o, fmt.Errorf("%s: dest must be a feed, message or blob id", method)
	}
	return o, nil
}

func orNull(v json.RawMessage) json.RawMessage {
	if v == nil {
		return json.RawMessage("null")
	}
	return bytes.Clone(v)
}

// Service declares the about methods (owner only); self is our feed.
func Service(st viewread.Store, self feeds.FeedRef) service.Service {
	me := self.String()
	one := func(name string, reduce func(vs []about.Value, dest string) json.RawMessage) service.Method {
		return service.Async(name, service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
			o, err := parse(req, name)
			if err != nil {
				return nil, err
			}
			if o.Key == "" {
				return nil, errors.New(name + ": want {key, dest}")
			}
			vs, err := Values(ctx, st, o.Dest, o.Key)
			if err != nil {
				return nil, err
			}
			return orNull(reduce(vs, o.Dest)), nil
		})
	}
	social := one("about.socialValue", func(vs []about.Value, dest string) json.RawMessage { return Social(vs, me, dest) })
	latest := one("about.latestValue", func(vs []about.Value, _ string) json.RawMessage { return Latest(vs) })
	latestValues := service.Async("about.latestValues", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		o, err := parse(req, "about.latestValues")
		if err != nil {
			return nil, err
		}
		out := map[string]json.RawMessage{}
		for _, k := range o.Keys {
			vs, err := Values(ctx, st, o.Dest, k)
			if err != nil {
				return nil, err
			}
			out[k] = orNull(Latest(vs))
		}
		return out, nil
	})
	socialValues := service.Async("about.socialValues", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		o, err := parse(req, "about.socialValues")
		if err != nil {
			return nil, err
		}
		vs, err := Values(ctx, st, o.Dest, o.Key)
		if err != nil {
			return nil, err
		}
		out := map[string]json.RawMessage{}
		for _, v := range vs {
			out[v.Author] = bytes.Clone(v.JSON)
		}
		return out, nil
	})
	return service.Service{Name: "about", Methods: []service.Method{social, latest, latestValues, socialValues}}
}
