package room

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"html/template"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/httpauth"
	"github.com/cask-ssb/cask/room/roomdb"
	"github.com/cask-ssb/cask/room/web"
	"github.com/cask-ssb/cask/secretstream"
)

// startWebRoom runs a room with its web side on 127.0.0.1 (plain HTTP,
// links with http: so a test can follow them).
func startWebRoom(t testing.TB, mode string, mutate func(*Config)) (*Server, string) {
	t.Helper()
	s := startRoom(t, func(c *Config) {
		c.HTTPListen = "127.0.0.1:0"
		c.LinkScheme = "http"
		c.Mode = mode
		if mutate != nil {
			mutate(c)
		}
	})
	return s, "http://" + s.HTTPAddr()
}

// browser is an HTTP client with cookies that does not follow redirects.
func browser(t testing.TB) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t testing.TB, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func post(t testing.TB, c *http.Client, u, ctype, body string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Post(u, ctype, strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func postForm(t testing.TB, c *http.Client, u string, f url.Values) (*http.Response, string) {
	t.Helper()
	return post(t, c, u, "application/x-www-form-urlencoded", f.Encode())
}

// jsonKeys decodes an object and returns its keys and values.
func jsonObject(t testing.TB, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, body)
	}
	return m
}

func keysOf(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sortStrings(ks)
	return strings.Join(ks, ",")
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// signIn gives c a session of member (as the finalize step would).
func signIn(t testing.TB, s *Server, base string, c *http.Client, member feeds.FeedRef) string {
	t.Helper()
	token, sess, err := s.DB().CreateSession(context.Background(), member, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(base)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "room_session", Value: token, Path: "/"}})
	return sess.CSRF
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestWebInvites(t *testing.T) {
	s, base := startWebRoom(t, "community", nil)
	ctx := context.Background()
	code, _, err := s.DB().CreateInvite(ctx, nil, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := browser(t)

	// GET …&encoding=json: the spec's shape.
	resp, body := get(t, c, base+"/join?invite="+code+"&encoding=json")
	m := jsonObject(t, body)
	if resp.StatusCode != 200 || keysOf(m) != "invite,postTo,status" || m["status"] != "successful" || m["invite"] != code ||
		m["postTo"] != "http://localhost/invite/consume" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("join json: %d %s", resp.StatusCode, body)
	}
	// The HTML page: the claim link, a copyable link and a QR code.
	resp, body = get(t, c, base+"/join?invite="+code)
	claim := "ssb:experimental?action=claim-http-invite&amp;invite=" + code + "&amp;postTo=http%3A%2F%2Flocalhost%2Finvite%2Fconsume"
	if resp.StatusCode != 200 || !strings.Contains(body, claim) || !strings.Contains(body, `<svg class="qr"`) ||
		!strings.Contains(body, `value="http://localhost/join?invite=`+code+`"`) {
		t.Fatalf("join page: %d\n%s", resp.StatusCode, body)
	}

	// POST JSON: the new member gets the room's address.
	alice := newKey(t)
	resp, body = post(t, c, base+"/invite/consume", "application/json", `{"id":"`+alice.ID.String()+`","invite":"`+code+`"}`)
	m = jsonObject(t, body)
	if resp.StatusCode != 200 || keysOf(m) != "multiserverAddress,status" || m["status"] != "successful" {
		t.Fatalf("consume: %d %s", resp.StatusCode, body)
	}
	a, err := feeds.ParseAddress(m["multiserverAddress"].(string))
	if err != nil || a.Host != "localhost" || a.Key != s.ID() {
		t.Fatalf("multiserverAddress %v: %v", m["multiserverAddress"], err)
	}
	if _, ok, _ := s.DB().Role(ctx, alice.ID); !ok {
		t.Fatal("alice is not a member after claiming")
	}
	// Used twice: refused, in JSON and on the page.
	resp, body = post(t, c, base+"/invite/consume", "application/json", `{"id":"`+newKey(t).ID.String()+`","invite":"`+code+`"}`)
	m = jsonObject(t, body)
	if resp.StatusCode != 404 || keysOf(m) != "error,status" || m["status"] == "successful" {
		t.Fatalf("second use: %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, c, base+"/join?invite="+code+"&encoding=json")
	if m = jsonObject(t, body); resp.StatusCode != 404 || m["status"] == "successful" || m["error"] == "" {
		t.Fatalf("join json of a used invite: %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, c, base+"/join?invite="+code)
	if resp.StatusCode != 404 || !strings.Contains(body, "already used") || !strings.Contains(body, "<title>") {
		t.Fatalf("join page of a used invite: %d %s", resp.StatusCode, body)
	}
	// Bad bodies get clear errors.
	for _, bad := range []struct{ ctype, body string }{
		{"application/json", `{"id":"@nope","invite":"` + code + `"}`},
		{"application/json", `not json`},
		{"text/plain", `hello`},
	} {
		resp, body = post(t, c, base+"/invite/consume", bad.ctype, bad.body)
		if resp.StatusCode != 400 {
			t.Errorf("consume %s %q: %d %s", bad.ctype, bad.body, resp.StatusCode, body)
		}
	}

	// The form of the join page: CSRF token required.
	code2, _, _ := s.DB().CreateInvite(ctx, nil, 1, time.Hour)
	_, page := get(t, c, base+"/join?invite="+code2)
	tok := csrfField.FindStringSubmatch(page)
	if tok == nil {
		t.Fatalf("no csrf field on the join page")
	}
	bob := newKey(t)
	resp, body = postForm(t, browser(t), base+"/invite/consume", url.Values{"id": {bob.ID.String()}, "invite": {code2}, "csrf": {tok[1]}})
	if resp.StatusCode != 403 {
		t.Fatalf("form without the csrf cookie: %d %s", resp.StatusCode, body)
	}
	resp, body = postForm(t, c, base+"/invite/consume", url.Values{"id": {bob.ID.String()}, "invite": {code2}, "csrf": {"x" + tok[1][1:]}})
	if resp.StatusCode != 403 {
		t.Fatalf("form with a wrong csrf token: %d %s", resp.StatusCode, body)
	}
	resp, body = postForm(t, c, base+"/invite/consume", url.Values{"id": {bob.ID.String()}, "invite": {code2}, "csrf": {tok[1]}})
	if resp.StatusCode != 200 || !strings.Contains(body, "is now a member") {
		t.Fatalf("form: %d %s", resp.StatusCode, body)
	}
	// Expired invites are refused.
	code3, _, _ := s.DB().CreateInvite(ctx, nil, 1, time.Second)
	time.Sleep(1100 * time.Millisecond)
	resp, body = post(t, c, base+"/invite/consume", "application/json", `{"id":"`+newKey(t).ID.String()+`","invite":"`+code3+`"}`)
	if resp.StatusCode != 404 {
		t.Fatalf("expired invite: %d %s", resp.StatusCode, body)
	}
}

func TestWebAliases(t *testing.T) {
	s, base := startWebRoom(t, "community", func(c *Config) { c.AliasSubdomains = true })
	ctx := context.Background()
	alice := newKey(t)
	if err := s.DB().AddMember(ctx, alice.ID, roomdb.RoleMember); err != nil {
		t.Fatal(err)
	}
	ac := mustDial(t, s, alice)
	var md struct{ Features []string }
	if err := ac.ep.Async(ctx, &md, muxrpc.Method{"room", "metadata"}); err != nil || !strings.Contains(strings.Join(md.Features, ","), "httpAuth,httpInvite") {
		t.Fatalf("metadata features with the web side on: %v, %v", md.Features, err)
	}
	var aliasURL string
	if err := ac.ep.Async(ctx, &aliasURL, muxrpc.Method{"room", "registerAlias"}, "alice", roomdb.SignAlias(alice, s.ID(), "alice")); err != nil {
		t.Fatal(err)
	}
	if aliasURL != "https://alice.localhost" {
		t.Fatalf("alias URL with --alias-subdomains = %q", aliasURL)
	}
	c := browser(t)
	resp, body := get(t, c, base+"/alias/alice?encoding=json")
	m := jsonObject(t, body)
	if resp.StatusCode != 200 || keysOf(m) != "alias,multiserverAddress,roomId,signature,status,userId" || m["status"] != "successful" ||
		m["alias"] != "alice" || m["userId"] != alice.ID.String() || m["roomId"] != s.ID().String() {
		t.Fatalf("alias json: %d %s", resp.StatusCode, body)
	}
	// What a client checks before it trusts the alias.
	if err := roomdb.VerifyAlias(s.ID(), alice.ID, "alice", m["signature"].(string)); err != nil {
		t.Fatalf("alias signature from the page: %v", err)
	}
	var j web.AliasJSON
	_ = json.Unmarshal([]byte(body), &j)
	resp, body = get(t, c, base+"/alias/alice")
	link := strings.ReplaceAll(web.ConsumeAliasURI(j), "&", "&amp;")
	if resp.StatusCode != 200 || !strings.Contains(body, link) || !strings.Contains(body, "action=consume-alias") {
		t.Fatalf("alias page: %d %s", resp.StatusCode, body)
	}
	// The subdomain form.
	req, _ := http.NewRequest("GET", base+"/", nil)
	req.Host = "alice.localhost"
	r2, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != 200 || !strings.Contains(string(b2), link) {
		t.Fatalf("alice.localhost: %d %s", r2.StatusCode, b2)
	}
	// Unknown and invalid names.
	for _, name := range []string{"bob", "BAD", "a-b"} {
		resp, body = get(t, c, base+"/alias/"+name+"?encoding=json")
		if m := jsonObject(t, body); resp.StatusCode != 404 || m["status"] == "successful" || m["error"] == "" {
			t.Errorf("alias %s: %d %s", name, resp.StatusCode, body)
		}
	}
	// Restricted mode: no alias pages.
	if err := s.DB().SetMode(ctx, roomdb.ModeRestricted); err != nil {
		t.Fatal(err)
	}
	resp, body = get(t, c, base+"/alias/alice?encoding=json")
	if m := jsonObject(t, body); resp.StatusCode != 404 || !strings.Contains(m["error"].(string), "restricted") {
		t.Fatalf("alias in restricted mode: %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, c, base+"/alias/alice")
	if resp.StatusCode != 404 || strings.Contains(body, "consume-alias") {
		t.Fatalf("alias page in restricted mode: %d", resp.StatusCode)
	}
}

var (
	startLink = regexp.MustCompile(`href="(ssb:experimental\?action=start-http-auth[^"]+)"`)
	eventsURL = regexp.MustCompile(`data-events="([^"]+)"`)
)

// startSignIn opens the sign-in page and returns the challenge and the
// events URL.
func startSignIn(t testing.TB, c *http.Client, base string) (httpauth.StartURI, string) {
	t.Helper()
	resp, body := get(t, c, base+"/login")
	ml, me := startLink.FindStringSubmatch(body), eventsURL.FindStringSubmatch(body)
	if resp.StatusCode != 200 || ml == nil || me == nil {
		t.Fatalf("login page: %d %s", resp.StatusCode, body)
	}
	su, err := httpauth.ParseStartURI(strings.ReplaceAll(ml[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	return su, strings.ReplaceAll(me[1], "&amp;", "&")
}

// waitEvent reads the SSE stream until an event and returns it.
func waitEvent(t testing.TB, c *http.Client, u string) (event, data string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events content type %q", resp.Header.Get("Content-Type"))
	}
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 1024)
	for {
		n, err := resp.Body.Read(tmp)
		buf = append(buf, tmp[:n]...)
		for _, block := range strings.Split(string(buf), "\n\n") {
			for _, line := range strings.Split(block, "\n") {
				if v, ok := strings.CutPrefix(line, "event: "); ok {
					event = v
				}
				if v, ok := strings.CutPrefix(line, "data: "); ok && event != "" {
					return event, v
				}
			}
		}
		if err != nil {
			t.Fatalf("events ended without an event: %v (%q)", err, buf)
		}
	}
}

func TestWebSignInServerInitiated(t *testing.T) {
	s, base := startWebRoom(t, "community", nil)
	ctx := context.Background()
	alice, mallory := newKey(t), newKey(t)
	_ = s.DB().AddMember(ctx, alice.ID, roomdb.RoleAdmin)
	ac := mustDial(t, s, alice)
	c := browser(t)

	su, events := startSignIn(t, c, base)
	if su.SID != s.ID() || su.MultiserverAddress == "" {
		t.Fatalf("start link: %+v", su)
	}
	// Before the app answers, the no-JS way on says "not yet".
	if resp, _ := get(t, c, base+strings.Replace(events, "/events", "/continue", 1)); resp.StatusCode != 401 {
		t.Fatalf("continue before sign-in: %d", resp.StatusCode)
	}
	var wg sync.WaitGroup
	var ev, data string
	wg.Add(1)
	go func() { defer wg.Done(); ev, data = waitEvent(t, browser(t), base+events) }()
	time.Sleep(100 * time.Millisecond)

	// A forged solution (signed by another key) is refused.
	cc := httpauth.NewChallenge()
	err := ac.ep.Async(ctx, nil, httpauth.MethodSendSolution, su.SC, cc, httpauth.Sign(mallory, s.ID(), su.SC, cc))
	if err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("forged solution: %v", err)
	}
	// A solution for another room is refused.
	if err := ac.ep.Async(ctx, nil, httpauth.MethodSendSolution, su.SC, cc, httpauth.Sign(alice, mallory.ID, su.SC, cc)); err == nil {
		t.Fatal("solution for another server accepted")
	}
	var ok bool
	if err := ac.ep.Async(ctx, &ok, httpauth.MethodSendSolution, su.SC, cc, httpauth.Sign(alice, s.ID(), su.SC, cc)); err != nil || !ok {
		t.Fatalf("sendSolution = %v, %v", ok, err)
	}
	// Replayed: refused.
	if err := ac.ep.Async(ctx, &ok, httpauth.MethodSendSolution, su.SC, cc, httpauth.Sign(alice, s.ID(), su.SC, cc)); err == nil {
		t.Fatal("replayed solution accepted")
	}
	wg.Wait()
	if ev != "success" || !strings.HasPrefix(data, "/withssb/finalize?token=") {
		t.Fatalf("event %q %q", ev, data)
	}
	resp, _ := get(t, c, base+data)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/dashboard" {
		t.Fatalf("finalize: %d %v", resp.StatusCode, resp.Header)
	}
	sc := resp.Header.Get("Set-Cookie")
	if !strings.Contains(sc, "room_session=") || !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Lax") || strings.Contains(sc, "Secure") {
		t.Fatalf("session cookie over plain HTTP: %q", sc)
	}
	// The token works once.
	if resp, _ := get(t, browser(t), base+data); resp.StatusCode != 401 {
		t.Fatalf("finalize replayed: %d", resp.StatusCode)
	}
	resp, body := get(t, c, base+"/dashboard")
	if resp.StatusCode != 200 || !strings.Contains(body, strings.ReplaceAll(template.HTMLEscapeString(alice.ID.String()), "+", "&#43;")) {
		t.Fatalf("dashboard after sign-in: %d", resp.StatusCode)
	}
	// Behind a TLS proxy the cookie is Secure.
	su2, events2 := startSignIn(t, c, base)
	cc2 := httpauth.NewChallenge()
	if err := ac.ep.Async(ctx, &ok, httpauth.MethodSendSolution, su2.SC, cc2, httpauth.Sign(alice, s.ID(), su2.SC, cc2)); err != nil {
		t.Fatal(err)
	}
	_, data2 := waitEvent(t, c, base+events2)
	req, _ := http.NewRequest("GET", base+data2, nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	r2, err := browser(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if sc := r2.Header.Get("Set-Cookie"); !strings.Contains(sc, "Secure") {
		t.Fatalf("cookie behind HTTPS: %q", sc)
	}

	// A non-member cannot sign in.
	mc := mustDial(t, s, mallory)
	su3, _ := startSignIn(t, c, base)
	if err := mc.ep.Async(ctx, &ok, httpauth.MethodSendSolution, su3.SC, cc, httpauth.Sign(mallory, s.ID(), su3.SC, cc)); err == nil {
		t.Fatal("non-member signed in")
	}

	// Sign-out everywhere ends the browser session.
	if err := ac.ep.Async(ctx, &ok, httpauth.MethodInvalidateAll); err != nil || !ok {
		t.Fatalf("invalidateAllSolutions = %v, %v", ok, err)
	}
	if resp, _ := get(t, c, base+"/dashboard"); resp.StatusCode != 401 {
		t.Fatalf("dashboard after invalidateAllSolutions: %d", resp.StatusCode)
	}
}

func TestWebSignInClientInitiated(t *testing.T) {
	s, base := startWebRoom(t, "community", nil)
	ctx := context.Background()
	alice, bob, eve := newKey(t), newKey(t), newKey(t)
	_ = s.DB().AddMember(ctx, alice.ID, roomdb.RoleMember)
	_ = s.DB().AddMember(ctx, bob.ID, roomdb.RoleMember)

	// alice's app answers requestSolution; bob's signs with another key.
	dialAnswering(t, s, alice, func(sc, cc string) string { return httpauth.Sign(alice, s.ID(), sc, cc) })
	dialAnswering(t, s, bob, func(sc, cc string) string { return httpauth.Sign(eve, s.ID(), sc, cc) })

	login := func(c *http.Client, id feeds.FeedRef) *http.Response {
		resp, _ := get(t, c, base+"/login?"+url.Values{"cid": {id.String()}, "cc": {httpauth.NewChallenge()}}.Encode())
		return resp
	}
	c := browser(t)
	if resp := login(c, alice.ID); resp.StatusCode != 303 || !strings.Contains(resp.Header.Get("Set-Cookie"), "room_session=") {
		t.Fatalf("client-initiated sign-in: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, base+"/dashboard"); resp.StatusCode != 200 {
		t.Fatalf("dashboard: %d", resp.StatusCode)
	}
	if resp := login(browser(t), bob.ID); resp.StatusCode != 403 {
		t.Fatalf("forged answer: %d", resp.StatusCode)
	}
	_ = s.DB().AddMember(ctx, eve.ID, roomdb.RoleMember)
	if resp := login(browser(t), eve.ID); resp.StatusCode != 403 {
		t.Fatalf("member not connected: %d", resp.StatusCode)
	}
	if resp := login(browser(t), newKey(t).ID); resp.StatusCode != 403 {
		t.Fatalf("non-member: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, base+"/login?cid=@nope&cc=x"); resp.StatusCode != 400 {
		t.Fatalf("bad query: %d", resp.StatusCode)
	}
}

// dialAnswering connects kp to the room with an app that answers
// httpAuth.requestSolution with sign.
func dialAnswering(t testing.TB, s *Server, kp feeds.KeyPair, sign func(sc, cc string) string) *muxrpc.Endpoint {
	t.Helper()
	m := muxrpc.NewMux()
	m.RegisterSync(muxrpc.Method{"tunnel", "ping"}, func(context.Context, *muxrpc.Request) (any, error) { return time.Now().UnixMilli(), nil })
	m.RegisterAsync(httpauth.MethodRequestSolution, func(_ context.Context, req *muxrpc.Request) (any, error) {
		a, err := httpauth.StringArgs(req.Args, 2)
		if err != nil {
			return nil, err
		}
		return sign(a[0], a[1]), nil
	})
	ep, err := dialWith(context.Background(), s, kp, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	// The room registers the connection just after the handshake.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, ok := (roomPeers{s}).Endpoint(kp.ID); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the room did not register the connection within 10 s")
		}
	}
	return ep
}

func TestWebSignInRateLimit(t *testing.T) {
	_, base := startWebRoom(t, "community", nil)
	c := browser(t)
	id := newKey(t).ID
	var limited int
	for i := 0; i < 15; i++ {
		resp, body := get(t, c, base+"/login?"+url.Values{"cid": {id.String()}, "cc": {httpauth.NewChallenge()}}.Encode())
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
			if !strings.Contains(body, "Too many sign-in attempts") {
				t.Fatalf("429 page: %s", body)
			}
		}
	}
	if limited != 5 {
		t.Fatalf("%d of 15 attempts limited, want 5 (10 per minute)", limited)
	}
}

func TestWebDashboardRolesAndCSRF(t *testing.T) {
	s, base := startWebRoom(t, "community", nil)
	ctx := context.Background()
	admin, member, other := newKey(t), newKey(t), newKey(t)
	_ = s.DB().AddMember(ctx, admin.ID, roomdb.RoleAdmin)
	_ = s.DB().AddMember(ctx, member.ID, roomdb.RoleMember)
	_ = s.DB().AddMember(ctx, other.ID, roomdb.RoleMember)
	ca, cm := browser(t), browser(t)
	csrfA := signIn(t, s, base, ca, admin.ID)
	csrfM := signIn(t, s, base, cm, member.ID)

	// Without a session: 401 everywhere.
	for _, p := range []string{"/dashboard", "/dashboard/members", "/dashboard/invites", "/dashboard/aliases", "/dashboard/denied", "/dashboard/landing"} {
		if resp, _ := get(t, browser(t), base+p); resp.StatusCode != 401 {
			t.Errorf("GET %s signed out: %d", p, resp.StatusCode)
		}
	}
	// CSRF: a form without the token, or with another session's, is refused.
	for _, f := range []url.Values{{}, {"csrf": {""}}, {"csrf": {csrfM}}, {"csrf": {"forged"}}} {
		resp, body := postForm(t, ca, base+"/dashboard/invites/create", f)
		if resp.StatusCode != 403 || !strings.Contains(body, "CSRF") {
			t.Fatalf("create invite with csrf %v: %d", f, resp.StatusCode)
		}
	}
	if list, _ := s.DB().Invites(ctx); len(list) != 0 {
		t.Fatalf("a refused form made %d invites", len(list))
	}
	resp, body := postForm(t, ca, base+"/dashboard/invites/create", url.Values{"csrf": {csrfA}, "uses": {"3"}, "expires": {"24h"}})
	if resp.StatusCode != 200 || !strings.Contains(body, "/join?invite=") || !strings.Contains(body, `<svg class="qr"`) {
		t.Fatalf("create invite: %d %s", resp.StatusCode, body)
	}

	// The member's pages show no admin actions.
	_, body = get(t, cm, base+"/dashboard/members")
	for _, admin := range []string{"/dashboard/members/role", "/dashboard/members/remove", "/dashboard/members/add"} {
		if strings.Contains(body, admin) {
			t.Errorf("member sees %s", admin)
		}
	}
	_, body = get(t, cm, base+"/dashboard")
	if strings.Contains(body, "/dashboard/mode") || strings.Contains(body, "/dashboard/denied") || strings.Contains(body, "/dashboard/landing") {
		t.Error("member sees admin links on the overview")
	}
	_, body = get(t, ca, base+"/dashboard")
	if !strings.Contains(body, "/dashboard/mode") || !strings.Contains(body, "/dashboard/denied") {
		t.Error("admin does not see the mode form and denied keys")
	}
	// ... and the actions are refused by authz, not only hidden.
	for _, a := range []struct {
		path string
		f    url.Values
	}{
		{"/dashboard/members/role", url.Values{"id": {other.ID.String()}, "role": {"admin"}}},
		{"/dashboard/members/remove", url.Values{"id": {other.ID.String()}}},
		{"/dashboard/mode", url.Values{"mode": {"open"}}},
		{"/dashboard/denied/add", url.Values{"id": {other.ID.String()}}},
		{"/dashboard/landing", url.Values{"text": {"pwned"}}},
		{"/dashboard/invites/create", url.Values{"uses": {"5"}}},
	} {
		a.f.Set("csrf", csrfM)
		if resp, _ := postForm(t, cm, base+a.path, a.f); resp.StatusCode != 403 {
			t.Errorf("member POST %s: %d, want 403", a.path, resp.StatusCode)
		}
	}
	if r, _, _ := s.DB().Role(ctx, other.ID); r != roomdb.RoleMember {
		t.Fatalf("other's role changed to %s", r)
	}
	if resp, _ := get(t, cm, base+"/dashboard/denied"); resp.StatusCode != 403 {
		t.Errorf("member GET denied keys: %d", resp.StatusCode)
	}
	// A member may create single-use invites in community mode, not in restricted.
	if resp, _ := postForm(t, cm, base+"/dashboard/invites/create", url.Values{"csrf": {csrfM}}); resp.StatusCode != 200 {
		t.Fatalf("member invite in community mode: %d", resp.StatusCode)
	}
	_ = s.DB().SetMode(ctx, roomdb.ModeRestricted)
	if resp, _ := postForm(t, cm, base+"/dashboard/invites/create", url.Values{"csrf": {csrfM}}); resp.StatusCode != 403 {
		t.Fatalf("member invite in restricted mode: %d", resp.StatusCode)
	}
	_ = s.DB().SetMode(ctx, roomdb.ModeCommunity)
	// The admin's actions work.
	if resp, body := postForm(t, ca, base+"/dashboard/members/role", url.Values{"csrf": {csrfA}, "id": {other.ID.String()}, "role": {"moderator"}}); resp.StatusCode != 303 {
		t.Fatalf("admin role change: %d %s", resp.StatusCode, body)
	}
	if r, _, _ := s.DB().Role(ctx, other.ID); r != roomdb.RoleModerator {
		t.Fatalf("role = %s", r)
	}
	if resp, _ := postForm(t, ca, base+"/dashboard/members/remove", url.Values{"csrf": {csrfA}, "id": {other.ID.String()}}); resp.StatusCode != 303 {
		t.Fatalf("admin remove: %d", resp.StatusCode)
	}
	if resp, _ := postForm(t, ca, base+"/dashboard/mode", url.Values{"csrf": {csrfA}, "mode": {"open"}}); resp.StatusCode != 303 {
		t.Fatalf("admin mode: %d", resp.StatusCode)
	}
	if m, _ := s.DB().Mode(ctx); m != roomdb.ModeOpen {
		t.Fatalf("mode = %s", m)
	}
	// Sign-out in the browser.
	if resp, _ := postForm(t, cm, base+"/logout", url.Values{"csrf": {csrfM}}); resp.StatusCode != 303 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := get(t, cm, base+"/dashboard"); resp.StatusCode != 401 {
		t.Fatalf("dashboard after logout: %d", resp.StatusCode)
	}
}

// ipPattern matches IPv4 addresses and the IPv6 loopback.
var ipPattern = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b|\[?::1\]?`)

func TestWebEscapingAndNoIPs(t *testing.T) {
	s, base := startWebRoom(t, "community", nil)
	ctx := context.Background()
	admin, evil := newKey(t), newKey(t)
	_ = s.DB().AddMember(ctx, admin.ID, roomdb.RoleAdmin)
	_ = s.DB().AddMember(ctx, evil.ID, roomdb.RoleMember)
	ec := mustDial(t, s, evil) // an attendant on the overview
	_ = ec.ep.Async(ctx, nil, muxrpc.Method{"tunnel", "announce"})
	const xss = `<script>alert("x")</script><img src=x onerror=alert(1)>`
	c := browser(t)
	csrf := signIn(t, s, base, c, admin.ID)
	if resp, _ := postForm(t, c, base+"/dashboard/landing", url.Values{"csrf": {csrf}, "text": {xss}}); resp.StatusCode != 303 {
		t.Fatalf("set landing: %d", resp.StatusCode)
	}
	if resp, _ := postForm(t, c, base+"/dashboard/denied/add", url.Values{"csrf": {csrf}, "id": {newKey(t).ID.String()}, "comment": {xss}}); resp.StatusCode != 303 {
		t.Fatalf("deny: %d", resp.StatusCode)
	}
	_ = s.DB().RegisterAlias(ctx, "evil", evil.ID, roomdb.SignAlias(evil, s.ID(), "evil"))
	code, _, _ := s.DB().CreateInvite(ctx, &admin.ID, 1, time.Hour)
	pages := []string{"/", "/login", "/join?invite=" + code, "/join?invite=%3Cscript%3E", "/alias/evil", "/alias/%3Cscript%3E",
		"/dashboard", "/dashboard/members", "/dashboard/invites", "/dashboard/aliases", "/dashboard/denied", "/dashboard/landing",
		"/dashboard?done=" + url.QueryEscape(xss)}
	for _, p := range pages {
		resp, body := get(t, c, base+p)
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
			t.Errorf("%s: user text not escaped", p)
		}
		if ip := ipPattern.FindString(body); ip != "" {
			t.Errorf("%s: shows an IP address %q", p, ip)
		}
		if !strings.Contains(body, "<title>") || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: no title or no security headers", p)
		}
	}
	_, body := get(t, c, base+"/")
	if !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Fatalf("landing text not shown escaped:\n%s", body)
	}
}

// dialWith connects kp to the room serving m to it.
func dialWith(ctx context.Context, s *Server, kp feeds.KeyPair, m *muxrpc.Mux) (*muxrpc.Endpoint, error) {
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.tcpAddr())
	if err != nil {
		return nil, err
	}
	sc, err := secretstream.Client(ctx, raw, s.caps, kp.Private, s.ID().PublicKey())
	if err != nil {
		raw.Close()
		return nil, err
	}
	return muxrpc.NewEndpoint(context.Background(), sc, m, muxrpc.Options{RemoteKey: sc.RemoteKey()}), nil
}

// TestWebTLS: with --tls-cert/--tls-key the web side is HTTPS and the
// session cookie is Secure.
func TestWebTLS(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certPath, keyPath)
	bad := Defaults(t.TempDir())
	bad.TLSCert = certPath
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "tls-cert, tls-key") {
		t.Fatalf("tls-cert without tls-key: %v", err)
	}
	s, _ := startWebRoom(t, "community", func(c *Config) { c.TLSCert, c.TLSKey = certPath, keyPath })
	base := "https://" + s.HTTPAddr()
	c := browser(t)
	c.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // our own self-signed certificate
	resp, body := get(t, c, base+"/")
	if resp.StatusCode != 200 || resp.TLS == nil || !strings.Contains(body, "<title>") {
		t.Fatalf("GET / over TLS: %d", resp.StatusCode)
	}
	alice := newKey(t)
	_ = s.DB().AddMember(context.Background(), alice.ID, roomdb.RoleMember)
	dialAnswering(t, s, alice, func(sc, cc string) string { return httpauth.Sign(alice, s.ID(), sc, cc) })
	resp, _ = get(t, c, base+"/login?"+url.Values{"cid": {alice.ID.String()}, "cc": {httpauth.NewChallenge()}}.Encode())
	if sc := resp.Header.Get("Set-Cookie"); resp.StatusCode != 303 || !strings.Contains(sc, "Secure") || !strings.Contains(sc, "HttpOnly") {
		t.Fatalf("sign-in over TLS: %d, cookie %q", resp.StatusCode, sc)
	}
	// Plain HTTP on the TLS port is refused.
	if r, err := http.Get("http://" + s.HTTPAddr() + "/"); err == nil {
		r.Body.Close()
		if r.StatusCode == 200 {
			t.Fatal("plain HTTP answered on the TLS port")
		}
	}
}

func writeSelfSigned(t *testing.T, certPath, keyPath string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}
