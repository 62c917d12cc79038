package roomdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cask-ssb/cask/feeds"
)

// Store is the room's state, whichever database holds it. DB (SQLite)
// and PG (PostgreSQL) implement it, and storetest checks that they
// behave the same. The room's packages declare the parts they use.
type Store interface {
	// Backend names the implementation: "sqlite" or "postgres".
	Backend() string
	Close() error
	// SchemaVersion is the number of migrations applied (LatestSchema
	// once open).
	SchemaVersion(ctx context.Context) (int, error)

	Mode(ctx context.Context) (Mode, error)
	SetMode(ctx context.Context, m Mode) error
	Landing(ctx context.Context) (string, error)
	SetLanding(ctx context.Context, text string) error

	AddMember(ctx context.Context, id feeds.FeedRef, role Role) error
	SetRole(ctx context.Context, id feeds.FeedRef, role Role) error
	RemoveMember(ctx context.Context, id feeds.FeedRef) error
	Role(ctx context.Context, id feeds.FeedRef) (Role, bool, error)
	Members(ctx context.Context) ([]Member, error)
	CountMembers(ctx context.Context) (int, error)

	CreateInvite(ctx context.Context, createdBy *feeds.FeedRef, uses int, ttl time.Duration) (string, Invite, error)
	UseInvite(ctx context.Context, code string, id feeds.FeedRef) error
	CheckInvite(ctx context.Context, code string) error
	Invites(ctx context.Context) ([]Invite, error)
	RevokeInvite(ctx context.Context, id int64) error

	RegisterAlias(ctx context.Context, name string, owner feeds.FeedRef, signature string) error
	RevokeAlias(ctx context.Context, name string, owner *feeds.FeedRef) error
	Aliases(ctx context.Context, owner *feeds.FeedRef) ([]Alias, error)

	Deny(ctx context.Context, id feeds.FeedRef, comment string) error
	Undeny(ctx context.Context, id feeds.FeedRef) error
	IsDenied(ctx context.Context, id feeds.FeedRef) (bool, error)
	DeniedKeys(ctx context.Context) ([]Denied, error)

	CreateSession(ctx context.Context, member feeds.FeedRef, ttl time.Duration) (string, Session, error)
	Session(ctx context.Context, token string) (Session, error)
	EndSession(ctx context.Context, token string) error
	EndSessions(ctx context.Context, member feeds.FeedRef) (int, error)

	// Dump reads every table in one read transaction (room migrate-db).
	Dump(ctx context.Context) (*Snapshot, error)
	// Restore writes s in one transaction. It refuses a database that
	// holds members (ErrNotEmpty) unless force, which first deletes
	// everything.
	Restore(ctx context.Context, s *Snapshot, force bool) error
}

var (
	_ Store = (*DB)(nil)
	_ Store = (*PG)(nil)
)

// LatestSchema is the number of migrations this program applies; both
// implementations number them alike.
const LatestSchema = 2

// ErrNotEmpty is returned by Restore for a target that holds members.
var ErrNotEmpty = errors.New("target database already holds members")

// Options for opening a store.
type Options struct {
	// Mode is stored when no mode is stored yet (default community).
	Mode Mode
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Mode == "" {
		o.Mode = ModeCommunity
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Backend is a database kind of a database URL.
type Backend string

// Backends.
const (
	BackendSQLite   Backend = "sqlite"
	BackendPostgres Backend = "postgres"
)

// ParseDBURL reads a database setting: "" means the SQLite file
// defaultPath, "sqlite:PATH" or a bare path a SQLite file, and
// "postgres://..." or "postgresql://..." a PostgreSQL server. It returns
// the kind and the path or URL to open.
func ParseDBURL(s, defaultPath string) (Backend, string, error) {
	switch {
	case s == "":
		return BackendSQLite, defaultPath, nil
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		return BackendPostgres, s, nil
	case strings.HasPrefix(s, "sqlite:"):
		p := strings.TrimPrefix(strings.TrimPrefix(s, "sqlite:"), "//")
		if p == "" {
			return "", "", errors.New("db sqlite: want sqlite:PATH")
		}
		return BackendSQLite, p, nil
	case strings.Contains(s, "://"):
		scheme, _, _ := strings.Cut(s, "://")
		return "", "", fmt.Errorf("db: unknown scheme %q: want sqlite:PATH, a path, or postgres://", scheme)
	}
	return BackendSQLite, s, nil
}

// OpenStore opens the database that dbURL names (see ParseDBURL).
func OpenStore(ctx context.Context, dbURL, defaultPath string, o Options) (Store, error) {
	kind, target, err := ParseDBURL(dbURL, defaultPath)
	if err != nil {
		return nil, err
	}
	if kind == BackendPostgres {
		return OpenPostgres(ctx, target, o)
	}
	return OpenSQLite(ctx, target, o)
}

// Snapshot is every row of a room database, as stored (hashes, not
// codes or tokens).
type Snapshot struct {
	Config   map[string]string
	Members  []Member
	Invites  []StoredInvite
	Aliases  []Alias
	Denied   []Denied
	Sessions []StoredSession
}

// StoredInvite is an invite row with its code's hash.
type StoredInvite struct {
	Invite
	Hash []byte
}

// StoredSession is a session row with its token's hash.
type StoredSession struct {
	Hash    []byte
	Member  feeds.FeedRef
	CSRF    string
	Created time.Time
	Expires time.Time
}

// Counts says how many rows of each table a copy moved.
type Counts struct {
	Members  int `json:"members"`
	Invites  int `json:"invites"`
	Aliases  int `json:"aliases"`
	Denied   int `json:"denied"`
	Sessions int `json:"sessions"`
	Config   int `json:"config"`
}

// Counts of the rows in s.
func (s *Snapshot) Counts() Counts {
	return Counts{Members: len(s.Members), Invites: len(s.Invites), Aliases: len(s.Aliases),
		Denied: len(s.Denied), Sessions: len(s.Sessions), Config: len(s.Config)}
}

// Copy moves every row of from into to (one transaction on to) and
// returns what it copied. It refuses a target that holds members unless
// force.
func Copy(ctx context.Context, from, to Store, force bool) (Counts, error) {
	s, err := from.Dump(ctx)
	if err != nil {
		return Counts{}, fmt.Errorf("read %s database: %w", from.Backend(), err)
	}
	if err := to.Restore(ctx, s, force); err != nil {
		return Counts{}, fmt.Errorf("write %s database: %w", to.Backend(), err)
	}
	return s.Counts(), nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
