package sbot

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/plugins/service"
)

// contactsService keeps the contact graph up to date after each append
// and acts on our own follows and blocks at once: a follow makes the
// running EBT sessions ask for the new feed; a block ends the live
// connection with that peer (its feed is then neither replicated from
// anyone nor served to it: see blockFilter and the handshake check).
func (n *Node) contactsService() service.Service {
	return service.Service{
		Name: "contacts",
		OnAppend: func(m *classic.Message) {
			if m.ContentType() != "contact" || !n.graph.Apply(m.Author, m.ContentJSON()) || m.Author != n.keys.ID {
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
			go n.ebt.Refresh() // our follows changed: ask running sessions for new feeds
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
		Ingest(ctx context.Context, peer feeds.FeedRef, raw []json.RawMessage) error
	}
}

func (f blockFilter) Ingest(ctx context.Context, peer feeds.FeedRef, raw []json.RawMessage) error {
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
		return nil
	}
	return f.next.Ingest(ctx, peer, kept)
}

// authorOf finds the author of a message value without parsing it all.
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
	f, err := feeds.ParseFeedRef(string(rest[1 : 1+end]))
	return f, err == nil
}
