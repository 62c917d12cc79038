package sbot

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/contacts"
)

// FsckRepo checks the store of repo offline with store.Fsck, with the
// daemon's own indexers (opts.Indexers is filled in). With opts.Repair, once
// the store is repaired it is opened (and closed) once, so the indexers whose
// version the repair dropped are rebuilt now rather than at the daemon's next
// start. A running daemon (or any other opener) holds the repo: the error
// then wraps ErrRepoLocked; a repo without a store gives ErrNoStore.
func FsckRepo(ctx context.Context, repo string, opts store.FsckOptions) (store.FsckReport, error) {
	kp, err := repoKeys(repo)
	if err != nil {
		return store.FsckReport{}, fmt.Errorf("open repo %s: %w", repo, err)
	}
	opts.Indexers = StoreOptions(nil, contacts.New(), NewViews(kp).Indexers()...).Indexers
	dir := filepath.Join(repo, "store")
	rep, err := store.Fsck(ctx, dir, opts)
	switch {
	case errors.Is(err, store.ErrLocked):
		return rep, fmt.Errorf("open repo %s: %w: %w", repo, ErrRepoLocked, err)
	case errors.Is(err, store.ErrNotFound):
		// One statement, as OpenOfflineRead words it, not the store's
		// chain ("fsck store at DIR: no store there: not found").
		return rep, fmt.Errorf("%w: %s does not exist", ErrNoStore, dir)
	case err != nil:
		return rep, err
	}
	if rep.Repaired && len(rep.IndexesToRebuild) > 0 {
		st, err := openOfflineWith(repo, nil, opts.Progress)
		if err != nil {
			return rep, fmt.Errorf("rebuild indexes %v after the repair: %w", rep.IndexesToRebuild, err)
		}
		if err := st.Close(); err != nil {
			return rep, fmt.Errorf("rebuild indexes %v after the repair: %w", rep.IndexesToRebuild, err)
		}
	}
	return rep, nil
}

// fsckHint is what to add to an error opening a damaged store.
func fsckHint(err error) string {
	if errors.Is(err, store.ErrCorrupt) {
		return " (sbot fsck --repair repairs what can be repaired)"
	}
	return ""
}
