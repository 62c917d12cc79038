package roomdb

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cask-ssb/cask/feeds"
)

// access caches what every connection asks (the mode, the role of a key,
// whether it is denied): answering from memory spares three SQLite
// queries per peer connection and per room call. Every write to the
// database (exec, tx) bumps gen after it completes; a snapshot is used
// only while gen has not moved since it was loaded, so a change is seen
// by the next read after the write returns.
//
// The snapshot holds every member and denied key: rooms have hundreds or
// thousands, and writes (admin commands, invites used) are rare.
type access struct {
	gen  atomic.Uint64
	snap atomic.Pointer[snapshot]
	mu   sync.Mutex // one reload at a time
}

type snapshot struct {
	gen    uint64
	mode   Mode
	roles  map[feeds.FeedRef]Role
	denied map[feeds.FeedRef]bool
}

func (a *access) changed() { a.gen.Add(1) }

// exec runs a statement that changes the database.
func (db *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	defer db.acc.changed()
	return db.sql.ExecContext(ctx, query, args...)
}

// access returns a snapshot that is current: loaded after the last write.
func (db *DB) access(ctx context.Context) (*snapshot, error) {
	if s := db.acc.snap.Load(); s != nil && s.gen == db.acc.gen.Load() {
		return s, nil
	}
	db.acc.mu.Lock()
	defer db.acc.mu.Unlock()
	// The generation is read before the tables: a write that lands while
	// they are read moves gen past it, and the snapshot is not used.
	gen := db.acc.gen.Load()
	if s := db.acc.snap.Load(); s != nil && s.gen == gen {
		return s, nil
	}
	s := &snapshot{gen: gen, roles: map[feeds.FeedRef]Role{}, denied: map[feeds.FeedRef]bool{}}
	var err error
	if s.mode, err = db.readMode(ctx); err != nil {
		return nil, err
	}
	if err := db.scanIDs(ctx, `SELECT id, role FROM members`, func(id feeds.FeedRef, v string) { s.roles[id] = Role(v) }); err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	if err := db.scanIDs(ctx, `SELECT id, '' FROM denied`, func(id feeds.FeedRef, _ string) { s.denied[id] = true }); err != nil {
		return nil, fmt.Errorf("read denied keys: %w", err)
	}
	db.acc.snap.Store(s)
	return s, nil
}

// scanIDs runs query, whose rows are (feed id, text), and calls f for
// each row whose id parses.
func (db *DB) scanIDs(ctx context.Context, query string, f func(feeds.FeedRef, string)) error {
	rows, err := db.sql.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var ids, v string
		if err := rows.Scan(&ids, &v); err != nil {
			return err
		}
		// A row whose id does not parse can match no peer: skipping it
		// keeps one bad row from refusing everyone.
		if id, err := feeds.ParseFeedRef(ids); err == nil {
			f(id, v)
		}
	}
	return rows.Err()
}
