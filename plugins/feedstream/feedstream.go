// Package feedstream serves createFeedStream (every message in claimed
// timestamp order, the order of ssb-db's feed view; gt/gte/lt/lte compare
// value.timestamp) and latest (each feed's latest sequence and claimed
// timestamp). Owner only.
package feedstream

import (
	"context"
	"encoding/json"
	"iter"

	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/bytype"
	"github.com/cask-ssb/cask/indexes/content"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/history"
	"github.com/cask-ssb/cask/plugins/service"
	"github.com/cask-ssb/cask/plugins/types"
	"github.com/cask-ssb/cask/plugins/viewread"
)

// Store is what the methods read.
type Store interface {
	viewread.Store
	Feeds() iter.Seq2[store.FeedLatest, error]
}

func claimed(value []byte) float64 {
	var v struct {
		Timestamp float64 `json:"timestamp"`
	}
	_ = json.Unmarshal(value, &v)
	return v.Timestamp
}

// Latest is one item of the latest stream.
type Latest struct {
	ID       string  `json:"id"`
	Sequence int64   `json:"sequence"`
	TS       float64 `json:"ts"`
}

// Service declares createFeedStream and latest (owner only).
func Service(st Store) service.Service {
	feed := service.Source("createFeedStream", service.Owner, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		var o types.Options
		if err := viewread.Options(req.Args, &o, nil); err != nil {
			return err
		}
		q := viewread.Query{
			Range: types.TimeRange(bytype.Name, []byte{'a'}, o.Gt, o.Gte, o.Lt, o.Lte, viewread.Flag(o.Reverse, false)),
			Seq:   func(e store.IndexEntry) int64 { return content.TrailingSeq(e.Key) },
			Old:   viewread.Flag(o.Old, true),
			Live:  viewread.Flag(o.Live, false),
			Limit: history.Limit(o.Limit),
		}
		if q.Limit < 0 {
			return nil
		}
		f := history.Format{Keys: viewread.Flag(o.Keys, true), Values: viewread.Flag(o.Values, true)}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-out.Done():
				cancel()
			case <-ctx.Done():
			}
		}()
		var buf []byte
		for e, err := range viewread.Run(ctx, st, q) {
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			buf = history.EncodeItem(buf[:0], e.Record, f)
			if f.Keys && f.Values {
				// ssb-db adds the resolved timestamp to each record as rts
				var ts float64
				if e.Index.Key != nil {
					ts = content.Float(e.Index.Key[1:9])
				} else {
					ts = bytype.Resolved(claimed(e.Record.Value), e.Record.Timestamp)
				}
				buf = viewread.WithField(buf, "rts", ts)
			}
			if err := out.Write(json.RawMessage(buf)); err != nil {
				return nil
			}
		}
		return nil
	})
	latest := service.Source("latest", service.Owner, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		for h, err := range st.Feeds() {
			if err != nil {
				return err
			}
			rec, err := st.At(h.Seq)
			if err != nil {
				return err
			}
			var v struct {
				Timestamp float64 `json:"timestamp"`
			}
			_ = json.Unmarshal(rec.Value, &v)
			if err := out.Write(Latest{ID: h.Author.String(), Sequence: h.Sequence, TS: v.Timestamp}); err != nil {
				return nil // the requester went away
			}
		}
		return nil
	})
	return service.Service{Name: "feedstream", Methods: []service.Method{feed, latest}}
}
