// Package private serves box1 private messages to the owner (the names of
// ssb-private1): private.publish (encrypt content for up to 7 recipients,
// ourselves always one, and publish it), private.unbox (decrypt a content
// string or message with our key) and private.read (our decrypted
// messages from the private index, indexes/private). Every method is
// owner only: the cleartext never leaves the owner's connections.
package private

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/kvt"
	"github.com/cask-ssb/cask/feeds/privatebox"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/content"
	"github.com/cask-ssb/cask/indexes/private"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/history"
	"github.com/cask-ssb/cask/plugins/service"
	"github.com/cask-ssb/cask/plugins/viewread"
)

// Publisher publishes a content (feeds/feedlog.Log).
type Publisher interface {
	Publish(ctx context.Context, content json.RawMessage) (store.Record, error)
}

// Seal encrypts content for recps (our id added when missing; 1 to 7 in
// all) and returns the JSON string to publish as the message content.
// content must be a JSON object; recps are set in it when absent, as
// ssb-private does.
func Seal(c json.RawMessage, recps []string, self feeds.FeedRef) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(c, &obj); err != nil || obj == nil {
		return nil, errors.New("private.publish: content must be a JSON object")
	}
	if t, ok := content.Str(obj["type"]); !ok || t == "" {
		return nil, errors.New("private.publish: content needs a type")
	}
	ids := []feeds.FeedRef{}
	for _, r := range recps {
		f, err := feeds.ParseFeedRef(r)
		if err != nil {
			return nil, fmt.Errorf("private.publish: recipient %q is not a feed id", r)
		}
		if !slices.Contains(ids, f) {
			ids = append(ids, f)
		}
	}
	if !slices.Contains(ids, self) {
		ids = append(ids, self)
	}
	if len(ids) > privatebox.MaxRecipients {
		return nil, fmt.Errorf("private.publish: %d recipients (ourselves included), at most %d", len(ids), privatebox.MaxRecipients)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, c); err != nil {
		return nil, fmt.Errorf("private.publish: %w", err)
	}
	pt := compact.Bytes()
	if _, ok := obj["recps"]; !ok {
		strs := make([]string, len(ids))
		for i, f := range ids {
			strs[i] = f.String()
		}
		r, _ := json.Marshal(strs)
		pt = append(append(pt[:len(pt)-1], `,"recps":`...), r...) // obj has a type: not empty
		pt = append(pt, '}')
	}
	ct, err := privatebox.Seal(pt, ids, nil)
	if err != nil {
		return nil, fmt.Errorf("private.publish: %w", err)
	}
	s, _ := json.Marshal(privatebox.BoxContent(ct))
	return s, nil
}

// Unboxed is viewread.Unboxed.
func Unboxed(value, clear []byte) []byte { return viewread.Unboxed(value, clear) }

// Service declares the private methods (owner only).
func Service(st viewread.Store, w Publisher, kp *feeds.KeyPair) service.Service {
	curve := kp.Curve25519Secret()
	publish := service.Async("private.publish", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var c json.RawMessage
		var recps []string
		if err := req.Arg(0, &c); err != nil {
			return nil, errors.New("private.publish: want (content, recps)")
		}
		if err := req.Arg(1, &recps); err != nil {
			return nil, errors.New("private.publish: want (content, recps): recps an array of feed ids")
		}
		boxed, err := Seal(c, recps, kp.ID)
		if err != nil {
			return nil, err
		}
		rec, err := w.Publish(ctx, boxed)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(kvt.Encode(rec)), nil
	})
	unbox := service.Async("private.unbox", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var raw json.RawMessage
		if err := req.Arg(0, &raw); err != nil {
			return nil, errors.New("private.unbox: want a box string or a message")
		}
		s, ok := content.Str(raw)
		if !ok {
			// a message value, or a {key, value} record
			v := raw
			if val := content.Field(raw, "value"); val != nil {
				v = val
			}
			s, ok = content.Str(content.Field(v, "content"))
			if !ok {
				return nil, errors.New("private.unbox: no box string in the argument")
			}
		}
		ct, err := privatebox.ParseBoxContent(s)
		if err != nil {
			return nil, fmt.Errorf("private.unbox: %w", err)
		}
		pt, ok := privatebox.OpenWithCurveSecret(ct, curve)
		if !ok || !json.Valid(pt) {
			return json.RawMessage("null"), nil
		}
		return json.RawMessage(pt), nil
	})
	read := service.Source("private.read", service.Owner, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		var o struct {
			Reverse *bool    `json:"reverse"`
			Limit   *float64 `json:"limit"`
		}
		if err := viewread.Options(req.Args, &o, nil); err != nil {
			return err
		}
		limit := history.Limit(o.Limit)
		if limit < 0 {
			return nil
		}
		n := 0
		r := store.IndexRange{Index: private.Name, Lo: []byte{'p'}, Hi: []byte{'q'}, Reverse: viewread.Flag(o.Reverse, false)}
		for e, err := range st.IndexScan(ctx, r) {
			if err != nil {
				return err
			}
			rec, err := st.At(content.TrailingSeq(e.Key))
			if err != nil {
				return err
			}
			rec.Value = Unboxed(rec.Value, e.Value)
			if err := out.Write(json.RawMessage(kvt.Encode(rec))); err != nil {
				return nil
			}
			if n++; limit > 0 && n >= limit {
				return nil
			}
		}
		return nil
	})
	return service.Service{Name: "private", Methods: []service.Method{publish, unbox, read}}
}
