package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/plugins/httpauth"
	"github.com/cask-ssb/cask/room/authz"
	"github.com/cask-ssb/cask/room/roomdb"
)

// Sign-in with SSB (protocol.md §8.9).

// challenge is an open server-initiated sign-in.
type challenge struct {
	created time.Time
	solved  chan struct{} // closed when token is set
	token   string        // the finalize token, once solved
}

// final is a one-time finalize token: the browser trades it for a session.
type final struct {
	member  feeds.FeedRef
	expires time.Time
}

// maxChallenges bounds the open sign-ins held in memory.
const maxChallenges = 10000

// StartURI is the link a server-initiated sign-in shows.
func (s *Server) StartURI(sc string) string {
	q := url.Values{"action": {"start-http-auth"}, "sid": {s.o.Room.String()}, "sc": {sc}}
	if a := s.o.Address(); a != "" {
		q.Set("multiserverAddress", a)
	}
	return "ssb:experimental?" + q.Encode()
}

// expireLocked drops challenges and finalize tokens past their time.
func (s *Server) expireLocked(now time.Time) {
	for k, c := range s.challenges {
		if now.Sub(c.created) > s.o.ChallengeTTL {
			delete(s.challenges, k)
		}
	}
	for k, f := range s.finals {
		if now.After(f.expires) {
			delete(s.finals, k)
		}
	}
}

// newChallenge opens a server-initiated sign-in.
func (s *Server) newChallenge() (string, error) {
	sc := httpauth.NewChallenge()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Now()
	if len(s.challenges) >= maxChallenges {
		s.expireLocked(now)
		if len(s.challenges) >= maxChallenges {
			return "", errors.New("too many sign-ins in progress; try again in a few minutes")
		}
	}
	s.challenges[sc] = &challenge{created: now, solved: make(chan struct{})}
	return sc, nil
}

// actorOf looks up id's role and denial for authz.
func (s *Server) actorOf(ctx context.Context, id feeds.FeedRef) (authz.Actor, roomdb.Mode, error) {
	mode, err := s.o.Store.Mode(ctx)
	if err != nil {
		return authz.Actor{}, mode, err
	}
	role, _, err := s.o.Store.Role(ctx, id)
	if err != nil {
		return authz.Actor{}, mode, err
	}
	denied, err := s.o.Store.IsDenied(ctx, id)
	return authz.Actor{Role: role, Denied: denied}, mode, err
}

// ErrNoChallenge: SendSolution for a challenge this server did not make
// (or that expired or was used).
var ErrNoChallenge = errors.New("no sign-in in progress with this challenge (expired or already used)")

// RemotePeers is what Peers may also offer when the room is one node of
// a mesh: a member connected to another node can sign in here.
type RemotePeers interface {
	// Holds says whether another node holds a connection of id.
	Holds(id feeds.FeedRef) bool
	// RequestSolution asks that node for the app's solution to (sc, cc).
	RequestSolution(ctx context.Context, id feeds.FeedRef, sc, cc string) (string, error)
}

// SendSolution completes a server-initiated sign-in (httpAuth.sendSolution
// from cid). The challenge is used once: a replayed solution is refused.
func (s *Server) SendSolution(ctx context.Context, cid feeds.FeedRef, sc, cc, sol string) error {
	if !s.limit.allow("key:" + cid.String()) {
		return errors.New("too many sign-in attempts; wait a minute")
	}
	if err := httpauth.CheckChallenge(cc); err != nil {
		return err
	}
	a, mode, err := s.actorOf(ctx, cid)
	if err != nil {
		return fmt.Errorf("room unavailable: %w", err)
	}
	if err := authz.Can(a, mode, authz.SignIn); err != nil {
		return err
	}
	if err := httpauth.Verify(s.o.Room, cid, sc, cc, sol); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.challenges[sc]
	if c == nil || s.o.Now().Sub(c.created) > s.o.ChallengeTTL {
		return ErrNoChallenge
	}
	delete(s.challenges, sc)
	c.token = randomToken()
	s.finals[c.token] = final{member: cid, expires: s.o.Now().Add(s.o.ChallengeTTL)}
	// The page may poll /withssb/continue instead of waiting on events.
	s.challenges["done:"+sc] = &challenge{created: c.created, token: c.token}
	close(c.solved)
	s.o.Logger.Info("signed in with SSB (server-initiated)", "member", cid.String())
	return nil
}

// InvalidateAll ends every web session of cid (httpAuth.invalidateAllSolutions).
func (s *Server) InvalidateAll(ctx context.Context, cid feeds.FeedRef) error {
	n, err := s.o.Store.EndSessions(ctx, cid)
	if err != nil {
		return err
	}
	s.mu.Lock()
	for k, f := range s.finals {
		if f.member == cid {
			delete(s.finals, k)
		}
	}
	s.mu.Unlock()
	s.o.Logger.Info("signed out everywhere", "member", cid.String(), "sessions", n)
	return nil
}

// login is both ways in: with cid and cc, a client-initiated sign-in;
// without, the page of a server-initiated one.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	lq, clientInit, err := parseLoginQuery(r.URL.Query())
	if clientInit {
		if !s.limit.allow("ip:" + clientKey(r)) {
			s.fail(w, r, http.StatusTooManyRequests, "Slow down", "Too many sign-in attempts; wait a minute and try again.")
			return
		}
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, "Sign-in failed", err.Error())
			return
		}
		s.clientInitiated(w, r, lq)
		return
	}
	sc, err := s.newChallenge()
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "Sign-in unavailable", err.Error())
		return
	}
	s.render(w, http.StatusOK, "login", page{Title: "Sign in to " + s.o.Domain, Session: s.sessionOf(r), Data: map[string]any{
		"Start": s.StartURI(sc), "SC": sc,
		"Events":   "/withssb/events?" + url.Values{"sc": {sc}}.Encode(),
		"Continue": "/withssb/continue?" + url.Values{"sc": {sc}}.Encode(),
	}})
}

