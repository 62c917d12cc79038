// Package roomdb is the room server's persistent state: members and their
// roles, invites (stored hashed, single use, with an expiry), aliases
// (with the owner's signature), denied keys, web sessions, the privacy
// mode and the landing text.
//
// Store is the one storage interface; it has two implementations: DB, in
// SQLite (the default, one file in the room's repo), and PG, in
// PostgreSQL (several room nodes sharing one database). OpenStore picks
// one from a database URL. Both apply the same numbered migrations at
// open, run every change in one transaction, and cascade a member's
// removal to its aliases and sessions. The package knows nothing of the
// network; it never stores an invite code or session token, only hashes.
package roomdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // pure-Go SQLite driver

	"github.com/cask-ssb/cask/feeds"
)

// Role is a member's role.
type Role string

// Roles of members, from most to least powerful.
const (
	RoleAdmin     Role = "admin"
	RoleModerator Role = "moderator"
	RoleMember    Role = "member"
)

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(s)); r {
	case RoleAdmin, RoleModerator, RoleMember:
		return r, nil
	}
	return "", fmt.Errorf("role %q: want admin, moderator or member", s)
}

// Mode is the room's privacy mode (protocol.md §8.2).
type Mode string

// Privacy modes.
const (
	ModeOpen       Mode = "open"
	ModeCommunity  Mode = "community"
	ModeRestricted Mode = "restricted"
)

// ParseMode checks a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(s)); m {
	case ModeOpen, ModeCommunity, ModeRestricted:
		return m, nil
	}
	return "", fmt.Errorf("mode %q: want open, community or restricted", s)
}

// Errors callers test with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrAliasTaken    = errors.New("alias is already taken")
	ErrInviteInvalid = errors.New("invite is unknown, used up, revoked or expired")
)

// Member is one entry of the member list.
type Member struct {
	ID      feeds.FeedRef `json:"id"`
	Role    Role          `json:"role"`
	Created time.Time     `json:"created"`
}

// Invite is an invite as stored (never its code).
type Invite struct {
	ID        int64     `json:"id"`
	CreatedBy string    `json:"createdBy,omitempty"` // feed id, "" for the operator
	Uses      int       `json:"uses"`                // uses left
	Expires   time.Time `json:"expires"`
	Created   time.Time `json:"created"`
}

// Alias is a registered alias.
type Alias struct {
	Name      string        `json:"name"`
	Owner     feeds.FeedRef `json:"owner"`
	Signature string        `json:"signature"`
	Created   time.Time     `json:"created"`
}

// Denied is a denied key.
type Denied struct {
	ID      feeds.FeedRef `json:"id"`
	Comment string        `json:"comment,omitempty"`
	Created time.Time     `json:"created"`
}

// DB is the room's state in SQLite.
type DB struct {
	sql *sql.DB
	now func() time.Time
}

// migrations are applied in order; user_version is the number applied.
// Never edit one that shipped: append a new one.
var migrations = []string{
	// 1: initial schema
	`CREATE TABLE members (
		id      TEXT PRIMARY KEY,
		role    TEXT NOT NULL CHECK (role IN ('admin','moderator','member')),
		created INTEGER NOT NULL
	);
	CREATE TABLE invites (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		hash       BLOB NOT NULL UNIQUE,
		created_by TEXT REFERENCES members(id) ON DELETE SET NULL,
		uses       INTEGER NOT NULL CHECK (uses >= 0),
		expires    INTEGER NOT NULL,
		created    INTEGER NOT NULL
	);
	CREATE TABLE aliases (
		name      TEXT PRIMARY KEY,
		owner     TEXT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
		signature TEXT NOT NULL,
		created   INTEGER NOT NULL
	);
	CREATE INDEX aliases_owner ON aliases(owner);
	CREATE TABLE denied (
		id      TEXT PRIMARY KEY,
		comment TEXT NOT NULL DEFAULT '',
		created INTEGER NOT NULL
	);
	CREATE TABLE config (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);`,
	// 2: web sessions (sessions.go)
	migrationSessions,
}

// Open opens (creating if needed) the SQLite database at path and applies
// the migrations. defaultMode is stored when no mode was stored yet.
func Open(ctx context.Context, path string, defaultMode Mode) (*DB, error) {
	return OpenSQLite(ctx, path, Options{Mode: defaultMode})
}

