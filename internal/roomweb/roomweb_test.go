package roomweb

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

func keyPair(t testing.TB) feeds.KeyPair {
	t.Helper()
	kp, err := feeds.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// registration signs an alias as a member does for room.registerAlias.
func registration(user feeds.KeyPair, room feeds.FeedRef, alias string) string {
	msg := "=room-alias-registration:" + room.String() + ":" + user.ID.String() + ":" + alias
	return base64.StdEncoding.EncodeToString(user.Sign([]byte(msg))) + ".sig.ed25519"
}

func aliasJSON(status string, room, user feeds.FeedRef, alias, sig string) map[string]string {
	return map[string]string{
		"status": status, "multiserverAddress": feeds.Address{Host: "127.0.0.1", Port: 8008, Key: room}.String(),
		"roomId": room.String(), "userId": user.String(), "alias": alias, "signature": sig,
	}
}

func TestParseAlias(t *testing.T) {
	room, user, other := keyPair(t), keyPair(t), keyPair(t)
	good := registration(user, room.ID, "alice")
	urlSafe := strings.NewReplacer("+", "-", "/", "_").Replace(good)
	tests := []struct {
		name string
		f    map[string]string
		err  string
	}{
		{"successful", aliasJSON("successful", room.ID, user.ID, "alice", good), ""},
		{"success (go-ssb-room)", aliasJSON("success", room.ID, user.ID, "alice", good), ""},
		{"url-safe signature", aliasJSON("successful", room.ID, user.ID, "alice", urlSafe), ""},
		{"another alias", aliasJSON("successful", room.ID, user.ID, "bob", good), "forged"},
		{"another user", aliasJSON("successful", room.ID, other.ID, "alice", good), "forged"},
		{"another room", aliasJSON("successful", other.ID, user.ID, "alice", good), "forged"},
		{"signed by someone else", aliasJSON("successful", room.ID, user.ID, "alice", registration(other, room.ID, "alice")), "forged"},
		{"no suffix", aliasJSON("successful", room.ID, user.ID, "alice", strings.TrimSuffix(good, ".sig.ed25519")), "want BASE64.sig.ed25519"},
		{"short signature", aliasJSON("successful", room.ID, user.ID, "alice", "AAAA.sig.ed25519"), "want 64 bytes"},
		{"failure", map[string]string{"status": "error", "error": "alias not found"}, "alias not found"},
		{"no status", map[string]string{}, "no status"},
		{"bad alias", aliasJSON("successful", room.ID, user.ID, "a b", good), "not an alias"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, _ := json.Marshal(tc.f)
			a, err := ParseAliasJSON(body)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				if tc.err == "forged" && !errors.Is(err, ErrForged) {
					t.Fatalf("err %v is not ErrForged", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Room != room.ID || a.User != user.ID || a.Alias != "alice" || a.RoomAddress.Key != room.ID {
				t.Fatalf("alias %+v", a)
			}
			want := "tunnel:" + room.ID.String() + ":" + user.ID.String() + "~shs:" + base64.StdEncoding.EncodeToString(user.ID[:])
			if got := a.TunnelAddress().String(); got != want {
				t.Fatalf("tunnel %s, want %s", got, want)
			}
		})
	}
	// The room's address must be the room's key.
	f := aliasJSON("successful", room.ID, user.ID, "alice", good)
	f["multiserverAddress"] = feeds.Address{Host: "127.0.0.1", Port: 8008, Key: other.ID}.String()
	body, _ := json.Marshal(f)
	if _, err := ParseAliasJSON(body); err == nil || !strings.Contains(err.Error(), "not of the room") {
		t.Fatalf("mismatched address: %v", err)
	}
}

func aliasURI(f map[string]string) string {
	q := url.Values{"action": {"consume-alias"}}
	for _, k := range []string{"alias", "userId", "signature", "roomId", "multiserverAddress"} {
		q.Set(k, f[k])
	}
	return "ssb:experimental?" + q.Encode()
}

func TestParseAliasURI(t *testing.T) {
	room, user := keyPair(t), keyPair(t)
	f := aliasJSON("", room.ID, user.ID, "alice", registration(user, room.ID, "alice"))
	a, err := ParseAliasURI(aliasURI(f))
	if err != nil || a.User != user.ID || a.Room != room.ID {
		t.Fatalf("%+v, %v", a, err)
	}
	if !IsAliasLink(aliasURI(f)) {
		t.Fatal("IsAliasLink(consume-alias URI) = false")
	}
	f["alias"] = "mallory"
	if _, err := ParseAliasURI(aliasURI(f)); !errors.Is(err, ErrForged) {
		t.Fatalf("forged URI: %v", err)
	}
	for _, bad := range []string{"ssb:experimental?action=claim-http-invite", "ssb:feed/classic/x", "ssb:experimental"} {
		if _, err := ParseAliasURI(bad); err == nil {
			t.Errorf("ParseAliasURI(%q) accepted", bad)
		}
	}
}

// fakeRoomWeb serves the spec's JSON endpoints: /alias/NAME and
// /join?invite=CODE with encoding=json, and POST /invite/consume.
type fakeRoomWeb struct {
	*httptest.Server
	room     feeds.KeyPair
	aliases  map[string]map[string]string
	status   string // "successful" or "success"
	mu       sync.Mutex
	invites  map[string]bool // code → claimed
	claimers []string
}

func newFakeRoomWeb(t *testing.T, status string) *fakeRoomWeb {
	w := &fakeRoomWeb{room: keyPair(t), aliases: map[string]map[string]string{}, invites: map[string]bool{}, status: status}
	mux := http.NewServeMux()
	writeJSON := func(rw http.ResponseWriter, code int, v any) {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(code)
		_ = json.NewEncoder(rw).Encode(v)
	}
	mux.HandleFunc("GET /alias/{name}", func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("encoding") != "json" {
			http.Error(rw, "html page", http.StatusOK)
			return
		}
		f, ok := w.aliases[r.PathValue("name")]
		if !ok {
			writeJSON(rw, http.StatusNotFound, map[string]string{"status": "error", "error": "alias not found"})
			return
		}
		writeJSON(rw, http.StatusOK, f)
	})
	mux.HandleFunc("GET /join", func(rw http.ResponseWriter, r *http.Request) {
		code := r.URL.Query().Get("invite")
		w.mu.Lock()
		claimed, known := w.invites[code]
		w.mu.Unlock()
		if r.URL.Query().Get("encoding") != "json" {
			http.Error(rw, "html page", http.StatusOK)
			return
		}
		if !known || claimed {
			writeJSON(rw, http.StatusOK, map[string]string{"status": "error", "error": "invite already consumed or unknown"})
			return
		}
		writeJSON(rw, http.StatusOK, map[string]string{"status": w.status, "invite": code, "postTo": w.URL + "/invite/consume"})
	})
	mux.HandleFunc("POST /invite/consume", func(rw http.ResponseWriter, r *http.Request) {
		var body struct {
			ID     string `json:"id"`
			Invite string `json:"invite"`
		}
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body) != nil {
			writeJSON(rw, http.StatusBadRequest, map[string]string{"status": "error", "error": "bad request"})
			return
		}
		if _, err := feeds.ParseFeedRef(body.ID); err != nil {
			writeJSON(rw, http.StatusBadRequest, map[string]string{"status": "error", "error": "bad id"})
			return
		}
		w.mu.Lock()
		claimed, known := w.invites[body.Invite]
		if known && !claimed {
			w.invites[body.Invite] = true
			w.claimers = append(w.claimers, body.ID)
		}
		w.mu.Unlock()
		if !known || claimed {
			writeJSON(rw, http.StatusForbidden, map[string]string{"status": "error", "error": "invite already consumed"})
			return
		}
		writeJSON(rw, http.StatusOK, map[string]string{"status": w.status, "multiserverAddress": feeds.Address{Host: "127.0.0.1", Port: 8008, Key: w.room.ID}.String()})
	})
	w.Server = httptest.NewServer(mux)
	t.Cleanup(w.Close)
	return w
}

