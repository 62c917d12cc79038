package sbot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cask-ssb/cask/feeds/store"
)

// OfflineStore is the store of a repo opened without a daemon (for
// `sbot import`), holding the repo lock so no daemon starts meanwhile.
type OfflineStore struct {
	*store.Store
}

// OpenOffline locks repo and opens its store.
func OpenOffline(repo string) (*OfflineStore, error) {
	if err := os.MkdirAll(repo, 0o700); err != nil {
		return nil, fmt.Errorf("create repo %s: %w", repo, err)
	}
	st, err := store.Open(filepath.Join(repo, "store"), store.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("open repo %s: %w: %w", repo, ErrRepoLocked, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return &OfflineStore{Store: st}, nil
}

// Close closes the store and releases the lock.
func (o *OfflineStore) Close() error {
	return o.Store.Close()
}