// OpenSQLite is Open with all the options.
func OpenSQLite(ctx context.Context, path string, o Options) (*DB, error) {
	o = o.withDefaults()
	defaultMode := o.Mode
	// Owner-only, like the secret: members, invite hashes, denied keys.
	// SQLite gives the -wal and -shm files the database file's mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("open room database %s: %w", path, err)
	} else {
		f.Close()
	}
	// Transactions take the write lock when they begin (_txlock=immediate):
	// one that read first and wrote later would fail with SQLITE_BUSY,
	// without waiting, when another connection wrote in between.
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open room database %s: %w", path, err)
	}
	db := &DB{sql: sdb, now: o.Now}
	if err := db.migrate(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("room database %s: %w", path, err)
	}
	if _, err := ParseMode(string(defaultMode)); err != nil {
		sdb.Close()
		return nil, err
	}
	if _, err := sdb.ExecContext(ctx, `INSERT OR IGNORE INTO config(key, value) VALUES ('mode', ?)`, string(defaultMode)); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("room database %s: store mode: %w", path, err)
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error { return db.sql.Close() }

// SchemaVersion returns the number of migrations applied.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.sql.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v)
	return v, err
}

// migrate applies the missing migrations in one write transaction taken
// before the version is read (BEGIN IMMEDIATE), so that two processes
// opening a new file at once do not both apply them.
func (db *DB) migrate(ctx context.Context) (err error) {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return fmt.Errorf("lock for migrations: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
		}
	}()
	var v int
	if err := conn.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this program (%d)", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := conn.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, i+1)); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return fmt.Errorf("commit migrations: %w", err)
	}
	return nil
}

func (db *DB) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Mode returns the stored privacy mode.
func (db *DB) Mode(ctx context.Context) (Mode, error) {
	var s string
	if err := db.sql.QueryRowContext(ctx, `SELECT value FROM config WHERE key = 'mode'`).Scan(&s); err != nil {
		return "", fmt.Errorf("read mode: %w", err)
	}
	return ParseMode(s)
}

// SetMode stores the privacy mode.
func (db *DB) SetMode(ctx context.Context, m Mode) error {
	if _, err := ParseMode(string(m)); err != nil {
		return err
	}
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO config(key, value) VALUES ('mode', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, string(m)); err != nil {
		return fmt.Errorf("set mode: %w", err)
	}
	return nil
}

// AddMember adds id with role, or changes its role if it is a member.
func (db *DB) AddMember(ctx context.Context, id feeds.FeedRef, role Role) error {
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	_, err := db.sql.ExecContext(ctx, `INSERT INTO members(id, role, created) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET role = excluded.role`,
		id.String(), string(role), db.now().Unix())
	if err != nil {
		return fmt.Errorf("add member %s: %w", id, err)
	}
	return nil
}

// SetRole changes the role of an existing member.
func (db *DB) SetRole(ctx context.Context, id feeds.FeedRef, role Role) error {
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	res, err := db.sql.ExecContext(ctx, `UPDATE members SET role = ? WHERE id = ?`, string(role), id.String())
	if err != nil {
		return fmt.Errorf("set role of %s: %w", id, err)
	}
	return affected(res, "member "+id.String())
}

// RemoveMember removes a member and its aliases.
func (db *DB) RemoveMember(ctx context.Context, id feeds.FeedRef) error {
	res, err := db.sql.ExecContext(ctx, `DELETE FROM members WHERE id = ?`, id.String())
	if err != nil {
		return fmt.Errorf("remove member %s: %w", id, err)
	}
	return affected(res, "member "+id.String())
}

// Role returns the role of id; ok is false for a non-member.
func (db *DB) Role(ctx context.Context, id feeds.FeedRef) (role Role, ok bool, err error) {
	var s string
	err = db.sql.QueryRowContext(ctx, `SELECT role FROM members WHERE id = ?`, id.String()).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("look up member %s: %w", id, err)
	}
	return Role(s), true, nil
}

// Members lists every member, oldest first.
func (db *DB) Members(ctx context.Context) ([]Member, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id, role, created FROM members ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	defer rows.Close()
	out := []Member{}
	for rows.Next() {
		var id, role string
		var created int64
		if err := rows.Scan(&id, &role, &created); err != nil {
			return nil, fmt.Errorf("list members: %w", err)
		}
		ref, err := feeds.ParseFeedRef(id)
		if err != nil {
			return nil, fmt.Errorf("list members: stored id %q: %w", id, err)
		}
		out = append(out, Member{ID: ref, Role: Role(role), Created: time.Unix(created, 0).UTC()})
	}
	return out, rows.Err()
}

