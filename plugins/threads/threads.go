// Package threads serves threads.thread (ssb-threads' name and output:
// one {messages, full} object): a message and its replies (the messages
// whose content.root is it), root first, then replies in receive order,
// from the threads index (indexes/threads). Owner only.
package threads

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/kvt"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/content"
	"github.com/cask-ssb/cask/indexes/threads"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
	"github.com/cask-ssb/cask/plugins/viewread"
)

// Store is what threads.thread reads.
type Store interface {
	viewread.Store
	Get(key feeds.MessageRef) (store.Record, error)
}

// Thread is what threads.thread emits.
type Thread struct {
	Messages []json.RawMessage `json:"messages"`
	Full     bool              `json:"full"`
}

// Read returns root's thread: root (when stored) then its replies.
func Read(ctx context.Context, st Store, root feeds.MessageRef) (Thread, error) {
	t := Thread{Messages: []json.RawMessage{}}
	rec, err := st.Get(root)
	switch {
	case err == nil:
		t.Messages = append(t.Messages, kvt.Encode(rec))
		t.Full = true
	case !errors.Is(err, store.ErrNotFound):
		return t, err
	}
	prefix := threads.Prefix(nil, 'r', root)
	r := store.IndexRange{Index: threads.Name, Lo: prefix, Hi: content.AppendSeq(append([]byte{}, prefix...), 1<<63-1)}
	for e, err := range st.IndexScan(ctx, r) {
		if err != nil {
			return t, err
		}
		rec, err := st.At(content.TrailingSeq(e.Key))
		if err != nil {
			return t, err
		}
		t.Messages = append(t.Messages, kvt.Encode(rec))
	}
	return t, nil
}

// Service declares threads.thread (owner only).
func Service(st Store) service.Service {
	m := service.Source("threads.thread", service.Owner, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		var o struct {
			Root string `json:"root"`
		}
		if err := viewread.Options(req.Args, &o, func(s string) { o.Root = s }); err != nil {
			return err
		}
		root, err := feeds.ParseMessageRef(o.Root)
		if err != nil {
			return fmt.Errorf("threads.thread: root %q is not a message id", o.Root)
		}
		t, err := Read(ctx, st, root)
		if err != nil {
			return err
		}
		_ = out.Write(t)
		return nil
	})
	return service.Service{Name: "threads", Methods: []service.Method{m}}
}
