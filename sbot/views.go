package sbot

import (
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/about"
	"github.com/cask-ssb/cask/indexes/bytype"
	"github.com/cask-ssb/cask/indexes/content"
	"github.com/cask-ssb/cask/indexes/links"
	"github.com/cask-ssb/cask/indexes/private"
	"github.com/cask-ssb/cask/indexes/pubs"
	"github.com/cask-ssb/cask/indexes/threads"
)

// Views are the query indexes of a repo's store (by type, links, about,
// threads, private), sharing one content decoder, so a message is parsed
// and a private message decrypted once per append; and the pub addresses
// announced in `pub` messages (Pubs, which parses its few messages itself).
type Views struct {
	decoder *content.Decoder
	ByType  *bytype.Index
	Links   *links.Index
	About   *about.Index
	Threads *threads.Index
	Private *private.Index
	Pubs    *pubs.Index
}

// NewViews returns the views; kp (may be nil) opens private messages.
func NewViews(kp *feeds.KeyPair) *Views {
	d := content.NewDecoder(kp)
	return &Views{decoder: d, ByType: bytype.New(d), Links: links.New(d), About: about.New(d), Threads: threads.New(d), Private: private.New(d), Pubs: pubs.New()}
}

// Indexers lists the views as store indexers.
func (v *Views) Indexers() []store.Indexer {
	return []store.Indexer{v.ByType, v.Links, v.About, v.Threads, v.Private, v.Pubs}
}

// IndexNames are the names of every index of a repo's store, the
// contact graph first (what `sbot reindex` takes).
func IndexNames() []string {
	return []string{"contacts", bytype.Name, links.Name, about.Name, threads.Name, private.Name, pubs.Name}
}

// repoKeys reads the repo's own secret for offline opens (to open private
// messages); a repo without one has no private index entries to add.
func repoKeys(repo string) (*feeds.KeyPair, error) {
	kp, err := feeds.ReadSecret(filepath.Join(repo, "secret"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &kp, nil
}
