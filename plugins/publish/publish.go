// Package publish serves the owner-only write methods: publish (sign and
// append a new message of the node's own feed), add (append an
// already-signed message of any feed, after validating it) and addBatch
// (add for an array of messages in order, committed together: what
// `sbot import` uses through a running daemon).
//
// It never writes to the store itself: everything goes to the feed writer.
package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/feedlog"
	"github.com/cask-ssb/cask/feeds/kvt"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// Writer does the work (feeds/feedlog.Log).
type Writer interface {
	// Publish signs content as the next message of the own feed and
	// returns it once durable.
	Publish(ctx context.Context, content json.RawMessage) (store.Record, error)
	// Add verifies, validates and stores msgs in order; the first invalid
	// one ends the call.
	Add(ctx context.Context, msgs []*classic.Message) feedlog.Result
}

// MaxBatch is the most messages one addBatch call takes.
const MaxBatch = 10000

// BatchResult is what addBatch answers.
type BatchResult struct {
	Stored int `json:"stored"` // messages stored by this call
	Held   int `json:"held"`   // messages stored already, skipped
}

// Service declares publish, add and addBatch (owner only).
func Service(w Writer) service.Service {
	return service.Service{Name: "publish", Methods: []service.Method{
		service.Async("publish", service.Owner, publish(w)),
		service.Async("add", service.Owner, add(w)),
		service.Async("addBatch", service.Owner, addBatch(w)),
	}}
}

func publish(w Writer) muxrpc.AsyncFunc {
	return func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var content json.RawMessage
		if err := req.Arg(0, &content); err != nil {
			return nil, errors.New("publish: want a content object argument")
		}
		rec, err := w.Publish(ctx, content)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(kvt.Encode(rec)), nil
	}
}

func add(w Writer) muxrpc.AsyncFunc {
	return func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var raw json.RawMessage
		if err := req.Arg(0, &raw); err != nil {
			return nil, fmt.Errorf("add: want a message argument")
		}
		msg, err := parse(raw)
		if err != nil {
			return nil, fmt.Errorf("add: %w", err)
		}
		res := w.Add(ctx, []*classic.Message{msg})
		switch {
		case res.Err != nil:
			return nil, fmt.Errorf("add: %w", res.Err)
		case res.Held > 0:
			return nil, fmt.Errorf("add: %s: %w", msg.Key, feedlog.ErrAlreadyStored)
		}
		return json.RawMessage(kvt.Encode(res.Records[0])), nil
	}
}

func addBatch(w Writer) muxrpc.AsyncFunc {
	return func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var raws []json.RawMessage
		if err := req.Arg(0, &raws); err != nil {
			return nil, fmt.Errorf("addBatch: want an array of messages")
		}
		if len(raws) > MaxBatch {
			return nil, fmt.Errorf("addBatch: %d messages, at most %d per call", len(raws), MaxBatch)
		}
		msgs := make([]*classic.Message, 0, len(raws))
		var bad error
		for i, raw := range raws {
			m, err := parse(raw)
			if err != nil {
				bad = fmt.Errorf("message %d: %w", i, err)
				break
			}
			msgs = append(msgs, m)
		}
		res := w.Add(ctx, msgs)
		out := BatchResult{Stored: len(res.Records), Held: res.Held}
		if res.Err != nil {
			bad = fmt.Errorf("message %d: %w", res.Failed, res.Err)
		}
		if bad != nil {
			return nil, fmt.Errorf("addBatch: stored %d, held %d, then refused %w", out.Stored, out.Held, bad)
		}
		return out, nil
	}
}

// parse reads a message value or a {key,value,timestamp} record.
func parse(raw json.RawMessage) (*classic.Message, error) {
	m, _, claimed, err := classic.ParseKVT(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid message: %w", err)
	}
	if claimed != nil && *claimed != m.Key {
		return nil, fmt.Errorf("key %s does not match the message (computed %s)", claimed, m.Key)
	}
	return m, nil
}
