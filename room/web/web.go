// Package web is the room's HTTP side (protocol.md §8.7–§8.9): HTTP
// invites (/join, /invite/consume), alias pages (/alias/NAME and NAME.DOMAIN),
// sign-in with SSB both ways (/login, /withssb/...), and the dashboard of
// signed-in members. Pages are html/template files embedded in the binary,
// with plain CSS; the only script is the sign-in page's live wait.
//
// Who may do what is decided by room/authz, as for the admin socket and
// the peers' calls. The package never shows an IP address and never logs
// one above debug level. It does not listen itself: the room mounts its
// routes (Register) on the HTTP server it runs.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/room/roomdb"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Store is what the web side needs of the room's state; *roomdb.DB
// implements it.
type Store interface {
	Mode(ctx context.Context) (roomdb.Mode, error)
	SetMode(ctx context.Context, m roomdb.Mode) error
	Role(ctx context.Context, id feeds.FeedRef) (roomdb.Role, bool, error)
	Members(ctx context.Context) ([]roomdb.Member, error)
	CountMembers(ctx context.Context) (int, error)
	AddMember(ctx context.Context, id feeds.FeedRef, role roomdb.Role) error
	SetRole(ctx context.Context, id feeds.FeedRef, role roomdb.Role) error
	RemoveMember(ctx context.Context, id feeds.FeedRef) error
	CreateInvite(ctx context.Context, createdBy *feeds.FeedRef, uses int, ttl time.Duration) (string, roomdb.Invite, error)
	CheckInvite(ctx context.Context, code string) error
	UseInvite(ctx context.Context, code string, id feeds.FeedRef) error
	Invites(ctx context.Context) ([]roomdb.Invite, error)
	RevokeInvite(ctx context.Context, id int64) error
	Aliases(ctx context.Context, owner *feeds.FeedRef) ([]roomdb.Alias, error)
	RevokeAlias(ctx context.Context, name string, owner *feeds.FeedRef) error
	Deny(ctx context.Context, id feeds.FeedRef, comment string) error
	Undeny(ctx context.Context, id feeds.FeedRef) error
	IsDenied(ctx context.Context, id feeds.FeedRef) (bool, error)
	DeniedKeys(ctx context.Context) ([]roomdb.Denied, error)
	CreateSession(ctx context.Context, member feeds.FeedRef, ttl time.Duration) (string, roomdb.Session, error)
	Session(ctx context.Context, token string) (roomdb.Session, error)
	EndSession(ctx context.Context, token string) error
	EndSessions(ctx context.Context, member feeds.FeedRef) (int, error)
	Landing(ctx context.Context) (string, error)
	SetLanding(ctx context.Context, text string) error
}

// Peers is what the web side needs of the room's live connections.
type Peers interface {
	// Endpoint returns the connection of a connected peer.
	Endpoint(id feeds.FeedRef) (*muxrpc.Endpoint, bool)
	// Attendants lists the attendants now.
	Attendants() []feeds.FeedRef
}

// Options configure the web side.
type Options struct {
	Room   feeds.FeedRef // the room's id (sid of sign-in)
	Domain string        // public host name, in every link
	// Scheme of the links: "https" (the default; behind a TLS proxy or
	// with --tls-cert). Tests serving plain HTTP on loopback use "http".
	Scheme string
	// AliasSubdomains serves NAME.DOMAIN as the page of alias NAME.
	AliasSubdomains bool
	// Address returns the room's public multiserver address.
	Address func() string
	Store   Store
	Peers   Peers
	// OnChange runs after a change that may end sessions of peers
	// (member removed, key denied, mode changed).
	OnChange func(ctx context.Context)
	Logger   *slog.Logger
	Now      func() time.Time

	SessionTTL time.Duration // default 30 days
	// SignInRate sign-in attempts per minute per client (HTTP: per
	// address, kept in memory only; muxrpc: per key); default 10.
	SignInRate int
	// SolutionTimeout bounds httpAuth.requestSolution; default 10s.
	SolutionTimeout time.Duration
	// ChallengeTTL is how long a sign-in challenge stays open; default 5m.
	ChallengeTTL time.Duration
}

// Server is the web side.
type Server struct {
	o     Options
	pages map[string]*template.Template
	limit *limiter

	mu         sync.Mutex
	challenges map[string]*challenge // server-initiated sign-ins by sc
	finals     map[string]final      // one-time finalize tokens
}

