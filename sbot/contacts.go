package sbot

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/plugins/service"
)

// contactsService acts on our own blocks at once: a block ends the live
// connection with that peer (its feed is then neither replicated from
// anyone nor served to it: see blockFilter and the handshake check). The
// graph itself is an index of the store, updated in the append batch; a
// change of our follows refreshes the EBT sessions (graph.OnChange).
func (n *Node) contactsService() service.Service {
	return service.Service{
		Name: "contacts",
		OnAppend: func(m *classic.Message) {
			if m.Author != n.keys.ID || m.ContentType() != "contact" {
				return
			}
			var c struct {
				Contact string `json:"contact"`
			}
			if json.Unmarshal(m.ContentJSON(), &c) == nil {
				if target, err := feeds.ParseFeedRef(c.Contact); err == nil && n.graph.Blocks(n.keys.ID, target) {
					n.conns.blocked(target)
				}
			}
		},
	}
}

// blocked ends the connection with a peer we just blocked, in the
// background (OnAppend must not block).
func (m *connManager) blocked(peer feeds.FeedRef) {
	if c := m.peer(peer); c != nil {
		m.log.Info("disconnecting a peer we block", "peer", peer.String())
		m.close(c, "blocked")
	}
}

// blockFilter drops the messages of feeds we block before they reach the
// ingester, in every running EBT session at once: a block takes effect
// at the next message, not at the next session.
type blockFilter struct {
	n    *Node
	next interface {
		Ingest(ctx context.Context, peer feeds.FeedRef, raw []json.RawMessage) (map[feeds.FeedRef]int64, error)
	}
}

func (f blockFilter) Ingest(ctx context.Context, peer feeds.FeedRef, raw []json.RawMessage) (map[feeds.FeedRef]int64, error) {
	var kept []json.RawMessage // nil until a message is dropped
	for i, m := range raw {
		if a, ok := authorOf(m); ok && f.n.graph.Blocks(f.n.keys.ID, a) {
			if kept == nil {
				kept = append(make([]json.RawMessage, 0, len(raw)), raw[:i]...)
			}
			continue
		}
		if kept != nil {
			kept = append(kept, m)
		}
	}
	if kept == nil {
		return f.next.Ingest(ctx, peer, raw)
	}
	if len(kept) == 0 {
		return nil, nil
	}
	return f.next.Ingest(ctx, peer, kept)
}

// authorOf finds the author ("@….ed25519") of a message value without
// parsing it all.
func authorOf(m []byte) (feeds.FeedRef, bool) {
	i := bytes.Index(m, []byte(`"author"`))
	if i < 0 {
		return feeds.FeedRef{}, false
	}
	rest := bytes.TrimLeft(m[i+len(`"author"`):], " \t\r\n:")
	if len(rest) < 2 || rest[0] != '"' {
		return feeds.FeedRef{}, false
	}
	end := bytes.IndexByte(rest[1:], '"')
	if end < 0 {
		return feeds.FeedRef{}, false
	}
	// A classic message's author is a sigil id; ParseFeedRef would also
	// take an ssb:feed/... URI, which no valid message has there.
	id := rest[1 : 1+end]
	if len(id) == 0 || id[0] != '@' {
		return feeds.FeedRef{}, false
	}
	f, err := feeds.ParseFeedRef(string(id))
	return f, err == nil
}
