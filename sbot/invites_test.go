package sbot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/invite"
	"github.com/cask-ssb/cask/room"
	"github.com/cask-ssb/cask/sbot/client"
)

func createInvite(t *testing.T, c *client.Client, opts any) string {
	t.Helper()
	var code string
	if err := c.Endpoint().Async(context.Background(), &code, muxrpc.Method{"invite", "create"}, opts); err != nil {
		t.Fatal(err)
	}
	return code
}

func acceptInvite(c *client.Client, code string) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.Endpoint().Async(context.Background(), &out, muxrpc.Method{"invite", "accept"}, code)
	return out, err
}

// TestPubInvite: a fresh daemon accepts an invite from another; they
// follow each other, the invitee knows the pub's address from its pub
// message, and they replicate both ways, live. A used-up invite is
// refused with the JS text.
func TestPubInvite(t *testing.T) {
	pub, cpub := startNode(t)
	fresh, cfresh := startNode(t)
	late, clate := startNode(t)
	for i := range 5 {
		post(t, cpub, map[string]any{"type": "post", "text": fmt.Sprint("pub ", i)})
	}
	code := createInvite(t, cpub, map[string]any{"uses": 1, "note": "welcome"})
	c, err := invite.ParseCode(code)
	if err != nil {
		t.Fatalf("invite.create printed %q: %v", code, err)
	}
	if tcp := tcpAddr(t, pub); c.Addr.String() != tcp || !strings.HasPrefix(code, "127.0.0.1:") {
		t.Fatalf("code %q names %s, want the pub's %s", code, c.Addr, tcp)
	}
	out, err := acceptInvite(cfresh, code)
	if err != nil {
		t.Fatal(err)
	}
	var res invite.AcceptResult
	if err := json.Unmarshal(out, &res); err != nil || !res.Connected || len(res.Published) != 2 {
		t.Fatalf("accept = %s (%v)", out, err)
	}
	waitUntil(t, "the pub to follow the invitee and back", func() bool {
		return pub.graph.Follows(pub.ID(), fresh.ID()) && fresh.graph.Follows(fresh.ID(), pub.ID())
	})
	known := fresh.PubAddresses()
	if len(known) != 1 || known[0].Address != c.Addr || len(known[0].By) != 1 || known[0].By[0] != fresh.ID() {
		t.Fatalf("known pubs %+v, want %s announced by us", known, c.Addr)
	}
	// The scheduler's address book has it, from the pub message.
	waitUntil(t, "the pub address in the scheduler's book, source pub", func() bool {
		for _, k := range fresh.sched.report(time.Now()) {
			if k.Address == c.Addr.String() && slices.Contains(k.Sources, SourcePub) {
				return true
			}
		}
		return false
	})
	// Replication both ways: the pub's posts and its follow of us reach
	// the invitee; the invitee's follow, pub message and a post reach the pub.
	pubSeq, _, _, _ := pub.Store().Latest(pub.ID())
	waitLatest(t, fresh, pub.ID(), pubSeq)
	post(t, cfresh, map[string]any{"type": "post", "text": "hello pub"})
	waitLatest(t, pub, fresh.ID(), 3)
	post(t, cpub, map[string]any{"type": "post", "text": "live"})
	waitLatest(t, fresh, pub.ID(), pubSeq+1)
	// The pub learnt the announcement too (the invitee is within its hops).
	if got := pub.PubAddresses(); len(got) != 0 {
		t.Errorf("the pub lists itself as a known pub: %+v", got)
	}

	// Used up: refused, with ssb-invite's refusal in the message.
	_, err = acceptInvite(clate, code)
	if err == nil || !strings.Contains(err.Error(), "invite not accepted") || !strings.Contains(err.Error(), "method:invite,use is not in list of allowed methods") {
		t.Fatalf("accepting a used-up invite: %v", err)
	}
	if late.graph.Follows(late.ID(), pub.ID()) || pub.graph.Follows(pub.ID(), late.ID()) {
		t.Fatal("a refused invite made a follow")
	}
	data, err := os.ReadFile(filepath.Join(pub.cfg.Repo, "invites.json"))
	if err != nil || !strings.Contains(string(data), `"used": 1`) || !strings.Contains(string(data), `"note": "welcome"`) {
		t.Fatalf("invites.json = %s, %v", data, err)
	}
	fi, err := os.Stat(filepath.Join(pub.cfg.Repo, "invites.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("invites.json mode %v, %v", fi.Mode(), err)
	}
}

// TestInviteAddress: the host and port of our invite codes come from the
// TCP listener; one on every interface asks for the public host name
// (which --external gives: see plugins/invite), and none is an error.
func TestInviteAddress(t *testing.T) {
	key := "~shs:VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8="
	tests := []struct {
		listen []string
		host   string
		port   int
		err    string
	}{
		{[]string{"unix:/tmp/s", "net:127.0.0.1:8008" + key}, "127.0.0.1", 8008, ""},
		{[]string{"net:pub.example.org:9000" + key}, "pub.example.org", 9000, ""},
		{[]string{"net:::8008" + key}, "", 8008, "listens on every interface"},
		{[]string{"net:0.0.0.0:8009" + key}, "", 8009, "listens on every interface"},
		{[]string{"unix:/tmp/s"}, "", 0, "no TCP listener"},
		{nil, "", 0, "no TCP listener"},
	}
	for _, tc := range tests {
		host, port, err := inviteAddressOf(tc.listen)
		if host != tc.host || port != tc.port || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("inviteAddressOf(%q) = %q, %d, %v; want %q, %d, %q", tc.listen, host, port, err, tc.host, tc.port, tc.err)
		}
	}
}