func TestResolveAliasOverHTTP(t *testing.T) {
	web := newFakeRoomWeb(t, "successful")
	user, mallory := keyPair(t), keyPair(t)
	web.aliases["alice"] = aliasJSON("successful", web.room.ID, user.ID, "alice", registration(user, web.room.ID, "alice"))
	// A room that lies: mallory's key under alice's signature.
	web.aliases["forged"] = aliasJSON("successful", web.room.ID, mallory.ID, "forged", registration(user, web.room.ID, "forged"))
	ctx := context.Background()
	a, err := ResolveAlias(ctx, web.Client(), web.URL+"/alias/alice")
	if err != nil || a.User != user.ID {
		t.Fatalf("%+v, %v", a, err)
	}
	if _, err := ResolveAlias(ctx, web.Client(), web.URL+"/alias/forged"); !errors.Is(err, ErrForged) {
		t.Fatalf("forged: %v", err)
	}
	if _, err := ResolveAlias(ctx, web.Client(), web.URL+"/alias/nobody"); err == nil || !strings.Contains(err.Error(), "alias not found") {
		t.Fatalf("unknown: %v", err)
	}
}

func TestClaimInvite(t *testing.T) {
	for _, status := range []string{"successful", "success"} {
		t.Run(status, func(t *testing.T) {
			web := newFakeRoomWeb(t, status)
			web.invites["code1"] = false
			me := keyPair(t)
			ctx := context.Background()
			inv, err := ResolveInvite(ctx, web.Client(), web.URL+"/join?invite=code1")
			if err != nil {
				t.Fatal(err)
			}
			if inv.Code != "code1" || inv.PostTo != web.URL+"/invite/consume" {
				t.Fatalf("invite %+v", inv)
			}
			a, err := Claim(ctx, web.Client(), inv, me.ID)
			if err != nil {
				t.Fatal(err)
			}
			if a.Key != web.room.ID || len(web.claimers) != 1 || web.claimers[0] != me.ID.String() {
				t.Fatalf("address %v, claimers %v", a, web.claimers)
			}
			// Used: the GET says so, and so does a second POST.
			if _, err := ResolveInvite(ctx, web.Client(), web.URL+"/join?invite=code1"); err == nil || !strings.Contains(err.Error(), "already consumed") {
				t.Fatalf("GET of a used invite: %v", err)
			}
			if _, err := Claim(ctx, web.Client(), inv, me.ID); err == nil || !strings.Contains(err.Error(), "invite not accepted") || !strings.Contains(err.Error(), "already consumed") {
				t.Fatalf("second claim: %v", err)
			}
		})
	}
}

