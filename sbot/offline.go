package sbot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cask-ssb/cask/feeds/feedlog"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/contacts"
)

// OfflineStore is the store of a repo opened without a daemon (for
// `sbot import` and bench/fill), holding the repo lock so no daemon starts
// meanwhile. It has the daemon's indexes, and writes go through Writer,
// the same feed writer the daemon uses.
type OfflineStore struct {
	*store.Store
	Writer *feedlog.Log
}

// OpenOffline locks repo and opens its store and feed writer.
func OpenOffline(repo string) (*OfflineStore, error) {
	if err := os.MkdirAll(repo, 0o700); err != nil {
		return nil, fmt.Errorf("create repo %s: %w", repo, err)
	}
	st, err := store.Open(filepath.Join(repo, "store"), StoreOptions(nil, contacts.New()))
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("open repo %s: %w: %w", repo, ErrRepoLocked, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	w, err := feedlog.New(feedlog.Options{Store: st})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("open repo %s: %w", repo, err)
	}
	return &OfflineStore{Store: st, Writer: w}, nil
}

// Close stops the writer, closes the store and releases the lock.
func (o *OfflineStore) Close() error {
	o.Writer.Close()
	return o.Store.Close()
}
