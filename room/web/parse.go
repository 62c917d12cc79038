package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/plugins/httpauth"
	"github.com/cask-ssb/cask/room/roomdb"
)

// The parsers of what browsers and apps send. Each reads untrusted bytes
// and has a fuzz target (parse_test.go).

// maxBody bounds a POST body.
const maxBody = 64 << 10

// consumeRequest is the body of POST /invite/consume (§8.8).
type consumeRequest struct {
	ID     feeds.FeedRef
	Invite string
	JSON   bool   // it came as JSON (answer JSON)
	CSRF   string // a form's token
}

// parseConsume reads a JSON body {"id","invite"} or the form fields id,
// invite (and csrf).
func parseConsume(contentType string, body io.Reader) (consumeRequest, error) {
	var out consumeRequest
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return out, fmt.Errorf("content type %q: want application/json or a form", contentType)
	}
	data, err := io.ReadAll(io.LimitReader(body, maxBody+1))
	if err != nil {
		return out, fmt.Errorf("read body: %w", err)
	}
	if len(data) > maxBody {
		return out, fmt.Errorf("body: longer than %d bytes", maxBody)
	}
	var id string
	switch mt {
	case "application/json":
		out.JSON = true
		var b struct {
			ID     string `json:"id"`
			Invite string `json:"invite"`
		}
		if err := json.Unmarshal(data, &b); err != nil {
			return out, fmt.Errorf("body: want JSON {\"id\":\"@…\",\"invite\":\"…\"}: %w", err)
		}
		id, out.Invite = b.ID, b.Invite
	case "application/x-www-form-urlencoded":
		q, err := url.ParseQuery(string(data))
		if err != nil {
			return out, fmt.Errorf("form: %w", err)
		}
		id, out.Invite, out.CSRF = strings.TrimSpace(q.Get("id")), strings.TrimSpace(q.Get("invite")), q.Get("csrf")
	default:
		return out, fmt.Errorf("content type %q: want application/json or a form", mt)
	}
	if out.Invite == "" {
		return out, errors.New("invite: missing")
	}
	if _, err := roomdb.ParseInviteCode(out.Invite); err != nil {
		return out, err
	}
	if out.ID, err = feeds.ParseFeedRef(id); err != nil {
		return out, fmt.Errorf("id: want your SSB id (@….ed25519): %w", err)
	}
	return out, nil
}

// loginQuery is a client-initiated sign-in: /login?cid=…&cc=….
type loginQuery struct {
	CID feeds.FeedRef
	CC  string
}

// parseLoginQuery reads cid and cc; ok is false when neither is there
// (the page of a server-initiated sign-in).
func parseLoginQuery(q url.Values) (lq loginQuery, ok bool, err error) {
	cid, cc := q.Get("cid"), q.Get("cc")
	if cid == "" && cc == "" {
		return lq, false, nil
	}
	if lq.CID, err = feeds.ParseFeedRef(cid); err != nil {
		return lq, true, fmt.Errorf("cid: %w", err)
	}
	if err := httpauth.CheckChallenge(cc); err != nil {
		return lq, true, fmt.Errorf("cc: %w", err)
	}
	lq.CC = cc
	return lq, true, nil
}

// inviteForm is the dashboard's new-invite form.
type inviteForm struct {
	Uses int
	TTL  time.Duration
}

// ttlChoices are the expiries the form offers.
var ttlChoices = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}

func parseInviteForm(f url.Values) (inviteForm, error) {
	out := inviteForm{Uses: 1, TTL: 7 * 24 * time.Hour}
	if v := f.Get("uses"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return out, fmt.Errorf("uses %.20q: want a number from 1 to 1000", v)
		}
		out.Uses = n
	}
	if v := f.Get("expires"); v != "" {
		d, ok := ttlChoices[v]
		if !ok {
			return out, fmt.Errorf("expires %.20q: want 1h, 24h, 7d or 30d", v)
		}
		out.TTL = d
	}
	return out, nil
}

// parseID reads a feed id form field.
func parseID(f url.Values, key string) (feeds.FeedRef, error) {
	v := strings.TrimSpace(f.Get(key))
	id, err := feeds.ParseFeedRef(v)
	if err != nil {
		return id, fmt.Errorf("%s: want an SSB id (@….ed25519): %w", key, err)
	}
	return id, nil
}

// formValues parses a POST form body (bounded).
func formValues(r *http.Request) (url.Values, error) {
	if r.PostForm != nil {
		return r.PostForm, nil
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("form: %w", err)
	}
	return r.PostForm, nil
}
