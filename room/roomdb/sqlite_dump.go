package roomdb

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/cask-ssb/cask/feeds"
)

// Backend is "sqlite".
func (db *DB) Backend() string { return string(BackendSQLite) }

// Dump reads every table in one transaction.
func (db *DB) Dump(ctx context.Context) (*Snapshot, error) {
	s := &Snapshot{Config: map[string]string{}}
	err := db.tx(ctx, func(tx *sql.Tx) error {
		return dumpSQL(ctx, sqlQuerier{tx}, s)
	})
	if err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	return s, nil
}

// Restore writes s in one transaction (see Store).
func (db *DB) Restore(ctx context.Context, s *Snapshot, force bool) error {
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM members`).Scan(&n); err != nil {
			return err
		}
		if n > 0 && !force {
			return fmt.Errorf("%w (%d; use --force to replace them)", ErrNotEmpty, n)
		}
		for _, t := range []string{"sessions", "aliases", "invites", "members", "denied", "config"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+t); err != nil {
				return fmt.Errorf("clear %s: %w", t, err)
			}
		}
		return restoreSQL(func(q string, args ...any) error {
			_, err := tx.ExecContext(ctx, q, args...)
			return err
		}, "?", s)
	})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// querier is the part of a transaction dumpSQL uses; sqlQuerier adapts
// database/sql and pgQuerier pgx.
type querier interface {
	query(ctx context.Context, q string, scan func(scan func(dest ...any) error) error) error
}

type sqlQuerier struct{ tx *sql.Tx }

func (s sqlQuerier) query(ctx context.Context, q string, each func(scan func(dest ...any) error) error) error {
	rows, err := s.tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// dumpSQL reads every table; the queries are the same in both SQL
// dialects.
func dumpSQL(ctx context.Context, q querier, s *Snapshot) error {
	err := q.query(ctx, `SELECT key, value FROM config ORDER BY key`, func(scan func(...any) error) error {
		var k, v string
		if err := scan(&k, &v); err != nil {
			return err
		}
		s.Config[k] = v
		return nil
	})
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	err = q.query(ctx, `SELECT id, role, created FROM members ORDER BY created, id`, func(scan func(...any) error) error {
		var id, role string
		var created int64
		if err := scan(&id, &role, &created); err != nil {
			return err
		}
		ref, err := feeds.ParseFeedRef(id)
		if err != nil {
			return fmt.Errorf("stored id %q: %w", id, err)
		}
		s.Members = append(s.Members, Member{ID: ref, Role: Role(role), Created: time.Unix(created, 0).UTC()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("members: %w", err)
	}
	err = q.query(ctx, `SELECT id, hash, coalesce(created_by, ''), uses, expires, created FROM invites ORDER BY id`, func(scan func(...any) error) error {
		var inv StoredInvite
		var exp, created int64
		if err := scan(&inv.ID, &inv.Hash, &inv.CreatedBy, &inv.Uses, &exp, &created); err != nil {
			return err
		}
		inv.Expires, inv.Created = time.Unix(exp, 0).UTC(), time.Unix(created, 0).UTC()
		s.Invites = append(s.Invites, inv)
		return nil
	})
	if err != nil {
		return fmt.Errorf("invites: %w", err)
	}
	err = q.query(ctx, `SELECT name, owner, signature, created FROM aliases ORDER BY name`, func(scan func(...any) error) error {
		var a Alias
		var owner string
		var created int64
		if err := scan(&a.Name, &owner, &a.Signature, &created); err != nil {
			return err
		}
		var err error
		if a.Owner, err = feeds.ParseFeedRef(owner); err != nil {
			return fmt.Errorf("stored owner %q: %w", owner, err)
		}
		a.Created = time.Unix(created, 0).UTC()
		s.Aliases = append(s.Aliases, a)
		return nil
	})
	if err != nil {
		return fmt.Errorf("aliases: %w", err)
	}
	err = q.query(ctx, `SELECT id, comment, created FROM denied ORDER BY created, id`, func(scan func(...any) error) error {
		var d Denied
		var id string
		var created int64
		if err := scan(&id, &d.Comment, &created); err != nil {
			return err
		}
		var err error
		if d.ID, err = feeds.ParseFeedRef(id); err != nil {
			return fmt.Errorf("stored id %q: %w", id, err)
		}
		d.Created = time.Unix(created, 0).UTC()
		s.Denied = append(s.Denied, d)
		return nil
	})
	if err != nil {
		return fmt.Errorf("denied: %w", err)
	}
	err = q.query(ctx, `SELECT hash, member, csrf, created, expires FROM sessions ORDER BY created, hash`, func(scan func(...any) error) error {
		var ss StoredSession
		var member string
		var created, exp int64
		if err := scan(&ss.Hash, &member, &ss.CSRF, &created, &exp); err != nil {
			return err
		}
		var err error
		if ss.Member, err = feeds.ParseFeedRef(member); err != nil {
			return fmt.Errorf("stored member %q: %w", member, err)
		}
		ss.Created, ss.Expires = time.Unix(created, 0).UTC(), time.Unix(exp, 0).UTC()
		s.Sessions = append(s.Sessions, ss)
		return nil
	})
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	return nil
}

// restoreSQL inserts every row of s with exec; ph is the placeholder
// style: "?" (SQLite) or "$" (PostgreSQL, numbered).
func restoreSQL(exec func(q string, args ...any) error, ph string, s *Snapshot) error {
	p := func(n int) string {
		out := ""
		for i := 1; i <= n; i++ {
			if i > 1 {
				out += ", "
			}
			if ph == "?" {
				out += "?"
			} else {
				out += fmt.Sprintf("$%d", i)
			}
		}
		return out
	}
	for k, v := range s.Config {
		if err := exec(`INSERT INTO config(key, value) VALUES (`+p(2)+`)`, k, v); err != nil {
			return fmt.Errorf("config %q: %w", k, err)
		}
	}
	for _, m := range s.Members {
		if _, err := ParseRole(string(m.Role)); err != nil {
			return fmt.Errorf("member %s: %w", m.ID, err)
		}
		if err := exec(`INSERT INTO members(id, role, created) VALUES (`+p(3)+`)`, m.ID.String(), string(m.Role), m.Created.Unix()); err != nil {
			return fmt.Errorf("member %s: %w", m.ID, err)
		}
	}
	for _, inv := range s.Invites {
		if err := exec(`INSERT INTO invites(id, hash, created_by, uses, expires, created) VALUES (`+p(6)+`)`,
			inv.ID, inv.Hash, nullString(inv.CreatedBy), inv.Uses, inv.Expires.Unix(), inv.Created.Unix()); err != nil {
			return fmt.Errorf("invite %d: %w", inv.ID, err)
		}
	}
	for _, a := range s.Aliases {
		if err := exec(`INSERT INTO aliases(name, owner, signature, created) VALUES (`+p(4)+`)`, a.Name, a.Owner.String(), a.Signature, a.Created.Unix()); err != nil {
			return fmt.Errorf("alias %q: %w", a.Name, err)
		}
	}
	for _, d := range s.Denied {
		if err := exec(`INSERT INTO denied(id, comment, created) VALUES (`+p(3)+`)`, d.ID.String(), d.Comment, d.Created.Unix()); err != nil {
			return fmt.Errorf("denied %s: %w", d.ID, err)
		}
	}
	for _, ss := range s.Sessions {
		if err := exec(`INSERT INTO sessions(hash, member, csrf, created, expires) VALUES (`+p(5)+`)`, ss.Hash, ss.Member.String(), ss.CSRF, ss.Created.Unix(), ss.Expires.Unix()); err != nil {
			return fmt.Errorf("session of %s: %w", ss.Member, err)
		}
	}
	return nil
}
