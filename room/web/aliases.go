package web

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/cask-ssb/cask/room/authz"
	"github.com/cask-ssb/cask/room/roomdb"
)

// Alias pages (protocol.md §8.7).

// AliasJSON is the answer of GET /alias/NAME?encoding=json.
type AliasJSON struct {
	Status             string `json:"status"`
	MultiserverAddress string `json:"multiserverAddress"`
	RoomID             string `json:"roomId"`
	UserID             string `json:"userId"`
	Alias              string `json:"alias"`
	Signature          string `json:"signature"`
}

// ConsumeAliasURI is the ssb: link that opens a tunnel to an alias.
func ConsumeAliasURI(j AliasJSON) string {
	q := url.Values{"action": {"consume-alias"}, "alias": {j.Alias}, "userId": {j.UserID}, "signature": {j.Signature},
		"roomId": {j.RoomID}, "multiserverAddress": {j.MultiserverAddress}}
	return "ssb:experimental?" + q.Encode()
}

func (s *Server) alias(w http.ResponseWriter, r *http.Request) {
	s.serveAlias(w, r, r.PathValue("name"))
}

func (s *Server) serveAlias(w http.ResponseWriter, r *http.Request, name string) {
	ctx := r.Context()
	asJSON := r.URL.Query().Get("encoding") == "json"
	fail := func(status int, msg string) {
		if asJSON {
			writeJSON(w, status, jsonError{Status: "error", Error: msg})
			return
		}
		s.fail(w, r, status, "Alias not found", msg)
	}
	mode, err := s.o.Store.Mode(ctx)
	if err != nil {
		fail(http.StatusInternalServerError, "the room's database is unavailable")
		return
	}
	if err := authz.Can(authz.Actor{}, mode, authz.EditAliases); errors.Is(err, authz.ErrAliasesOff) {
		fail(http.StatusNotFound, "Aliases are disabled in this room (restricted mode).")
		return
	}
	if err := roomdb.ValidAlias(name); err != nil {
		fail(http.StatusNotFound, "No alias "+name+" here: "+err.Error())
		return
	}
	as, err := s.o.Store.Aliases(ctx, nil)
	if err != nil {
		fail(http.StatusInternalServerError, "the room's database is unavailable")
		return
	}
	var found *roomdb.Alias
	for i := range as {
		if as[i].Name == name {
			found = &as[i]
			break
		}
	}
	if found == nil {
		fail(http.StatusNotFound, "No alias "+name+" is registered in this room.")
		return
	}
	j := AliasJSON{Status: "successful", MultiserverAddress: s.o.Address(), RoomID: s.o.Room.String(),
		UserID: found.Owner.String(), Alias: found.Name, Signature: found.Signature}
	if asJSON {
		writeJSON(w, http.StatusOK, j)
		return
	}
	s.render(w, http.StatusOK, "alias", page{Title: name + " on " + s.o.Domain, Session: s.sessionOf(r), Data: map[string]any{
		"Alias": j, "Consume": ConsumeAliasURI(j),
	}})
}
