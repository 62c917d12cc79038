package sbot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cask-ssb/cask/feeds/feedlog"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/contacts"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/history"
	"github.com/cask-ssb/cask/plugins/logstream"
	"github.com/cask-ssb/cask/plugins/service"
)

// OfflineStore is the store of a repo opened without a daemon (for
// `sbot import`, and for `sbot log`/`hist`/`get` on a stopped daemon's
// repo, and bench/fill), holding the repo lock so no daemon starts
// meanwhile. It has the daemon's indexes, and writes go through Writer,
// the same feed writer the daemon uses.
type OfflineStore struct {
	*store.Store
	Writer *feedlog.Log
}

// ErrNoStore is returned by OpenOfflineRead for a repo without a store.
var ErrNoStore = errors.New("repo has no store")

// OpenOffline locks repo and opens its store and feed writer.
func OpenOffline(repo string) (*OfflineStore, error) {
	if err := os.MkdirAll(repo, 0o700); err != nil {
		return nil, fmt.Errorf("create repo %s: %w", repo, err)
	}
	return openOffline(repo)
}

// OpenOfflineRead opens an existing repo's store for reading, creating
// nothing. The store holds the repo lock while it is open (the store has
// no shared read-only mode), so a daemon started meanwhile is refused with
// ErrRepoLocked naming this process; readers keep it open only as long as
// one command runs.
func OpenOfflineRead(repo string) (*OfflineStore, error) {
	dir := filepath.Join(repo, "store")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrNoStore, dir)
	} else if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return openOffline(repo)
}

func openOffline(repo string) (*OfflineStore, error) {
	return openOfflineWith(repo, nil, nil)
}

// OpenOfflineReindex opens repo's store offline and rebuilds the indexes
// named (every index when names is empty) from the log, calling progress
// (may be nil) after each record.
func OpenOfflineReindex(repo string, names []string, progress func(done, total int64)) (*OfflineStore, error) {
	if len(names) == 0 {
		names = IndexNames()
	}
	for _, n := range names {
		if !slices.Contains(IndexNames(), n) {
			return nil, fmt.Errorf("reindex: no index named %q (indexes: %s)", n, strings.Join(IndexNames(), ", "))
		}
	}
	return openOfflineWith(repo, names, progress)
}

func openOfflineWith(repo string, rebuild []string, progress func(done, total int64)) (*OfflineStore, error) {
	kp, err := repoKeys(repo)
	if err != nil {
		return nil, fmt.Errorf("open repo %s: %w", repo, err)
	}
	opts := StoreOptions(nil, contacts.New(), NewViews(kp).Indexers()...)
	opts.Rebuild, opts.RebuildProgress = rebuild, progress
	st, err := store.Open(filepath.Join(repo, "store"), opts)
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("open repo %s: %w: %w", repo, ErrRepoLocked, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w%s", err, fsckHint(err))
	}
	w, err := feedlog.New(feedlog.Options{Store: st})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("open repo %s: %w", repo, err)
	}
	return &OfflineStore{Store: st, Writer: w}, nil
}

// ReadConn serves the store's read methods (createLogStream, get,
// createHistoryStream, createUserStream, latestSequence) with the
// daemon's own handlers on one end of an in-memory connection and returns
// the other end, so a client reads a stopped daemon's repo exactly as it
// reads a running one. stop ends the server side; call it before Close.
func (o *OfflineStore) ReadConn(ctx context.Context) (conn net.Conn, stop func()) {
	// Every caller of this in-memory connection is the local owner.
	m, err := service.MountAll(history.Service(o.Store), logstream.Service(o.Store))
	if err != nil {
		panic(err) // two fixed services: a duplicate is a programming error
	}
	srv, cli := net.Pipe()
	e := muxrpc.NewEndpoint(context.WithoutCancel(ctx), srv, m, muxrpc.Options{})
	return cli, func() { e.Close() }
}

// Close stops the writer, closes the store and releases the lock.
func (o *OfflineStore) Close() error {
	o.Writer.Close()
	return o.Store.Close()
}