// New returns the web side.
func New(o Options) (*Server, error) {
	if o.Scheme == "" {
		o.Scheme = "https"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OnChange == nil {
		o.OnChange = func(context.Context) {}
	}
	if o.Address == nil {
		o.Address = func() string { return "" }
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 30 * 24 * time.Hour
	}
	if o.SignInRate <= 0 {
		o.SignInRate = 10
	}
	if o.SolutionTimeout <= 0 {
		o.SolutionTimeout = 10 * time.Second
	}
	if o.ChallengeTTL <= 0 {
		o.ChallengeTTL = 5 * time.Minute
	}
	s := &Server{o: o, limit: newLimiter(o.SignInRate, time.Minute, o.Now),
		challenges: map[string]*challenge{}, finals: map[string]final{}}
	if err := s.parseTemplates(); err != nil {
		return nil, err
	}
	return s, nil
}

var funcs = template.FuncMap{
	"short": func(id string) string {
		if len(id) > 12 {
			return id[:12] + "…"
		}
		return id
	},
	"date": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	// safeURL lets ssb: links through html/template's URL filter (they
	// are built here, from escaped parts).
	"safeURL": func(s string) template.URL { return template.URL(s) },
}

func (s *Server) parseTemplates() error {
	s.pages = map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("web: template %s: %w", n, err)
		}
		s.pages[base] = t
	}
	return nil
}

// Register mounts every route on mux (Go 1.22 patterns). The room mounts
// its own extra handlers (health, WebSocket) on the same mux.
func (s *Server) Register(mux *http.ServeMux) {
	h := func(pattern string, f http.HandlerFunc) { mux.Handle(pattern, s.common(f)) }
	h("GET /{$}", s.home)
	mux.Handle("GET /static/", s.common(http.FileServerFS(staticFS).ServeHTTP))

	h("GET /join", s.join)
	h("POST /invite/consume", s.consume)

	h("GET /alias/{name}", s.alias)

	h("GET /login", s.login)
	h("GET /withssb/events", s.events)
	h("GET /withssb/continue", s.continueSignIn)
	h("GET /withssb/finalize", s.finalize)
	h("POST /logout", s.member(s.logout))

	h("GET /dashboard", s.member(s.dashboard))
	h("GET /dashboard/members", s.member(s.membersPage))
	h("POST /dashboard/members/add", s.member(s.memberAdd))
	h("POST /dashboard/members/role", s.member(s.memberRole))
	h("POST /dashboard/members/remove", s.member(s.memberRemove))
	h("GET /dashboard/invites", s.member(s.invitesPage))
	h("POST /dashboard/invites/create", s.member(s.inviteCreate))
	h("POST /dashboard/invites/revoke", s.member(s.inviteRevoke))
	h("GET /dashboard/aliases", s.member(s.aliasesPage))
	h("POST /dashboard/aliases/revoke", s.member(s.aliasRevoke))
	h("GET /dashboard/denied", s.member(s.deniedPage))
	h("POST /dashboard/denied/add", s.member(s.deniedAdd))
	h("POST /dashboard/denied/remove", s.member(s.deniedRemove))
	h("POST /dashboard/mode", s.member(s.modeSet))
	h("GET /dashboard/landing", s.member(s.landingPage))
	h("POST /dashboard/landing", s.member(s.landingSet))
}

// Handler returns the routes on a new mux (tests, tools).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Register(mux)
	return mux
}

// common sets the headers every answer carries and serves alias
// subdomains.
func (s *Server) common(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		if s.o.AliasSubdomains {
			if name, ok := s.subdomainAlias(r.Host); ok && r.URL.Path == "/" {
				s.serveAlias(w, r, name)
				return
			}
		}
		next(w, r)
	})
}

// subdomainAlias reads NAME from a Host of NAME.DOMAIN.
func (s *Server) subdomainAlias(host string) (string, bool) {
	h := strings.ToLower(host)
	d := strings.ToLower(s.o.Domain)
	if !strings.Contains(d, ":") {
		if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
			h = h[:i]
		}
	}
	name, ok := strings.CutSuffix(h, "."+d)
	if !ok || name == "" || strings.Contains(name, ".") {
		return "", false
	}
	return name, true
}

// URL is an absolute link on the room's public host.
func (s *Server) URL(path string, q url.Values) string {
	u := url.URL{Scheme: s.o.Scheme, Host: s.o.Domain, Path: path}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// page is what every template gets.
type page struct {
	Title   string
	Room    string // the room's domain
	Session *roomdb.Session
	CSRF    string
	Flash   string
	Nav     []navItem
	Data    any
}

type navItem struct{ Href, Label string }

func (s *Server) render(w http.ResponseWriter, status int, name string, p page) {
	t, ok := s.pages[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	p.Room = s.o.Domain
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout.html", p); err != nil {
		s.o.Logger.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// fail shows an error page with a clear message.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	var sess *roomdb.Session
	if v, ok := r.Context().Value(sessionKey{}).(*roomdb.Session); ok {
		sess = v
	}
	s.render(w, status, "error", page{Title: title, Session: sess, Data: map[string]any{"Status": status, "Message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// jsonError is the spec's failure shape.
type jsonError struct {
	Status string `json:"status"`
	Error  string `json:"error"`
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	landing, err := s.o.Store.Landing(ctx)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Error", "the room's database is unavailable")
		return
	}
	mode, _ := s.o.Store.Mode(ctx)
	sess := s.sessionOf(r)
	s.render(w, http.StatusOK, "home", page{Title: s.o.Domain + " – SSB room", Session: sess, Data: map[string]any{
		"Landing": landing, "Mode": string(mode), "ID": s.o.Room.String(), "Address": s.o.Address(),
	}})
}
