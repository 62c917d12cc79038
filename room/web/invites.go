package web

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/cask-ssb/cask/room/roomdb"
)

// HTTP invites (protocol.md §8.8).

// InviteJSON is the answer of GET /join?invite=…&encoding=json.
type InviteJSON struct {
	Status string `json:"status"`
	Invite string `json:"invite"`
	PostTo string `json:"postTo"`
}

// ConsumeJSON is the answer of POST /invite/consume.
type ConsumeJSON struct {
	Status             string `json:"status"`
	MultiserverAddress string `json:"multiserverAddress"`
}

// ClaimURI is the ssb: link an app claims the invite with.
func (s *Server) ClaimURI(code string) string {
	q := url.Values{"action": {"claim-http-invite"}, "invite": {code}, "postTo": {s.URL("/invite/consume", nil)}}
	return "ssb:experimental?" + q.Encode()
}

// InviteURL is the web link of an invite.
func (s *Server) InviteURL(code string) string {
	return s.URL("/join", url.Values{"invite": {code}})
}

const inviteGone = "This invite is unknown, was already used, was revoked or has expired. Ask whoever sent it for a new one."

func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	code := q.Get("invite")
	asJSON := q.Get("encoding") == "json"
	err := s.o.Store.CheckInvite(r.Context(), code)
	if err != nil {
		status := http.StatusNotFound
		msg := inviteGone
		if !errors.Is(err, roomdb.ErrInviteInvalid) {
			status, msg = http.StatusInternalServerError, "the room's database is unavailable"
			s.o.Logger.Error("check invite", "err", err)
		}
		if asJSON {
			writeJSON(w, status, jsonError{Status: "error", Error: msg})
			return
		}
		s.fail(w, r, status, "Invite not valid", msg)
		return
	}
	if asJSON {
		writeJSON(w, http.StatusOK, InviteJSON{Status: "successful", Invite: code, PostTo: s.URL("/invite/consume", nil)})
		return
	}
	claim := s.ClaimURI(code)
	qr, err := qrSVG(claim)
	if err != nil {
		s.o.Logger.Error("invite qr code", "err", err)
	}
	s.render(w, http.StatusOK, "join", page{Title: "Join " + s.o.Domain, Session: s.sessionOf(r), CSRF: visitorCSRF(w, r), Data: map[string]any{
		"Claim": claim, "Link": s.InviteURL(code), "QR": qr, "Code": code,
	}})
}

func (s *Server) consume(w http.ResponseWriter, r *http.Request) {
	req, err := parseConsume(r.Header.Get("Content-Type"), r.Body)
	if req.JSON || r.Header.Get("Accept") == "application/json" {
		if err != nil {
			writeJSON(w, http.StatusBadRequest, jsonError{Status: "error", Error: err.Error()})
			return
		}
		s.useInvite(w, r, req)
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "Invite not claimed", err.Error())
		return
	}
	// A form: it must come from our join page.
	c, cerr := r.Cookie(csrfCookie)
	if cerr != nil || !tokenEqual(req.CSRF, c.Value) {
		s.fail(w, r, http.StatusForbidden, "Refused", "This form did not come from this room's invite page (CSRF token missing or wrong). Open the invite link again.")
		return
	}
	s.useInvite(w, r, req)
}

func (s *Server) useInvite(w http.ResponseWriter, r *http.Request, req consumeRequest) {
	ctx := r.Context()
	fail := func(status int, title, msg string) {
		if req.JSON {
			writeJSON(w, status, jsonError{Status: "error", Error: msg})
			return
		}
		s.fail(w, r, status, title, msg)
	}
	if denied, err := s.o.Store.IsDenied(ctx, req.ID); err != nil || denied {
		fail(http.StatusForbidden, "Invite not claimed", "This key is denied access to the room.")
		return
	}
	if err := s.o.Store.UseInvite(ctx, req.Invite, req.ID); err != nil {
		if errors.Is(err, roomdb.ErrInviteInvalid) {
			fail(http.StatusNotFound, "Invite not valid", inviteGone)
			return
		}
		s.o.Logger.Error("use invite", "err", err)
		fail(http.StatusInternalServerError, "Error", "the room's database is unavailable")
		return
	}
	s.o.Logger.Info("invite claimed", "member", req.ID.String())
	addr := s.o.Address()
	if req.JSON {
		writeJSON(w, http.StatusOK, ConsumeJSON{Status: "successful", MultiserverAddress: addr})
		return
	}
	s.render(w, http.StatusOK, "joined", page{Title: "Welcome to " + s.o.Domain, Data: map[string]any{"ID": req.ID.String(), "Address": addr}})
}
