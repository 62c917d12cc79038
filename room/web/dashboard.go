package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/room/authz"
	"github.com/cask-ssb/cask/room/roomdb"
)

// The dashboard of signed-in members. Each page shows only what the
// member's role allows in the room's mode (room/authz), and each action
// asks authz again.

// may answers the template's "can the viewer do X" questions.
type may map[authz.Action]bool

func (s *Server) mayOf(a authz.Actor, mode roomdb.Mode) may {
	m := may{}
	for _, act := range []authz.Action{authz.CreateInvite, authz.ManageInvites, authz.RevokeAnyAlias, authz.AddMember,
		authz.RemoveMember, authz.ChangeRole, authz.ManageDenied, authz.SetMode, authz.EditLanding} {
		m[act] = authz.Can(a, mode, act) == nil
	}
	return m
}

// Can is used by templates: {{if .Data.May.Can "set-mode"}}.
func (m may) Can(act string) bool { return m[authz.Action(act)] }

func (s *Server) nav(m may) []navItem {
	n := []navItem{{"/dashboard", "Overview"}, {"/dashboard/members", "Members"}, {"/dashboard/invites", "Invites"}, {"/dashboard/aliases", "Aliases"}}
	if m.Can(string(authz.ManageDenied)) {
		n = append(n, navItem{"/dashboard/denied", "Denied keys"})
	}
	if m.Can(string(authz.EditLanding)) {
		n = append(n, navItem{"/dashboard/landing", "Landing page"})
	}
	return n
}

// dash renders a dashboard page with the common parts filled in.
func (s *Server) dash(w http.ResponseWriter, r *http.Request, sess *roomdb.Session, a authz.Actor, name, title string, data map[string]any) {
	mode, err := s.o.Store.Mode(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Error", "the room's database is unavailable")
		return
	}
	m := s.mayOf(a, mode)
	if data == nil {
		data = map[string]any{}
	}
	data["May"], data["Mode"], data["Me"] = m, string(mode), sess.Member.String()
	s.render(w, http.StatusOK, name, page{Title: title + " – " + s.o.Domain, Session: sess, CSRF: sess.CSRF,
		Flash: r.URL.Query().Get("done"), Nav: s.nav(m), Data: data})
}

// pageSize is how many rows a dashboard list shows at once.
const pageSize = 100

// pager is one page of a list.
type pager struct {
	From, To   int // the rows shown: [From, To)
	Prev, Next string
}

// paginate reads ?page=N (from 1) for a list of n rows.
func paginate(r *http.Request, n int) pager {
	p, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || p < 1 {
		p = 1
	}
	pages := max(1, (n+pageSize-1)/pageSize)
	p = min(p, pages)
	pg := pager{From: (p - 1) * pageSize, To: min(n, p*pageSize)}
	link := func(k int) string { return r.URL.Path + "?" + url.Values{"page": {strconv.Itoa(k)}}.Encode() }
	if p > 1 {
		pg.Prev = link(p - 1)
	}
	if p < pages {
		pg.Next = link(p + 1)
	}
	return pg
}

// done redirects after a successful action (post/redirect/get).
func done(w http.ResponseWriter, r *http.Request, to, msg string) {
	http.Redirect(w, r, to+"?"+url.Values{"done": {msg}}.Encode(), http.StatusSeeOther)
}

// check asks authz for the viewer; false means it answered the request.
func (s *Server) check(w http.ResponseWriter, r *http.Request, a authz.Actor, act authz.Action) (roomdb.Mode, bool) {
	mode, err := s.o.Store.Mode(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Error", "the room's database is unavailable")
		return mode, false
	}
	if err := authz.Can(a, mode, act); err != nil {
		s.fail(w, r, http.StatusForbidden, "Not allowed", err.Error())
		return mode, false
	}
	return mode, true
}

func (s *Server) badForm(w http.ResponseWriter, r *http.Request, err error) {
	s.fail(w, r, http.StatusBadRequest, "Check the form", err.Error())
}

func (s *Server) dbFail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, roomdb.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, "Not found", err.Error())
		return
	}
	s.o.Logger.Error("dashboard", "err", err)
	s.fail(w, r, http.StatusInternalServerError, "Error", "the room's database is unavailable")
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request, sess *roomdb.Session, a authz.Actor) {
	n, err := s.o.Store.CountMembers(r.Context())
	if err != nil {
		s.dbFail(w, r, err)
		return
	}
	att := s.o.Peers.Attendants()
	ids := make([]string, len(att))
	for i, id := range att {
		ids[i] = id.String()
	}
	s.dash(w, r, sess, a, "dashboard", "Overview", map[string]any{
		"Members": n, "Attendants": ids, "ID": s.o.Room.String(), "Address": s.o.Address(),
		"Modes": []string{string(roomdb.ModeOpen), string(roomdb.ModeCommunity), string(roomdb.ModeRestricted)},
	})
}

