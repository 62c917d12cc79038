// Package types serves messagesByType (ssb-db's names, options and
// output): the messages whose content.type is a given type, in receive
// timestamp order, from the by-type index (indexes/bytype). Owner only.
package types

import (
	"context"
	"errors"
	"iter"
	"math"

	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/bytype"
	"github.com/cask-ssb/cask/indexes/content"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/history"
	"github.com/cask-ssb/cask/plugins/service"
	"github.com/cask-ssb/cask/plugins/viewread"
)

// Options are messagesByType's JS options; gt/gte/lt/lte compare receive
// timestamps (ms).
type Options struct {
	Type    string   `json:"type"`
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

// TimeRange returns the index range of the keys under prefix (each a
// timestamp and a seq) within the JS bounds.
func TimeRange(index string, prefix []byte, gt, gte, lt, lte *float64, reverse bool) store.IndexRange {
	r := store.IndexRange{Index: index, Lo: prefix, Hi: prefixEnd(prefix), Reverse: reverse}
	bound := func(b []byte, f float64) []byte {
		return content.AppendFloat(append([]byte{}, b...), f)
	}
	if gte != nil {
		r.Lo = bound(prefix, *gte)
	}
	if gt != nil {
		r.Lo = bound(prefix, math.Nextafter(*gt, math.Inf(1)))
	}
	if lte != nil {
		r.Hi = bound(prefix, math.Nextafter(*lte, math.Inf(1)))
	}
	if lt != nil {
		r.Hi = bound(prefix, *lt)
	}
	return r
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

// Query returns the viewread query of o.
func Query(o Options) (viewread.Query, history.Format, error) {
	if !bytype.ValidType(o.Type) {
		return viewread.Query{}, history.Format{}, errors.New("messagesByType: must provide {type: string}")
	}
	prefix := bytype.TypePrefix(nil, 'r', o.Type)
	q := viewread.Query{
		Range: TimeRange(bytype.Name, prefix, o.Gt, o.Gte, o.Lt, o.Lte, viewread.Flag(o.Reverse, false)),
		Seq:   func(e store.IndexEntry) int64 { return content.TrailingSeq(e.Key) },
		Old:   viewread.Flag(o.Old, true),
		Live:  viewread.Flag(o.Live, false),
		Limit: history.Limit(o.Limit),
	}
	return q, history.Format{Keys: viewread.Flag(o.Keys, true), Values: viewread.Flag(o.Values, true)}, nil
}

// Service declares messagesByType (owner only).
func Service(st viewread.Store) service.Service {
	m := service.Source("messagesByType", service.Owner, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		var o Options
		if err := viewread.Options(req.Args, &o, func(s string) { o.Type = s }); err != nil {
			return err
		}
		q, f, err := Query(o)
		if err != nil {
			return err
		}
		if q.Limit < 0 {
			return nil
		}
		prefix := bytype.TypePrefix(nil, 'r', o.Type)
		q.Match = func(rec *store.Record) bool {
			k := content.AppendSeq(content.AppendFloat(append([]byte{}, prefix...), rec.Timestamp), rec.Seq)
			_, err := st.IndexGet(bytype.Name, k)
			return err == nil
		}
		return history.WriteRecords(ctx, out, f, func(ctx context.Context) iter.Seq2[store.Record, error] {
			return viewread.Records(viewread.Run(ctx, st, q))
		})
	})
	return service.Service{Name: "types", Methods: []service.Method{m}}
}
