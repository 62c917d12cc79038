// Package query serves query.read and query.explain (ssb-query's names):
// map-filter-reduce queries over {key, value, timestamp} records. A
// filter that fixes value.content.type reads the by-type index
// (indexes/bytype, receive-timestamp order, bounded by a timestamp
// range in the same filter), one that fixes value.author reads that
// feed's history (sequence order); any other query scans the log in
// receive order. explain says which. Owner only.
package query

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/kvt"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/bytype"
	"github.com/cask-ssb/cask/indexes/content"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/history"
	"github.com/cask-ssb/cask/plugins/service"
	"github.com/cask-ssb/cask/plugins/types"
	"github.com/cask-ssb/cask/plugins/viewread"
)

// Store is what the query methods read.
type Store interface {
	viewread.Store
	History(ctx context.Context, q store.HistoryQuery) iter.Seq2[store.Record, error]
}

// Options are query.read's options.
type Options struct {
	Query   json.RawMessage `json:"query"`
	Live    *bool           `json:"live"`
	Old     *bool           `json:"old"`
	Reverse *bool           `json:"reverse"`
	Limit   *float64        `json:"limit"`
}

// Plan is how a query runs.
type Plan struct {
	Stages []Stage
	// Index is "type" (by-type index), "author" (a feed's history) or
	// "log" (a scan of the whole log).
	Index   string
	Type    string
	Author  string
	Gt, Lt  *float64 // timestamp bounds taken from the filter ("type")
	Gte     *float64
	Lte     *float64
	Reverse bool
	Live    bool
	Old     bool
	Limit   int
}

// Explain is what query.explain answers.
type Explain struct {
	Index   string   `json:"index"`
	Scan    bool     `json:"scan"`
	Type    string   `json:"type,omitempty"`
	Author  string   `json:"author,omitempty"`
	Gt      *float64 `json:"gt,omitempty"`
	Gte     *float64 `json:"gte,omitempty"`
	Lt      *float64 `json:"lt,omitempty"`
	Lte     *float64 `json:"lte,omitempty"`
	Reverse bool     `json:"reverse"`
}

// NewPlan parses options and picks the index.
func NewPlan(o Options) (Plan, error) {
	stages, err := Parse(o.Query)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Stages: stages, Index: "log", Reverse: viewread.Flag(o.Reverse, false),
		Live: viewread.Flag(o.Live, false), Old: viewread.Flag(o.Old, true), Limit: history.Limit(o.Limit)}
	if len(stages) == 0 || stages[0].Filter == nil {
		return p, nil
	}
	f := stages[0].Filter
	val := f.Fields["value"]
	if val == nil || val.Fields == nil {
		return p, nil
	}
	if c := val.Fields["content"]; c != nil && c.Fields != nil {
		if t := c.Fields["type"]; t != nil && t.Scalar {
			if s, ok := t.Value.(string); ok && bytype.ValidType(s) {
				p.Index, p.Type = "type", s
				if ts := f.Fields["timestamp"]; ts != nil {
					for _, t := range ts.Tests {
						if n, ok := t.Arg.(float64); ok {
							switch t.Op {
							case "$gt":
								p.Gt = &n
							case "$gte":
								p.Gte = &n
							case "$lt":
								p.Lt = &n
							case "$lte":
								p.Lte = &n
							}
						}
					}
				}
				return p, nil
			}
		}
	}
	if a := val.Fields["author"]; a != nil && a.Scalar {
		if s, ok := a.Value.(string); ok {
			if _, err := feeds.ParseFeedRef(s); err == nil {
				p.Index, p.Author = "author", s
			}
		}
	}
	return p, nil
}

// Explain describes p.
func (p Plan) Explain() Explain {
	return Explain{Index: p.Index, Scan: p.Index == "log", Type: p.Type, Author: p.Author,
		Gt: p.Gt, Gte: p.Gte, Lt: p.Lt, Lte: p.Lte, Reverse: p.Reverse}
}

// Records yields the candidate records of p (a superset of the results,
// in the index's order).
func (p Plan) Records(ctx context.Context, st Store) iter.Seq2[store.Record, error] {
	switch p.Index {
	case "type":
		prefix := bytype.TypePrefix(nil, 'r', p.Type)
		q := viewread.Query{
			Range: types.TimeRange(bytype.Name, prefix, p.Gt, p.Gte, p.Lt, p.Lte, p.Reverse),
			Seq:   func(e store.IndexEntry) int64 { return content.TrailingSeq(e.Key) },
			Old:   p.Old, Live: p.Live,
		}
		return viewread.Records(viewread.Run(ctx, st, q))
	case "author":
		a, _ := feeds.ParseFeedRef(p.Author)
		return st.History(ctx, store.HistoryQuery{Author: a, Reverse: p.Reverse, Live: p.Live, Old: p.Old})
	}
	return st.Log(ctx, store.LogQuery{Reverse: p.Reverse, Live: p.Live, Old: p.Old})
}

// Results yields the query's results as JSON.
func (p Plan) Results(ctx context.Context, st Store) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		if p.Limit < 0 {
			return
		}
		n := 0
		var buf []byte
		for rec, err := range p.Records(ctx, st) {
			if err != nil {
				yield(nil, err)
				return
			}
			viewread.Clear(st, &rec)
			buf = kvt.Append(buf[:0], rec)
			buf = viewread.WithField(buf, "rts", rts(rec))
			var v any
			if err := json.Unmarshal(buf, &v); err != nil {
				yield(nil, fmt.Errorf("query: record %d: %w", rec.Seq, err))
				return
			}
			out, ok := Run(p.Stages, v)
			if !ok {
				continue
			}
			var b []byte
			if len(p.Stages) == 0 || p.Stages[len(p.Stages)-1].Map == nil {
				b = append([]byte(nil), buf...) // the record as stored, key order kept
			} else if b, err = json.Marshal(out); err != nil {
				yield(nil, err)
				return
			}
			if !yield(b, nil) {
				return
			}
			if n++; p.Limit > 0 && n >= p.Limit {
				return
			}
		}
	}
}

// rts is ssb-query's rts of a record: the earlier of its receive and
// claimed timestamps (the receive one when the claimed one is missing).
func rts(rec store.Record) float64 {
	c := content.Field(rec.Value, "timestamp")
	var claimed float64
	if json.Unmarshal(c, &claimed) != nil || claimed == 0 || claimed != claimed {
		return rec.Timestamp
	}
	return min(rec.Timestamp, claimed)
}

func parse(req *muxrpc.Request) (Plan, error) {
	var o Options
	if err := viewread.Options(req.Args, &o, nil); err != nil {
		return Plan{}, err
	}
	return NewPlan(o)
}

// Service declares query.read and query.explain (owner only).
func Service(st Store) service.Service {
	read := service.Source("query.read", service.Owner, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		p, err := parse(req)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-out.Done():
				cancel()
			case <-ctx.Done():
			}
		}()
		for b, err := range p.Results(ctx, st) {
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if err := out.Write(b); err != nil {
				return nil
			}
		}
		return nil
	})
	explain := service.Async("query.explain", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		p, err := parse(req)
		if err != nil {
			return nil, err
		}
		return p.Explain(), nil
	})
	return service.Service{Name: "query", Methods: []service.Method{read, explain}}
}
