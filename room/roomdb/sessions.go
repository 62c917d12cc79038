package roomdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/cask-ssb/cask/feeds"
)

// migrationSessions (2) adds the web sessions of members signed in with
// SSB. Only a hash of each session token is stored; a session ends with
// its member (ON DELETE CASCADE).
const migrationSessions = `CREATE TABLE sessions (
	hash    BLOB PRIMARY KEY,
	member  TEXT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
	csrf    TEXT NOT NULL,
	created INTEGER NOT NULL,
	expires INTEGER NOT NULL
);
CREATE INDEX sessions_member ON sessions(member);`

// ErrNoSession is returned for an unknown, ended or expired session.
var ErrNoSession = errors.New("no such session (signed out or expired)")

// Session is a signed-in member's web session.
type Session struct {
	Member  feeds.FeedRef
	Role    Role
	CSRF    string // the token every form of this session carries
	Expires time.Time
}

func random32() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// CreateSession starts a web session of member for ttl and returns its
// token (for the cookie; only its hash is kept).
func (db *DB) CreateSession(ctx context.Context, member feeds.FeedRef, ttl time.Duration) (token string, s Session, err error) {
	token, err = random32()
	if err != nil {
		return "", s, fmt.Errorf("create session: %w", err)
	}
	csrf, err := random32()
	if err != nil {
		return "", s, fmt.Errorf("create session: %w", err)
	}
	now := db.now()
	s = Session{Member: member, CSRF: csrf, Expires: now.Add(ttl).UTC().Truncate(time.Second)}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		var role string
		if err := tx.QueryRowContext(ctx, `SELECT role FROM members WHERE id = ?`, member.String()).Scan(&role); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("member %s: %w", member, ErrNotFound)
			}
			return err
		}
		s.Role = Role(role)
		// Expired sessions go when a new one starts.
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE expires <= ?`, now.Unix()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions(hash, member, csrf, created, expires) VALUES (?, ?, ?, ?, ?)`,
			tokenHash(token), member.String(), csrf, now.Unix(), s.Expires.Unix())
		return err
	})
	if err != nil {
		return "", s, fmt.Errorf("create session: %w", err)
	}
	return token, s, nil
}

// Session looks up a live session by its token, with the member's role
// as it is now.
func (db *DB) Session(ctx context.Context, token string) (Session, error) {
	var s Session
	var member, role string
	var exp int64
	err := db.sql.QueryRowContext(ctx, `SELECT s.member, m.role, s.csrf, s.expires FROM sessions s JOIN members m ON m.id = s.member WHERE s.hash = ? AND s.expires > ?`,
		tokenHash(token), db.now().Unix()).Scan(&member, &role, &s.CSRF, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return s, ErrNoSession
	}
	if err != nil {
		return s, fmt.Errorf("look up session: %w", err)
	}
	if s.Member, err = feeds.ParseFeedRef(member); err != nil {
		return s, fmt.Errorf("look up session: stored member %q: %w", member, err)
	}
	s.Role, s.Expires = Role(role), time.Unix(exp, 0).UTC()
	return s, nil
}

// EndSession ends one session (sign-out in the browser).
func (db *DB) EndSession(ctx context.Context, token string) error {
	if _, err := db.exec(ctx, `DELETE FROM sessions WHERE hash = ?`, tokenHash(token)); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// EndSessions ends every session of member (httpAuth.invalidateAllSolutions)
// and returns how many there were.
func (db *DB) EndSessions(ctx context.Context, member feeds.FeedRef) (int, error) {
	res, err := db.exec(ctx, `DELETE FROM sessions WHERE member = ?`, member.String())
	if err != nil {
		return 0, fmt.Errorf("end sessions of %s: %w", member, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// MaxLandingLen is the longest landing page text.
const MaxLandingLen = 4000

// Landing returns the landing page text the admins set ("" if none).
func (db *DB) Landing(ctx context.Context) (string, error) {
	var s string
	err := db.sql.QueryRowContext(ctx, `SELECT value FROM config WHERE key = 'landing'`).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read landing text: %w", err)
	}
	return s, nil
}

// SetLanding stores the landing page text (plain text, shown escaped).
func (db *DB) SetLanding(ctx context.Context, text string) error {
	if len(text) > MaxLandingLen {
		return fmt.Errorf("landing text: longer than %d bytes", MaxLandingLen)
	}
	if _, err := db.exec(ctx, `INSERT INTO config(key, value) VALUES ('landing', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, text); err != nil {
		return fmt.Errorf("set landing text: %w", err)
	}
	return nil
}

// CheckInvite says whether code is an invite that can be used now,
// without using it: ErrInviteInvalid otherwise.
func (db *DB) CheckInvite(ctx context.Context, code string) error {
	raw, err := ParseInviteCode(code)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInviteInvalid, err)
	}
	var n int
	err = db.sql.QueryRowContext(ctx, `SELECT count(*) FROM invites WHERE hash = ? AND uses > 0 AND expires > ?`, inviteHash(raw), db.now().Unix()).Scan(&n)
	if err != nil {
		return fmt.Errorf("check invite: %w", err)
	}
	if n == 0 {
		return ErrInviteInvalid
	}
	return nil
}