// aliasServer serves the spec's alias JSON for one registration; forged
// serves the same but with the user swapped for another key.
func aliasServer(t *testing.T, a map[string]string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		name := strings.TrimPrefix(req.URL.Path, "/alias/")
		if req.URL.Query().Get("encoding") != "json" || name != a["alias"] {
			http.NotFound(rw, req)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(a)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestConnectByAlias: the target registers an alias in our room; a
// second daemon connects with the alias URL (served as the spec's JSON,
// with the room's stored registration) and with the consume-alias URI,
// and replicates through the tunnel. A forged alias is refused.
func TestConnectByAlias(t *testing.T) {
	r := startTestRoom(t, "community")
	ctx := context.Background()
	// The target is a member of the room before it connects.
	targetRepo := t.TempDir()
	kp, err := feeds.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := feeds.WriteSecret(filepath.Join(targetRepo, "secret"), kp); err != nil {
		t.Fatal(err)
	}
	if err := r.DB().AddMember(ctx, kp.ID, "member"); err != nil {
		t.Fatal(err)
	}
	target, ctarget := startNodeWith(t, targetRepo, func(c *Config) { c.Listen = "off"; c.Rooms = []string{r.Address()} })
	seeker, cseeker := startNodeWith(t, t.TempDir(), func(c *Config) { c.Listen = "off" })
	waitUntil(t, "the target to be an attendant", func() bool {
		rs := target.rooms.report()
		return len(rs) == 1 && rs[0].State == "attendant"
	})
	var reg map[string]string
	if err := ctarget.Endpoint().Async(ctx, &reg, muxrpc.Method{"roomClient", "registerAlias"}, map[string]string{"room": r.ID().String(), "alias": "alice"}); err != nil {
		t.Fatal(err)
	}
	stored, err := r.DB().Aliases(ctx, nil)
	if err != nil || len(stored) != 1 {
		t.Fatalf("room aliases %+v, %v", stored, err)
	}
	good := map[string]string{
		"status": "successful", "multiserverAddress": r.Address(), "roomId": r.ID().String(),
		"userId": stored[0].Owner.String(), "alias": stored[0].Name, "signature": stored[0].Signature,
	}
	// The target keeps tunnels from peers it follows (the default).
	follow(t, ctarget, seeker.ID())
	follow(t, cseeker, target.ID())
	post(t, ctarget, map[string]any{"type": "post", "text": "found me"})

	// Forged: the room (or a man in the middle) names another user.
	mallory, err := feeds.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	forged := map[string]string{}
	for k, v := range good {
		forged[k] = v
	}
	forged["userId"] = mallory.ID.String()
	bad := aliasServer(t, forged)
	connect := func(link string) error {
		return cseeker.Endpoint().Async(ctx, nil, muxrpc.Method{"gossip", "connect"}, link)
	}
	err = connect(bad.URL + "/alias/alice")
	if err == nil || !strings.Contains(err.Error(), "forged") {
		t.Fatalf("forged alias: %v", err)
	}
	if peersOf(seeker, r.ID()) != 0 {
		t.Fatal("a forged alias made us dial the room")
	}

	srv := aliasServer(t, good)
	if err := connect(srv.URL + "/alias/alice"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a tunnel to the alias's owner", func() bool {
		for _, p := range seeker.Status().Peers {
			if p.ID == target.ID().String() && p.Transport == feeds.TransportTunnel && p.Room == r.ID().String() {
				return true
			}
		}
		return false
	})
	waitLatest(t, seeker, target.ID(), 2)

	// The consume-alias URI does the same without HTTP.
	if err := cseeker.Endpoint().Async(ctx, nil, muxrpc.Method{"gossip", "disconnect"}, target.ID().String()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the tunnel to end", func() bool { return peersOf(seeker, target.ID()) == 0 })
	q := url.Values{"action": {"consume-alias"}}
	for _, k := range []string{"alias", "userId", "signature", "roomId", "multiserverAddress"} {
		q.Set(k, good[k])
	}
	if err := connect("ssb:experimental?" + q.Encode()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a tunnel from the URI", func() bool { return peersOf(seeker, target.ID()) == 1 })
}

// roomWeb is the room's HTTP invite endpoints as the spec has them, over
// a real room's database: GET /join?invite=CODE&encoding=json and POST
// /invite/consume.
func roomWeb(t *testing.T, r *room.Server, status string) *httptest.Server {
	var srv *httptest.Server
	answer := func(rw http.ResponseWriter, code int, v any) {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(code)
		_ = json.NewEncoder(rw).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /join", func(rw http.ResponseWriter, req *http.Request) {
		if req.URL.Query().Get("encoding") != "json" {
			http.Error(rw, "only JSON here", http.StatusNotAcceptable)
			return
		}
		answer(rw, http.StatusOK, map[string]string{"status": status, "invite": req.URL.Query().Get("invite"), "postTo": srv.URL + "/invite/consume"})
	})
	mux.HandleFunc("POST /invite/consume", func(rw http.ResponseWriter, req *http.Request) {
		var body struct{ ID, Invite string }
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
			answer(rw, http.StatusBadRequest, map[string]string{"status": "error", "error": err.Error()})
			return
		}
		id, err := feeds.ParseFeedRef(body.ID)
		if err == nil {
			err = r.DB().UseInvite(req.Context(), body.Invite, id)
		}
		if err != nil {
			answer(rw, http.StatusForbidden, map[string]string{"status": "error", "error": err.Error()})
			return
		}
		answer(rw, http.StatusOK, map[string]string{"status": status, "multiserverAddress": r.Address()})
	})
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestClaimHTTPInvite: `invite accept` with a room's invite link claims
// it (the room makes us a member: a restricted room then lets us in),
// joins the room and keeps it in rooms.json; a used invite is refused.
// Both status spellings are read.
func TestClaimHTTPInvite(t *testing.T) {
	for _, status := range []string{"successful", "success"} {
		t.Run(status, func(t *testing.T) {
			r := startTestRoom(t, "restricted")
			web := roomWeb(t, r, status)
			ctx := context.Background()
			code, _, err := r.DB().CreateInvite(ctx, nil, 1, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			n, c := startNodeWith(t, t.TempDir(), func(c *Config) { c.Listen = "off" })
			link := web.URL + "/join?invite=" + url.QueryEscape(code)
			out, err := acceptInvite(c, link)
			if err != nil {
				t.Fatal(err)
			}
			var res ClaimResult
			if err := json.Unmarshal(out, &res); err != nil || res.Room != r.ID().String() {
				t.Fatalf("accept = %s, %v", out, err)
			}
			if _, ok, err := r.DB().Role(ctx, n.ID()); !ok || err != nil {
				t.Fatalf("not a member after the claim (%v)", err)
			}
			waitUntil(t, "an attendant of the restricted room", func() bool {
				rs := n.rooms.report()
				return len(rs) == 1 && rs[0].State == "attendant" && rs[0].Source == "joined"
			})
			if data, err := os.ReadFile(filepath.Join(n.cfg.Repo, "rooms.json")); err != nil || !strings.Contains(string(data), r.Address()) {
				t.Fatalf("rooms.json = %s, %v", data, err)
			}
			// Used: the room refuses, and says why.
			_, c2 := startNodeWith(t, t.TempDir(), func(c *Config) { c.Listen = "off" })
			uri := "ssb:experimental?" + url.Values{"action": {"claim-http-invite"}, "invite": {code}, "postTo": {web.URL + "/invite/consume"}}.Encode()
			if _, err := acceptInvite(c2, uri); err == nil || !strings.Contains(err.Error(), "invite not accepted") {
				t.Fatalf("a used invite: %v", err)
			}
		})
	}
}

// TestClaimRefusals: bad links are refused before anything is joined.
func TestClaimRefusals(t *testing.T) {
	n, c := startNodeWith(t, t.TempDir(), func(c *Config) { c.Listen = "off" })
	for _, link := range []string{
		"ssb:experimental?action=claim-http-invite&invite=x",
		"ssb:experimental?action=consume-alias&alias=a",
		"http://127.0.0.1:1/join?invite=x",
	} {
		if _, err := acceptInvite(c, link); err == nil {
			t.Errorf("accept %q: no error", link)
		}
	}
	if rs := n.rooms.report(); len(rs) != 0 {
		t.Fatalf("rooms %+v after refused claims", rs)
	}
	var ce *muxrpc.CallError
	if _, err := acceptInvite(c, "not an invite"); !errors.As(err, &ce) || !strings.Contains(ce.Message, "not a pub invite code") {
		t.Fatalf("garbage: %v", err)
	}
}

// startWebTestRoom runs a room with its web side on 127.0.0.1 (plain HTTP;
// its links name that address), and returns the web base URL.
func startWebTestRoom(t *testing.T, mode string) (*room.Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := l.Addr().String()
	l.Close()
	cfg := room.Defaults(t.TempDir())
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTPListen = httpAddr
	cfg.DebugListen = "off"
	cfg.Domain = httpAddr
	cfg.LinkScheme = "http"
	cfg.Mode = mode
	cfg.KeepAlive = 5 * time.Second
	s, err := room.New(room.Options{Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- s.Serve(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("room did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("room did not stop within 15 s")
		}
	})
	return s, "http://" + httpAddr
}

// TestRoomWebInviteAndAlias: against our room's own web side, a daemon
// claims an HTTP invite (and so becomes a member and an attendant),
// registers an alias, and a second daemon connects to it with the alias
// page's URL and replicates through the tunnel.
func TestRoomWebInviteAndAlias(t *testing.T) {
	r, base := startWebTestRoom(t, "community")
	ctx := context.Background()
	code, _, err := r.DB().CreateInvite(ctx, nil, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	target, ctarget := startNodeWith(t, t.TempDir(), func(c *Config) { c.Listen = "off" })
	seeker, cseeker := startNodeWith(t, t.TempDir(), func(c *Config) { c.Listen = "off" })
	if _, err := acceptInvite(ctarget, base+"/join?invite="+url.QueryEscape(code)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := r.DB().Role(ctx, target.ID()); !ok || err != nil {
		t.Fatalf("not a member after the claim (%v)", err)
	}
	waitUntil(t, "the target to be an attendant", func() bool {
		rs := target.rooms.report()
		return len(rs) == 1 && rs[0].State == "attendant"
	})
	if err := ctarget.Endpoint().Async(ctx, nil, muxrpc.Method{"roomClient", "registerAlias"}, map[string]string{"room": r.ID().String(), "alias": "bob"}); err != nil {
		t.Fatal(err)
	}
	follow(t, ctarget, seeker.ID())
	follow(t, cseeker, target.ID())
	post(t, ctarget, map[string]any{"type": "post", "text": "hi via alias"})
	if err := cseeker.Endpoint().Async(ctx, nil, muxrpc.Method{"gossip", "connect"}, base+"/alias/bob"); err != nil {
		t.Fatal(err)
	}
	waitLatest(t, seeker, target.ID(), 2)
	if err := cseeker.Endpoint().Async(ctx, nil, muxrpc.Method{"gossip", "connect"}, base+"/alias/nobody"); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("unknown alias: %v", err)
	}
}