func (s *Server) membersPage(w http.ResponseWriter, r *http.Request, sess *roomdb.Session, a authz.Actor) {
	ms, err := s.o.Store.Members(r.Context())
	if err != nil {
		s.dbFail(w, r, err)
		return
	}
	type option struct {
		Role     string
		Selected bool
	}
	type row struct {
		N         int
		ID, Role  string
		Options   []option // the role choices, when the viewer may change roles
		CanRemove bool
	}
	mode, _ := s.o.Store.Mode(r.Context())
	pg := paginate(r, len(ms))
	canRole := authz.Can(a, mode, authz.ChangeRole) == nil
	rows := make([]row, 0, pg.To-pg.From)
	for i, m := range ms[pg.From:pg.To] {
		rw := row{N: pg.From + i, ID: m.ID.String(), Role: string(m.Role), CanRemove: authz.CanRemove(a, mode, m.Role) == nil && m.ID != sess.Member}
		if canRole {
			for _, ro := range []roomdb.Role{roomdb.RoleMember, roomdb.RoleModerator, roomdb.RoleAdmin} {
				rw.Options = append(rw.Options, option{string(ro), ro == m.Role})
			}
		}
		rows = append(rows, rw)
	}
	s.dash(w, r, sess, a, "members", "Members", map[string]any{"Rows": rows, "Page": pg, "Total": len(ms),
		"Actions": canRole || authz.Can(a, mode, authz.RemoveMember) == nil})
}

func (s *Server) memberAdd(w http.ResponseWriter, r *http.Request, sess *roomdb.Session, a authz.Actor) {
	if _, ok := s.check(w, r, a, authz.AddMember); !ok {
		return
	}
	id, err := parseID(r.PostForm, "id")
	if err != nil {
		s.badForm(w, r, err)
		return
	}
	if err := s.o.Store.AddMember(r.Context(), id, roomdb.RoleMember); err != nil {
		s.dbFail(w, r, err)
		return
	}
	done(w, r, "/dashboard/members", "added "+id.String())
}

func (s *Server) memberRole(w http.ResponseWriter, r *http.Request, sess *roomdb.Session, a authz.Actor) {
	if _, ok := s.check(w, r, a, authz.ChangeRole); !ok {
		return
	}
	id, err := parseID(r.PostForm, "id")
	if err != nil {
		s.badForm(w, r, err)
		return
	}
	role, err := roomdb.ParseRole(r.PostForm.Get("role"))
	if err != nil {
		s.badForm(w, r, err)
		return
	}
	if id == sess.Member && role != roomdb.RoleAdmin {
		s.fail(w, r, http.StatusBadRequest, "Not done", "You cannot take away your own admin role here (ask another admin, or use room admin on the server).")
		return
	}
	if err := s.o.Store.SetRole(r.Context(), id, role); err != nil {
		s.dbFail(w, r, err)
		return
	}
	done(w, r, "/dashboard/members", id.String()+" is now "+string(role))
}

func (s *Server) memberRemove(w http.ResponseWriter, r *http.Request, sess *roomdb.Session, a authz.Actor) {
	id, err := parseID(r.PostForm, "id")
	if err != nil {
		s.badForm(w, r, err)
		return
	}
	ctx := r.Context()
	role, ok, err := s.o.Store.Role(ctx, id)
	if err != nil {
		s.dbFail(w, r, err)
		return
	}
	if !ok {
		s.fail(w, r, http.StatusNotFound, "Not found", id.String()+" is not a member")
		return
	}
	mode, err := s.o.Store.Mode(ctx)
	if err != nil {
		s.dbFail(w, r, err)
		return
	}
	if err := authz.CanRemove(a, mode, role); err != nil {
		s.fail(w, r, http.StatusForbidden, "Not allowed", err.Error())
		return
	}
	if id == sess.Member {
		s.fail(w, r, http.StatusBadRequest, "Not done", "You cannot remove yourself here.")
		return
	}
	if err := s.o.Store.RemoveMember(ctx, id); err != nil {
		s.dbFail(w, r, err)
		return
	}
	s.o.OnChange(ctx)
	done(w, r, "/dashboard/members", "removed "+id.String())
}