// CountMembers returns the number of members.
func (db *DB) CountMembers(ctx context.Context) (int, error) {
	var n int
	err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM members`).Scan(&n)
	return n, err
}

// InviteCodeLen is the length of an invite code: 32 random bytes in
// unpadded URL-safe base64.
const InviteCodeLen = 43

// ParseInviteCode checks the shape of an invite code (it does not look it
// up) and returns its 32 bytes.
func ParseInviteCode(code string) ([]byte, error) {
	if len(code) != InviteCodeLen {
		return nil, fmt.Errorf("invite code: want %d characters, got %d", InviteCodeLen, len(code))
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(code)
	if err != nil || len(b) != 32 {
		return nil, errors.New("invite code: not URL-safe base64 of 32 bytes")
	}
	return b, nil
}

func inviteHash(raw []byte) []byte {
	h := sha256.Sum256(raw)
	return h[:]
}

// CreateInvite stores a new invite usable uses times until now+ttl and
// returns its code (shown once; only its hash is kept). createdBy is the
// creating member, or nil for the operator.
func (db *DB) CreateInvite(ctx context.Context, createdBy *feeds.FeedRef, uses int, ttl time.Duration) (code string, inv Invite, err error) {
	if uses <= 0 {
		return "", inv, fmt.Errorf("invite uses: want at least 1, got %d", uses)
	}
	if ttl <= 0 {
		return "", inv, fmt.Errorf("invite expiry: want a positive duration, got %s", ttl)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", inv, fmt.Errorf("create invite: %w", err)
	}
	code = base64.RawURLEncoding.EncodeToString(raw[:])
	now := db.now()
	inv = Invite{Uses: uses, Expires: now.Add(ttl).UTC().Truncate(time.Second), Created: now.UTC().Truncate(time.Second)}
	var by any
	if createdBy != nil {
		by = createdBy.String()
		inv.CreatedBy = createdBy.String()
	}
	res, err := db.sql.ExecContext(ctx, `INSERT INTO invites(hash, created_by, uses, expires, created) VALUES (?, ?, ?, ?, ?)`,
		inviteHash(raw[:]), by, uses, inv.Expires.Unix(), inv.Created.Unix())
	if err != nil {
		return "", inv, fmt.Errorf("create invite: %w", err)
	}
	inv.ID, _ = res.LastInsertId()
	return code, inv, nil
}

// UseInvite redeems code for id: in one transaction it checks the invite,
// takes one use and makes id a member (role member unless it already is
// one). It fails with ErrInviteInvalid for a bad, used, revoked or expired
// code.
func (db *DB) UseInvite(ctx context.Context, code string, id feeds.FeedRef) error {
	raw, err := ParseInviteCode(code)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInviteInvalid, err)
	}
	// The use is taken by a conditional UPDATE first: the transaction
	// writes at once, so concurrent claims queue on the write lock and
	// exactly one of them sees uses > 0 for the last use.
	return db.tx(ctx, func(tx *sql.Tx) error {
		var invID int64
		var left int
		err := tx.QueryRowContext(ctx, `UPDATE invites SET uses = uses - 1 WHERE hash = ? AND uses > 0 AND expires > ? RETURNING id, uses`,
			inviteHash(raw), db.now().Unix()).Scan(&invID, &left)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrInviteInvalid
		}
		if err != nil {
			return fmt.Errorf("use invite: %w", err)
		}
		if left == 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM invites WHERE id = ?`, invID); err != nil {
				return fmt.Errorf("use invite: %w", err)
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO members(id, role, created) VALUES (?, 'member', ?) ON CONFLICT(id) DO NOTHING`, id.String(), db.now().Unix())
		if err != nil {
			return fmt.Errorf("use invite: add member: %w", err)
		}
		return nil
	})
}

// Invites lists the invites that can still be used.
func (db *DB) Invites(ctx context.Context) ([]Invite, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id, coalesce(created_by, ''), uses, expires, created FROM invites WHERE uses > 0 AND expires > ? ORDER BY id`, db.now().Unix())
	if err != nil {
		return nil, fmt.Errorf("list invites: %w", err)
	}
	defer rows.Close()
	out := []Invite{}
	for rows.Next() {
		var inv Invite
		var exp, created int64
		if err := rows.Scan(&inv.ID, &inv.CreatedBy, &inv.Uses, &exp, &created); err != nil {
			return nil, fmt.Errorf("list invites: %w", err)
		}
		inv.Expires, inv.Created = time.Unix(exp, 0).UTC(), time.Unix(created, 0).UTC()
		out = append(out, inv)
	}
	return out, rows.Err()
}

