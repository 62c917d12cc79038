package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/cask-ssb/cask/room/authz"
	"github.com/cask-ssb/cask/room/roomdb"
)

const (
	sessionCookie = "room_session"
	csrfCookie    = "room_csrf" // double-submit token of visitors without a session
)

type sessionKey struct{}

// secure says whether the request reached us over HTTPS (directly, or
// through a TLS proxy that says so): cookies are then Secure.
func secure(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteLaxMode})
}

// sessionOf returns the signed-in session of r, or nil.
func (s *Server) sessionOf(r *http.Request) *roomdb.Session {
	if v, ok := r.Context().Value(sessionKey{}).(*roomdb.Session); ok {
		return v
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return nil
	}
	sess, err := s.o.Store.Session(r.Context(), c.Value)
	if err != nil {
		if !errors.Is(err, roomdb.ErrNoSession) {
			s.o.Logger.Error("look up session", "err", err)
		}
		return nil
	}
	return &sess
}

// member runs next for a signed-in member; a POST must carry the
// session's CSRF token. Everyone else gets 401 with a sign-in link.
func (s *Server) member(next func(w http.ResponseWriter, r *http.Request, sess *roomdb.Session, a authz.Actor)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := s.sessionOf(r)
		if sess == nil {
			s.fail(w, r, http.StatusUnauthorized, "Sign in", "You are not signed in, or your session ended. Sign in with SSB to continue.")
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess))
		if r.Method == http.MethodPost {
			if f, err := formValues(r); err != nil || !tokenEqual(f.Get("csrf"), sess.CSRF) {
				s.fail(w, r, http.StatusForbidden, "Refused", "This form is stale or did not come from this room (CSRF token missing or wrong). Go back, reload the page and try again.")
				return
			}
		}
		a := authz.Actor{Role: sess.Role}
		next(w, r, sess, a)
	}
}

func tokenEqual(a, b string) bool {
	return a != "" && len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// visitorCSRF returns the double-submit token of a visitor's forms,
// setting its cookie if needed.
func visitorCSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	t := randomToken()
	setCookie(w, r, csrfCookie, t, 0)
	return t
}

// limiter is a token bucket per key: rate tokens per period, burst rate.
type limiter struct {
	rate   int
	period time.Duration
	now    func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the limiter's memory; full buckets are dropped first.
const maxBuckets = 10000

func newLimiter(rate int, period time.Duration, now func() time.Time) *limiter {
	return &limiter{rate: rate, period: period, now: now, buckets: map[string]*bucket{}}
}

// allow takes a token for key; false means over the limit.
func (l *limiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.sweepLocked(now)
		}
		b = &bucket{tokens: float64(l.rate), last: now}
		l.buckets[key] = b
	}
	b.tokens += float64(l.rate) * float64(now.Sub(b.last)) / float64(l.period)
	if b.tokens > float64(l.rate) {
		b.tokens = float64(l.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *limiter) sweepLocked(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.last) >= l.period {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxBuckets { // all busy: start over rather than grow
		clear(l.buckets)
	}
}

// clientKey is the rate-limit key of an HTTP client: its address, used
// in memory only, never shown or stored.
func clientKey(r *http.Request) string {
	host := r.RemoteAddr
	for i := len(host) - 1; i >= 0; i-- {
		if host[i] == ':' {
			return host[:i]
		}
	}
	return host
}