func (s *Server) invitesPage(w http.ResponseWriter, r *http.Request, sess *roomdb.Session, a authz.Actor) {
	ctx := r.Context()
	all, err := s.o.Store.Invites(ctx)
	if err != nil {
		s.dbFail(w, r, err)
		return
	}
	mode, _ := s.o.Store.Mode(ctx)
	seeAll := authz.Can(a, mode, authz.ManageInvites) == nil
	list := all[:0:0]
	for _, inv := range all {
		if seeAll || inv.CreatedBy == sess.Member.String() {
			list = append(list, inv)
		}
	}
	pg := paginate(r, len(list))
	s.dash(w, r, sess, a, "invites", "Invites", map[string]any{"Invites": list[pg.From:pg.To], "Page": pg, "TTLs": []string{"1h", "24h", "7d", "30d"}})
}

func (s *Server) inviteCreate(w http.ResponseWriter, r *http.Request, sess *roomdb.Session, a authz.Actor) {
	mode, ok := s.check(w, r, a, authz.CreateInvite)
	if !ok {
		return
	}
	f, err := parseInviteForm(r.PostForm)
	if err != nil {
		s.badForm(w, r, err)
		return
	}
	if f.Uses > 1 && authz.Can(a, mode, authz.ManageInvites) != nil {
		s.fail(w, r, http.StatusForbidden, "Not allowed", "Only admins and moderators can make invites for more than one person.")
		return
	}
	by := sess.Member
	code, inv, err := s.o.Store.CreateInvite(r.Context(), &by, f.Uses, f.TTL)
	if err != nil {
		s.dbFail(w, r, err)
		return
	}
	qr, err := qrSVG(s.ClaimURI(code))
	if err != nil {
		s.o.Logger.Error("invite qr code", "err", err)
	}
	s.dash(w, r, sess, a, "invite-created", "New invite", map[string]any{
		"Link": s.InviteURL(code), "Claim": s.ClaimURI(code), "QR": qr, "Invite": inv,
	})
}

func (s *Server) inviteRevoke(w http.ResponseWriter, r *http.Request, sess *roomdb.Session, a authz.Actor) {
	id, err := strconv.ParseInt(r.PostForm.Get("id"), 10, 64)
	if err != nil {
		s.badForm(w, r, errors.New("id: want an invite number"))
		return
	}
	ctx := r.Context()
	mode, err := s.o.Store.Mode(ctx)
	if err != nil {
		s.dbFail(w, r, err)
		return
	}
	if authz.Can(a, mode, authz.ManageInvites) != nil {
		// One's own invites only.
		list, err := s.o.Store.Invites(ctx)
		if err != nil {
			s.dbFail(w, r, err)
			return
		}
		own := false
		for _, inv := range list {
			own = own || inv.ID == id && inv.CreatedBy == sess.Member.String()
		}
		if !own {
			s.fail(w, r, http.StatusForbidden, "Not allowed", "You can revoke only the invites you made.")
			return
		}
	}
	if err := s.o.Store.RevokeInvite(ctx, id); err != nil {
		s.dbFail(w, r, err)
		return
	}
	done(w, r, "/dashboard/invites", "revoked invite "+strconv.FormatInt(id, 10))
}

func (s *Server) aliasesPage(w http.ResponseWriter, r *http.Request, sess *roomdb.Session, a authz.Actor) {
	as, err := s.o.Store.Aliases(r.Context(), nil)
	if err != nil {
		s.dbFail(w, r, err)
		return
	}
	mode, _ := s.o.Store.Mode(r.Context())
	anyAlias := authz.Can(a, mode, authz.RevokeAnyAlias) == nil
	type row struct {
		Name, Owner, URL string
		CanRevoke        bool
	}
	pg := paginate(r, len(as))
	rows := make([]row, 0, pg.To-pg.From)
	for _, al := range as[pg.From:pg.To] {
		rows = append(rows, row{Name: al.Name, Owner: al.Owner.String(), URL: s.URL("/alias/"+al.Name, nil), CanRevoke: anyAlias || al.Owner == sess.Member})
	}
	s.dash(w, r, sess, a, "aliases", "Aliases", map[string]any{"Rows": rows, "Page": pg, "Disabled": mode == roomdb.ModeRestricted})
}