// RevokeInvite deletes an invite by its id.
func (db *DB) RevokeInvite(ctx context.Context, id int64) error {
	res, err := db.sql.ExecContext(ctx, `DELETE FROM invites WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("revoke invite %d: %w", id, err)
	}
	return affected(res, fmt.Sprintf("invite %d", id))
}

// RegisterAlias stores name for owner (a member) with its signature. The
// caller has checked the name and the signature.
func (db *DB) RegisterAlias(ctx context.Context, name string, owner feeds.FeedRef, signature string) error {
	if err := ValidAlias(name); err != nil {
		return err
	}
	return db.tx(ctx, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT owner FROM aliases WHERE name = ?`, name).Scan(&cur)
		if err == nil {
			return fmt.Errorf("register alias %q: %w", name, ErrAliasTaken)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("register alias %q: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO aliases(name, owner, signature, created) VALUES (?, ?, ?, ?)`, name, owner.String(), signature, db.now().Unix()); err != nil {
			return fmt.Errorf("register alias %q: %w", name, err)
		}
		return nil
	})
}

// RevokeAlias deletes an alias. With owner set, only that owner's alias is
// deleted (ErrNotFound otherwise).
func (db *DB) RevokeAlias(ctx context.Context, name string, owner *feeds.FeedRef) error {
	var res sql.Result
	var err error
	if owner != nil {
		res, err = db.sql.ExecContext(ctx, `DELETE FROM aliases WHERE name = ? AND owner = ?`, name, owner.String())
	} else {
		res, err = db.sql.ExecContext(ctx, `DELETE FROM aliases WHERE name = ?`, name)
	}
	if err != nil {
		return fmt.Errorf("revoke alias %q: %w", name, err)
	}
	return affected(res, "alias "+name)
}

// Aliases lists aliases, all of them or (owner set) one member's.
func (db *DB) Aliases(ctx context.Context, owner *feeds.FeedRef) ([]Alias, error) {
	q, args := `SELECT name, owner, signature, created FROM aliases ORDER BY name`, []any{}
	if owner != nil {
		q, args = `SELECT name, owner, signature, created FROM aliases WHERE owner = ? ORDER BY name`, []any{owner.String()}
	}
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list aliases: %w", err)
	}
	defer rows.Close()
	out := []Alias{}
	for rows.Next() {
		var a Alias
		var o string
		var created int64
		if err := rows.Scan(&a.Name, &o, &a.Signature, &created); err != nil {
			return nil, fmt.Errorf("list aliases: %w", err)
		}
		if a.Owner, err = feeds.ParseFeedRef(o); err != nil {
			return nil, fmt.Errorf("list aliases: stored owner %q: %w", o, err)
		}
		a.Created = time.Unix(created, 0).UTC()
		out = append(out, a)
	}
	return out, rows.Err()
}

// Deny adds id to the denied keys.
func (db *DB) Deny(ctx context.Context, id feeds.FeedRef, comment string) error {
	_, err := db.sql.ExecContext(ctx, `INSERT INTO denied(id, comment, created) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET comment = excluded.comment`, id.String(), comment, db.now().Unix())
	if err != nil {
		return fmt.Errorf("deny %s: %w", id, err)
	}
	return nil
}

// Undeny removes id from the denied keys.
func (db *DB) Undeny(ctx context.Context, id feeds.FeedRef) error {
	res, err := db.sql.ExecContext(ctx, `DELETE FROM denied WHERE id = ?`, id.String())
	if err != nil {
		return fmt.Errorf("undeny %s: %w", id, err)
	}
	return affected(res, "denied key "+id.String())
}

// IsDenied reports whether id is denied.
func (db *DB) IsDenied(ctx context.Context, id feeds.FeedRef) (bool, error) {
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM denied WHERE id = ?`, id.String()).Scan(&n); err != nil {
		return false, fmt.Errorf("look up denied %s: %w", id, err)
	}
	return n > 0, nil
}

// DeniedKeys lists the denied keys.
func (db *DB) DeniedKeys(ctx context.Context) ([]Denied, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id, comment, created FROM denied ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("list denied: %w", err)
	}
	defer rows.Close()
	out := []Denied{}
	for rows.Next() {
		var d Denied
		var id string
		var created int64
		if err := rows.Scan(&id, &d.Comment, &created); err != nil {
			return nil, fmt.Errorf("list denied: %w", err)
		}
		if d.ID, err = feeds.ParseFeedRef(id); err != nil {
			return nil, fmt.Errorf("list denied: stored id %q: %w", id, err)
		}
		d.Created = time.Unix(created, 0).UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}

func affected(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}
