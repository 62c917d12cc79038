// Package logstream serves the owner's read methods over the whole log:
// createLogStream (receive order) and get (one message by id).
package logstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/kvt"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/history"
	"github.com/cask-ssb/cask/plugins/service"
)

// Store is what the log methods read.
type Store interface {
	Log(ctx context.Context, q store.LogQuery) iter.Seq2[store.Record, error]
	Get(key feeds.MessageRef) (store.Record, error)
}

// Options are the JS options of createLogStream; gt/gte/lt/lte compare
// receive sequence numbers (the log's own order, starting at 1).
type Options struct {
	Gt      *float64 `json:"gt"`
	Gte     *float64 `json:"gte"`
	Lt      *float64 `json:"lt"`
	Lte     *float64 `json:"lte"`
	Limit   *float64 `json:"limit"`
	Reverse *bool    `json:"reverse"`
	Live    *bool    `json:"live"`
	Old     *bool    `json:"old"`
	Keys    *bool    `json:"keys"`
	Values  *bool    `json:"values"`
}

func flag(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

// ParseLogArgs reads createLogStream's optional options object.
func ParseLogArgs(args json.RawMessage) (store.LogQuery, history.Format, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(args, &raw); err != nil {
		return store.LogQuery{}, history.Format{}, fmt.Errorf("invalid arguments: %w", err)
	}
	var o Options
	if len(raw) > 0 && string(raw[0]) != "null" {
		if err := json.Unmarshal(raw[0], &o); err != nil {
			return store.LogQuery{}, history.Format{}, fmt.Errorf("createLogStream: invalid options: %w", err)
		}
	}
	q := store.LogQuery{
		Reverse: flag(o.Reverse, false),
		Live:    flag(o.Live, false),
		Old:     flag(o.Old, true),
	}
	bound := func(p *float64) int64 {
		if p == nil {
			return 0
		}
		return history.Int(*p)
	}
	q.Gt, q.Gte, q.Lt, q.Lte = bound(o.Gt), bound(o.Gte), bound(o.Lt), bound(o.Lte)
	if (o.Lt != nil && *o.Lt <= 1) || (o.Lte != nil && *o.Lte < 1) {
		q.Limit = -1 // an upper bound below the first record: nothing
	}
	if q.Limit == 0 {
		q.Limit = history.Limit(o.Limit)
	}
	return q, history.Format{Keys: flag(o.Keys, true), Values: flag(o.Values, true)}, nil
}

// Service declares createLogStream and get (owner only).
func Service(st Store) service.Service {
	logS := service.Source("createLogStream", service.Owner, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		q, f, err := ParseLogArgs(req.Args)
		if err != nil {
			return err
		}
		if q.Limit < 0 {
			return nil
		}
		return history.WriteRecords(ctx, out, f, func(ctx context.Context) iter.Seq2[store.Record, error] {
			return st.Log(ctx, q)
		})
	})
	get := service.Async("get", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var id string
		meta := false
		if err := req.Arg(0, &id); err != nil {
			var opt struct {
				ID   string `json:"id"`
				Meta bool   `json:"meta"`
			}
			if err2 := req.Arg(0, &opt); err2 != nil {
				return nil, errors.New("get: want a message id argument")
			}
			id, meta = opt.ID, opt.Meta
		}
		ref, err := feeds.ParseMessageRef(id)
		if err != nil {
			return nil, fmt.Errorf("get: %s is not a message id", id)
		}
		rec, err := st.Get(ref)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("message not found: %s", id)
		}
		if err != nil {
			return nil, err
		}
		if meta {
			return json.RawMessage(kvt.Encode(rec)), nil
		}
		return json.RawMessage(rec.Value), nil
	})
	return service.Service{Name: "logstream", Methods: []service.Method{logS, get}}
}
