// Package history serves the read methods over one feed:
// createHistoryStream (legacy replication, anonymous peers may call it),
// createUserStream and latestSequence.
package history

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
	"github.com/cask-ssb/cask/plugins/service"
)

// Store is what the history methods read.
type Store interface {
	History(ctx context.Context, q store.HistoryQuery) iter.Seq2[store.Record, error]
	Latest(author feeds.FeedRef) (seq int64, key feeds.MessageRef, ok bool, err error)
}

// Service declares createHistoryStream (anyone: legacy replication),
// createUserStream and latestSequence (owner only).
func Service(st Store) service.Service { return ServiceWith(st, Hooks{}) }

// Hooks observe what the history methods serve (metrics).
type Hooks struct {
	// SentToPeer, if set, is called for every message a createHistoryStream
	// call from a remote peer (legacy replication) yields. It must not
	// block.
	SentToPeer func(n int)
}

// ServiceWith is Service with hooks.
func ServiceWith(st Store, h Hooks) service.Service {
	chs := service.Source("createHistoryStream", service.Anyone, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		q, f, err := ParseHistoryArgs(req.Args)
		if err != nil {
			return err
		}
		if h.SentToPeer == nil || req.RemoteKey() == nil || q.Limit < 0 {
			return Stream(ctx, st, q, f, out)
		}
		return WriteRecords(ctx, out, f, func(ctx context.Context) iter.Seq2[store.Record, error] {
			return func(yield func(store.Record, error) bool) {
				for rec, err := range st.History(ctx, q) {
					if err == nil {
						h.SentToPeer(1)
					}
					if !yield(rec, err) {
						return
					}
				}
			}
		})
	})
	cus := service.Source("createUserStream", service.Owner, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		q, f, err := ParseUserStreamArgs(req.Args)
		if err != nil {
			return err
		}
		return Stream(ctx, st, q, f, out)
	})
	latest := service.Async("latestSequence", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var id string
		if err := req.Arg(0, &id); err != nil {
			var opt struct {
				ID string `json:"id"`
			}
			if err2 := req.Arg(0, &opt); err2 != nil {
				return nil, fmt.Errorf("latestSequence: want a feed id argument")
			}
			id = opt.ID
		}
		ref, err := feeds.ParseFeedRef(id)
		if err != nil {
			return nil, fmt.Errorf("%s is not a feed", id)
		}
		seq, _, ok, err := st.Latest(ref)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("feed %s not found", id)
		}
		return seq, nil
	})
	return service.Service{Name: "history", Methods: []service.Method{chs, cus, latest}}
}

// Format says how stream items are encoded.
type Format struct {
	Keys   bool // {"key","value","timestamp"} records
	Values bool // with Keys false: bare values; with Keys true and Values false: key strings only
}

// Options are the JS options of createHistoryStream and createUserStream.
type Options struct {
	ID       string   `json:"id"`
	Seq      *float64 `json:"seq"`
	Sequence *float64 `json:"sequence"`
	Limit    *float64 `json:"limit"`
	Live     *bool    `json:"live"`
	Old      *bool    `json:"old"`
	Keys     *bool    `json:"keys"`
	Values   *bool    `json:"values"`
	Reverse  *bool    `json:"reverse"`
	Gt       *float64 `json:"gt"`
	Gte      *float64 `json:"gte"`
	Lt       *float64 `json:"lt"`
	Lte      *float64 `json:"lte"`
}

func parseOptions(args json.RawMessage) (Options, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(args, &raw); err != nil {
		return Options{}, fmt.Errorf("invalid arguments: %w", err)
	}
	var o Options
	if len(raw) == 0 {
		return o, errors.New("missing options: want {id: <feed id>, ...}")
	}
	// Old clients call createHistoryStream(id, seq).
	var id string
	if json.Unmarshal(raw[0], &id) == nil {
		o.ID = id
		if len(raw) > 1 {
			var seq float64
			if json.Unmarshal(raw[1], &seq) == nil {
				o.Seq = &seq
			}
		}
		return o, nil
	}
	if err := json.Unmarshal(raw[0], &o); err != nil {
		return o, fmt.Errorf("invalid options: %w", err)
	}
	return o, nil
}