func TestClaimInviteURI(t *testing.T) {
	web := newFakeRoomWeb(t, "successful")
	web.invites["code2"] = false
	uri := "ssb:experimental?" + url.Values{"action": {"claim-http-invite"}, "invite": {"code2"}, "postTo": {web.URL + "/invite/consume"}}.Encode()
	inv, err := ResolveInvite(context.Background(), web.Client(), uri)
	if err != nil || inv.Code != "code2" {
		t.Fatalf("%+v, %v", inv, err)
	}
	if _, err := Claim(context.Background(), web.Client(), inv, keyPair(t).ID); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"ssb:experimental?action=claim-http-invite&invite=x",                         // no postTo
		"ssb:experimental?action=claim-http-invite&invite=x&postTo=ftp://h/x",        // not http
		"ssb:experimental?action=claim-http-invite&postTo=https://h/x",               // no code
		"ssb:experimental?action=claim-http-invite&invite=x&multiserverAddress=net:", // spec variant without postTo
		"ssb:experimental?action=consume-alias&invite=x&postTo=https://h/x",          // another action
	} {
		if _, err := ParseInviteURI(bad); err == nil {
			t.Errorf("ParseInviteURI(%q) accepted", bad)
		}
	}
}

func TestHTTPErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			_, _ = rw.Write([]byte(`{"status":"` + strings.Repeat("x", MaxBody) + `"}`))
		case "/html":
			http.Error(rw, "<html>oops</html>", http.StatusInternalServerError)
		default:
			rw.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	for path, want := range map[string]string{"/big": "larger than", "/html": "500", "/empty": "502"} {
		if _, err := ResolveInvite(context.Background(), srv.Client(), srv.URL+path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}

func FuzzParseAliasJSON(f *testing.F) {
	room, user := keyPair(f), keyPair(f)
	good, _ := json.Marshal(aliasJSON("successful", room.ID, user.ID, "alice", registration(user, room.ID, "alice")))
	f.Add(good)
	f.Add([]byte(`{"status":"error","error":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAliasJSON(b)
		if err != nil {
			return
		}
		// Whatever was accepted carries a signature that verifies.
		f := aliasJSON("successful", a.Room, a.User, a.Alias, a.Signature)
		f["multiserverAddress"] = a.RoomAddress.String()
		again, _ := json.Marshal(f)
		if _, err := ParseAliasJSON(again); err != nil {
			t.Fatalf("accepted %q, but not its re-encoding: %v", b, err)
		}
	})
}

func FuzzParseLinks(f *testing.F) {
	f.Add("ssb:experimental?action=consume-alias&alias=a&userId=%40x&signature=s&roomId=%40y&multiserverAddress=net%3Ah%3A1~shs%3Ak")
	f.Add("ssb:experimental?action=claim-http-invite&invite=abc&postTo=https%3A%2F%2Froom.example.org%2Finvite%2Fconsume")
	f.Add("https://room.example.org/alias/alice")
	f.Add("hTtp://0") // schemes are case-insensitive (RFC 3986 §3.1)
	f.Fuzz(func(t *testing.T, s string) {
		_ = IsAliasLink(s)
		_, _ = ParseAliasURI(s)
		if inv, err := ParseInviteURI(s); err == nil && (inv.Code == "" || inv.check() != nil) {
			t.Fatalf("accepted %q as %+v", s, inv)
		}
		if out, err := withJSONEncoding(s); err == nil {
			if !strings.HasPrefix(strings.ToLower(s), "http") {
				t.Fatalf("%q taken as an http link", s)
			}
			if !strings.HasPrefix(out, "http://") && !strings.HasPrefix(out, "https://") {
				t.Fatalf("%q rewritten to %q, not an http(s) link", s, out)
			}
		}
	})
}

func FuzzParseInviteAnswers(f *testing.F) {
	f.Add([]byte(`{"status":"successful","invite":"c","postTo":"https://r.example/invite/consume"}`))
	f.Add([]byte(`{"status":"success","multiserverAddress":"net:r.example:8008~shs:VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8="}`))
	f.Add([]byte(`{"status":"error","error":"used"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if inv, err := ParseInviteJSON(b); err == nil && inv.check() != nil {
			t.Fatalf("accepted %q as %+v", b, inv)
		}
		if a, err := ParseClaimJSON(b); err == nil {
			if _, err := feeds.ParseAddress(a.String()); err != nil {
				t.Fatalf("accepted %q with an address that does not read back: %v", b, err)
			}
		}
	})
}
