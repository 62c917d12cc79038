package roomdb

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/cask-ssb/cask/feeds"
)

// access caches what every connection asks (the mode, the role of a key,
// whether it is denied): answering from memory spares three SQLite
// queries per peer connection and two per room call for one cheap check.
//
// The check is SQLite's PRAGMA data_version on a connection kept for it:
// its value changes whenever another connection (of this process's pool,
// or of another process: the nodes of a mesh may share one file) commits
// a change. The snapshot is read on that same connection, after the
// version: a commit that lands while it is read moves the version past
// the snapshot's, and the next read loads again. A change is therefore
// seen by the next read after its commit, as without the cache.
//
// The snapshot holds every member and denied key: rooms have hundreds or
// thousands, and writes (admin commands, invites used) are rare.
type access struct {
	mu   sync.Mutex
	conn *sql.Conn // nil until first used
	ver  *sql.Stmt // PRAGMA data_version, prepared on conn
	snap *snapshot
}

type snapshot struct {
	version int64 // PRAGMA data_version when loaded
	mode    Mode
	roles   map[feeds.FeedRef]Role
	denied  map[feeds.FeedRef]bool
}

// exec runs a statement that changes the database.
func (db *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return db.sql.ExecContext(ctx, query, args...)
}

// close gives the connection back (before the database closes).
func (a *access) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dropLocked()
}

func (a *access) dropLocked() {
	if a.conn != nil {
		_ = a.ver.Close()
		_ = a.conn.Close()
		a.conn, a.ver, a.snap = nil, nil, nil
	}
}

// access returns a snapshot that is current: no commit since it was
// loaded.
func (db *DB) access(ctx context.Context) (*snapshot, error) {
	a := &db.acc
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn == nil {
		c, err := db.sql.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("room database: %w", err)
		}
		st, err := c.PrepareContext(ctx, `PRAGMA data_version`)
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("room database: data version: %w", err)
		}
		a.conn, a.ver = c, st
	}
	var version int64
	if err := a.ver.QueryRowContext(ctx).Scan(&version); err != nil {
		// The connection may be broken: take another next time.
		a.dropLocked()
		return nil, fmt.Errorf("room database: data version: %w", err)
	}
	if a.snap != nil && a.snap.version == version {
		return a.snap, nil
	}
	s, err := db.load(ctx, a.conn, version)
	if err != nil {
		return nil, err
	}
	a.snap = s
	return s, nil
}

func (db *DB) load(ctx context.Context, c *sql.Conn, version int64) (*snapshot, error) {
	s := &snapshot{version: version, roles: map[feeds.FeedRef]Role{}, denied: map[feeds.FeedRef]bool{}}
	var mode string
	if err := c.QueryRowContext(ctx, `SELECT value FROM config WHERE key = 'mode'`).Scan(&mode); err != nil {
		return nil, fmt.Errorf("read mode: %w", err)
	}
	var err error
	if s.mode, err = ParseMode(mode); err != nil {
		return nil, err
	}
	if err := scanIDs(ctx, c, `SELECT id, role FROM members`, func(id feeds.FeedRef, v string) { s.roles[id] = Role(v) }); err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	if err := scanIDs(ctx, c, `SELECT id, '' FROM denied`, func(id feeds.FeedRef, _ string) { s.denied[id] = true }); err != nil {
		return nil, fmt.Errorf("read denied keys: %w", err)
	}
	return s, nil
}

// scanIDs runs query, whose rows are (feed id, text), and calls f for
// each row whose id parses.
func scanIDs(ctx context.Context, c *sql.Conn, query string, f func(feeds.FeedRef, string)) error {
	rows, err := c.QueryContext(ctx, query)
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