func (s *Server) aliasRevoke(w http.ResponseWriter, r *http.Request, sess *roomdb.Session, a authz.Actor) {
	name := r.PostForm.Get("name")
	if err := roomdb.ValidAlias(name); err != nil {
		s.badForm(w, r, err)
		return
	}
	ctx := r.Context()
	mode, err := s.o.Store.Mode(ctx)
	if err != nil {
		s.dbFail(w, r, err)
		return
	}
	var owner *feeds.FeedRef
	if authz.Can(a, mode, authz.RevokeAnyAlias) != nil {
		owner = &sess.Member
	}
	if err := s.o.Store.RevokeAlias(ctx, name, owner); err != nil {
		s.dbFail(w, r, err)
		return
	}
	done(w, r, "/dashboard/aliases", "revoked alias "+name)
}

func (s *Server) deniedPage(w http.ResponseWriter, r *http.Request, sess *roomdb.Session, a authz.Actor) {
	if _, ok := s.check(w, r, a, authz.ManageDenied); !ok {
		return
	}
	list, err := s.o.Store.DeniedKeys(r.Context())
	if err != nil {
		s.dbFail(w, r, err)
		return
	}
	pg := paginate(r, len(list))
	s.dash(w, r, sess, a, "denied", "Denied keys", map[string]any{"Denied": list[pg.From:pg.To], "Page": pg})
}

func (s *Server) deniedAdd(w http.ResponseWriter, r *http.Request, sess *roomdb.Session, a authz.Actor) {
	if _, ok := s.check(w, r, a, authz.ManageDenied); !ok {
		return
	}
	id, err := parseID(r.PostForm, "id")
	if err != nil {
		s.badForm(w, r, err)
		return
	}
	if id == sess.Member {
		s.fail(w, r, http.StatusBadRequest, "Not done", "You cannot deny your own key.")
		return
	}
	comment := strings.TrimSpace(r.PostForm.Get("comment"))
	if len(comment) > 500 {
		s.badForm(w, r, errors.New("comment: longer than 500 bytes"))
		return
	}
	if err := s.o.Store.Deny(r.Context(), id, comment); err != nil {
		s.dbFail(w, r, err)
		return
	}
	s.o.OnChange(r.Context())
	done(w, r, "/dashboard/denied", "denied "+id.String())
}

func (s *Server) deniedRemove(w http.ResponseWriter, r *http.Request, _ *roomdb.Session, a authz.Actor) {
	if _, ok := s.check(w, r, a, authz.ManageDenied); !ok {
		return
	}
	id, err := parseID(r.PostForm, "id")
	if err != nil {
		s.badForm(w, r, err)
		return
	}
	if err := s.o.Store.Undeny(r.Context(), id); err != nil {
		s.dbFail(w, r, err)
		return
	}
	done(w, r, "/dashboard/denied", "allowed "+id.String()+" again")
}

func (s *Server) modeSet(w http.ResponseWriter, r *http.Request, _ *roomdb.Session, a authz.Actor) {
	if _, ok := s.check(w, r, a, authz.SetMode); !ok {
		return
	}
	m, err := roomdb.ParseMode(r.PostForm.Get("mode"))
	if err != nil {
		s.badForm(w, r, err)
		return
	}
	if err := s.o.Store.SetMode(r.Context(), m); err != nil {
		s.dbFail(w, r, err)
		return
	}
	s.o.Logger.Info("mode changed on the dashboard", "mode", string(m))
	s.o.OnChange(r.Context())
	done(w, r, "/dashboard", "mode is now "+string(m))
}

func (s *Server) landingPage(w http.ResponseWriter, r *http.Request, sess *roomdb.Session, a authz.Actor) {
	if _, ok := s.check(w, r, a, authz.EditLanding); !ok {
		return
	}
	text, err := s.o.Store.Landing(r.Context())
	if err != nil {
		s.dbFail(w, r, err)
		return
	}
	s.dash(w, r, sess, a, "landing", "Landing page", map[string]any{"Text": text, "Max": roomdb.MaxLandingLen})
}

func (s *Server) landingSet(w http.ResponseWriter, r *http.Request, _ *roomdb.Session, a authz.Actor) {
	if _, ok := s.check(w, r, a, authz.EditLanding); !ok {
		return
	}
	if err := s.o.Store.SetLanding(r.Context(), strings.ReplaceAll(r.PostForm.Get("text"), "\r\n", "\n")); err != nil {
		s.badForm(w, r, err)
		return
	}
	done(w, r, "/dashboard/landing", "landing page saved")
}