func (s *Server) clientInitiated(w http.ResponseWriter, r *http.Request, lq loginQuery) {
	ctx := r.Context()
	a, mode, err := s.actorOf(ctx, lq.CID)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Error", "the room's database is unavailable")
		return
	}
	if err := authz.Can(a, mode, authz.SignIn); err != nil {
		s.fail(w, r, http.StatusForbidden, "Sign-in refused", "Only members of this room can sign in.")
		return
	}
	ep, ok := s.o.Peers.Endpoint(lq.CID)
	remote, isRemote := s.o.Peers.(RemotePeers)
	if !ok && (!isRemote || !remote.Holds(lq.CID)) {
		s.fail(w, r, http.StatusForbidden, "Sign-in failed", "Your SSB app is not connected to this room. Connect to the room with your app, then try again.")
		return
	}
	sc := httpauth.NewChallenge()
	cctx, cancel := context.WithTimeout(ctx, s.o.SolutionTimeout)
	var sol string
	if ok {
		sol, err = httpauth.RequestSolution(cctx, ep, sc, lq.CC)
	} else {
		sol, err = remote.RequestSolution(cctx, lq.CID, sc, lq.CC)
	}
	cancel()
	if err != nil {
		s.fail(w, r, http.StatusForbidden, "Sign-in failed", "Your SSB app did not answer the room's challenge.")
		return
	}
	if err := httpauth.Verify(s.o.Room, lq.CID, sc, lq.CC, sol); err != nil {
		s.fail(w, r, http.StatusForbidden, "Sign-in failed", "Your SSB app's answer did not verify.")
		return
	}
	s.o.Logger.Info("signed in with SSB (client-initiated)", "member", lq.CID.String())
	s.startSession(w, r, lq.CID)
}

func (s *Server) startSession(w http.ResponseWriter, r *http.Request, member feeds.FeedRef) {
	token, _, err := s.o.Store.CreateSession(r.Context(), member, s.o.SessionTTL)
	if err != nil {
		s.o.Logger.Error("create session", "err", err)
		s.fail(w, r, http.StatusInternalServerError, "Error", "could not start a session")
		return
	}
	setCookie(w, r, sessionCookie, token, int(s.o.SessionTTL/time.Second))
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

// events is the server-sent events stream of a server-initiated sign-in:
// one "success" event with the URL to go to, or "failed".
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	sc := r.URL.Query().Get("sc")
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	s.mu.Lock()
	c := s.challenges[sc]
	if c == nil {
		c = s.challenges["done:"+sc]
	}
	s.mu.Unlock()
	if c == nil {
		fmt.Fprint(w, "event: failed\ndata: this sign-in expired; reload the page\n\n")
		fl.Flush()
		return
	}
	fmt.Fprint(w, ": waiting for your SSB app\n\n")
	fl.Flush()
	if c.solved != nil {
		t := time.NewTimer(s.o.ChallengeTTL)
		defer t.Stop()
		ping := time.NewTicker(15 * time.Second)
		defer ping.Stop()
	wait:
		for {
			select {
			case <-c.solved:
				break wait
			case <-ping.C:
				fmt.Fprint(w, ": ping\n\n")
				fl.Flush()
			case <-t.C:
				fmt.Fprint(w, "event: failed\ndata: this sign-in expired; reload the page\n\n")
				fl.Flush()
				return
			case <-r.Context().Done():
				return
			}
		}
	}
	s.mu.Lock()
	token := c.token
	s.mu.Unlock()
	fmt.Fprintf(w, "event: success\ndata: /withssb/finalize?%s\n\n", url.Values{"token": {token}}.Encode())
	fl.Flush()
}

// continueSignIn is the way on without JavaScript: after the app signed
// in, the link on the page leads here.
func (s *Server) continueSignIn(w http.ResponseWriter, r *http.Request) {
	sc := r.URL.Query().Get("sc")
	s.mu.Lock()
	c := s.challenges["done:"+sc]
	s.mu.Unlock()
	if c == nil {
		s.fail(w, r, http.StatusUnauthorized, "Not signed in yet", "Your SSB app has not signed in with this page's link yet (or the link expired). Go back, open the link with your app, then continue.")
		return
	}
	http.Redirect(w, r, "/withssb/finalize?"+url.Values{"token": {c.token}}.Encode(), http.StatusSeeOther)
}

// finalize trades a one-time token for a session cookie.
func (s *Server) finalize(w http.ResponseWriter, r *http.Request) {
	if !s.limit.allow("ip:" + clientKey(r)) {
		s.fail(w, r, http.StatusTooManyRequests, "Slow down", "Too many sign-in attempts; wait a minute and try again.")
		return
	}
	token := r.URL.Query().Get("token")
	s.mu.Lock()
	f, ok := s.finals[token]
	delete(s.finals, token)
	for k, c := range s.challenges {
		if c.token == token && token != "" {
			delete(s.challenges, k)
		}
	}
	s.mu.Unlock()
	if !ok || s.o.Now().After(f.expires) {
		s.fail(w, r, http.StatusUnauthorized, "Sign-in failed", "This sign-in link was already used or has expired. Sign in again.")
		return
	}
	s.startSession(w, r, f.member)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ *roomdb.Session, _ authz.Actor) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := s.o.Store.EndSession(r.Context(), c.Value); err != nil {
			s.o.Logger.Error("end session", "err", err)
		}
	}
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
