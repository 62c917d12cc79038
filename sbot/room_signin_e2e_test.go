package sbot_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/plugins/httpauth"
	"github.com/cask-ssb/cask/room"
)

// startWebRoom runs a room with its web side on 127.0.0.1 (plain HTTP).
func startWebRoom(t *testing.T, mode string) (*room.Server, string) {
	t.Helper()
	cfg := room.Defaults(t.TempDir())
	cfg.Listen, cfg.HTTPListen, cfg.DebugListen = "127.0.0.1:0", "127.0.0.1:0", "off"
	cfg.Mode, cfg.LinkScheme, cfg.KeepAlive = mode, "http", 5*time.Second
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
	return s, "http://" + s.HTTPAddr()
}

func httpGet(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestRoomSignIn: `sbot room signin LINK` answers a room's
// server-initiated sign-in, the daemon answers httpAuth.requestSolution
// for a client-initiated one, and `sbot room signout` ends the browser's
// session.
func TestRoomSignIn(t *testing.T) {
	r, base := startWebRoom(t, "community")
	repo := t.TempDir()
	d := startDaemon(t, repo, "--listen", "off")
	if err := r.DB().AddMember(context.Background(), mustID(t, d.id), "admin"); err != nil {
		t.Fatal(err)
	}
	run(t, "", "room", "join", "--repo", repo, r.Address())
	eventually(t, "the daemon to be connected to the room", func() bool {
		_, ok := r.Attendants().Lookup(mustID(t, d.id))
		return ok
	})
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 20 * time.Second}

	// Server-initiated: the page's link, answered by the CLI.
	_, page := httpGet(t, browser, base+"/login")
	m := regexp.MustCompile(`href="(ssb:experimental\?action=start-http-auth[^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no start-http-auth link on the login page")
	}
	link := strings.ReplaceAll(m[1], "&amp;", "&")
	su, err := httpauth.ParseStartURI(link)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Room     string `json:"room"`
		SignedIn bool   `json:"signedIn"`
	}
	if err := json.Unmarshal(run(t, "", "room", "signin", "--repo", repo, link), &res); err != nil || !res.SignedIn || res.Room != r.ID().String() {
		t.Fatalf("room signin = %+v, %v", res, err)
	}
	// The page's no-JS way on now leads to the dashboard.
	resp, body := httpGet(t, browser, base+"/withssb/continue?"+url.Values{"sc": {su.SC}}.Encode())
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/dashboard" || !strings.Contains(body, "Overview") {
		t.Fatalf("after signin: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	// The same link again: refused (the challenge is used).
	if _, code, _ := runCode(t, "", "room", "signin", "--repo", repo, link); code == 0 {
		t.Fatal("a used sign-in link was accepted twice")
	}
	if _, code, _ := runCode(t, "", "room", "signin", "--repo", repo, "https://example.org/login"); code != 2 {
		t.Fatalf("signin with a web URL: exit %d, want 2 (usage)", code)
	}

	// Client-initiated: the room asks the daemon for the solution.
	jar2, _ := cookiejar.New(nil)
	b2 := &http.Client{Jar: jar2, Timeout: 20 * time.Second}
	resp, _ = httpGet(t, b2, base+"/login?"+url.Values{"cid": {d.id}, "cc": {httpauth.NewChallenge()}}.Encode())
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/dashboard" {
		t.Fatalf("client-initiated sign-in: %d at %s", resp.StatusCode, resp.Request.URL)
	}

	// Sign out everywhere.
	run(t, "", "room", "signout", "--repo", repo, r.ID().String())
	for _, c := range []*http.Client{browser, b2} {
		if resp, _ := httpGet(t, c, base+"/dashboard"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("dashboard after signout: %d", resp.StatusCode)
		}
	}
}