func flag(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

func common(o Options) (store.HistoryQuery, Format, error) {
	var q store.HistoryQuery
	ref, err := feeds.ParseFeedRef(o.ID)
	if err != nil {
		return q, Format{}, fmt.Errorf("%s is not a feed", o.ID)
	}
	q.Author = ref
	q.Limit = Limit(o.Limit)
	q.Live = flag(o.Live, false)
	q.Old = flag(o.Old, true)
	q.Reverse = flag(o.Reverse, false)
	f := Format{Keys: flag(o.Keys, true), Values: flag(o.Values, true)}
	return q, f, nil
}

// ParseHistoryArgs reads createHistoryStream arguments. `seq`/`sequence` is
// inclusive (what the JS servers do); both given and different is an error.
func ParseHistoryArgs(args json.RawMessage) (store.HistoryQuery, Format, error) {
	o, err := parseOptions(args)
	if err != nil {
		return store.HistoryQuery{}, Format{}, err
	}
	q, f, err := common(o)
	if err != nil {
		return q, f, err
	}
	if o.Seq != nil && o.Sequence != nil && *o.Seq != *o.Sequence {
		return q, f, errors.New("createHistoryStream: seq and sequence differ")
	}
	from := o.Seq
	if from == nil {
		from = o.Sequence
	}
	if from != nil {
		q.From = max(Int(*from), 0)
	}
	return q, f, nil
}

// ParseUserStreamArgs reads createUserStream arguments: gt/gte/lt/lte on the
// feed's sequence numbers.
func ParseUserStreamArgs(args json.RawMessage) (store.HistoryQuery, Format, error) {
	o, err := parseOptions(args)
	if err != nil {
		return store.HistoryQuery{}, Format{}, err
	}
	q, f, err := common(o)
	if err != nil {
		return q, f, err
	}
	if o.Gte != nil {
		q.From = Int(*o.Gte)
	}
	if o.Gt != nil {
		q.From = max(q.From, Int(*o.Gt)+1)
	}
	q.From = max(q.From, 0)
	if o.Lte != nil {
		q.To = Int(*o.Lte)
	}
	if o.Lt != nil {
		if to := Int(*o.Lt) - 1; o.Lte == nil || to < q.To {
			q.To = to
		}
	}
	if (o.Lte != nil || o.Lt != nil) && q.To < 1 {
		q.To, q.Limit = 0, -1 // an upper bound below sequence 1: nothing
	}
	return q, f, nil
}

// Int converts a JS number option to an integer, clamped to ±2^53 (NaN
// is 0), so that absurd values from the network stay harmless.
func Int(f float64) int64 {
	const maxSafe = 1 << 53
	switch {
	case f != f:
		return 0
	case f > maxSafe:
		return maxSafe
	case f < -maxSafe:
		return -maxSafe
	}
	return int64(f)
}

// Limit converts a JS `limit` option: absent or negative means no limit
// (0), 0 means nothing (-1).
func Limit(l *float64) int {
	if l == nil || *l < 0 || *l != *l {
		return 0
	}
	if *l > 1<<31 {
		return 0
	}
	if n := int(*l); n > 0 {
		return n
	}
	return -1
}

// Stream writes the records of q to out in format f.
func Stream(ctx context.Context, st Store, q store.HistoryQuery, f Format, out *muxrpc.Sink) error {
	if q.Limit < 0 {
		return nil
	}
	return WriteRecords(ctx, out, f, func(ctx context.Context) iter.Seq2[store.Record, error] {
		return st.History(ctx, q)
	})
}

// WriteRecords runs query and writes every record to out in format f. The
// query's context is cancelled when the requester aborts the stream, so a
// live query stops too. An abort is not an error.
func WriteRecords(ctx context.Context, out *muxrpc.Sink, f Format, query func(context.Context) iter.Seq2[store.Record, error]) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-out.Done(): // the requester aborted
			cancel()
		case <-ctx.Done():
		}
	}()
	buf := make([]byte, 0, 4096)
	for rec, err := range query(ctx) {
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		buf = EncodeItem(buf[:0], rec, f)
		if err := out.Write(json.RawMessage(buf)); err != nil {
			if errors.Is(err, muxrpc.ErrStreamClosed) {
				return nil
			}
			return err
		}
	}
	return nil
}

// EncodeItem appends one stream item for rec in format f.
func EncodeItem(dst []byte, rec store.Record, f Format) []byte {
	switch {
	case f.Keys && f.Values:
		return kvt.Append(dst, rec)
	case f.Keys:
		dst = append(dst, '"')
		dst = append(dst, rec.Key.String()...)
		return append(dst, '"')
	default:
		return append(dst, rec.Value...)
	}
}
