package room

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/httpauth"
	"github.com/cask-ssb/cask/room/roomdb"
)

// The web side in a real browser: headless Chromium driven over the
// DevTools protocol. Screenshots go to room/artifacts/screenshots
// (git-ignored), or $ROOM_SCREENSHOTS.

// chromiumPath finds the browser; the test fails without it (-short skips).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found (install the Debian package chromium, or set CHROMIUM=PATH); go test -short skips the browser tests")
	return ""
}

// startBrowser runs headless Chromium until the test ends.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tctx, tcancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		tcancel()
		cancel() // closes the browser
		acancel()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser (no timeout on this first call)
		t.Fatalf("start chromium: %v", err)
	}
	return tctx
}

type shooter struct {
	t   *testing.T
	dir string
}

func newShooter(t *testing.T) *shooter {
	dir := os.Getenv("ROOM_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("artifacts", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &shooter{t: t, dir: dir}
}

// shot saves a full-page PNG of the current page.
func (s *shooter) shot(ctx context.Context, name string) {
	s.t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, name+".png"), png, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// basics checks what every page must have: a title, a label for every
// visible form control, and no IP address in its text.
func basics(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	type result struct {
		Title     string   `json:"title"`
		Unlabeled []string `json:"unlabeled"`
		IP        string   `json:"ip"`
	}
	js := `(() => {
		const out = {title: document.title, unlabeled: []};
		for (const el of document.querySelectorAll('input, select, textarea')) {
			if (el.type === 'hidden') continue;
			const ok = (el.id && document.querySelector('label[for="' + el.id + '"]')) || el.getAttribute('aria-label') || el.closest('label');
			if (!ok) out.unlabeled.push(el.outerHTML.slice(0, 80));
		}
		const m = document.documentElement.outerHTML.match(/\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/);
		out.ip = m ? m[0] : "";
		return out;
	})()`
	res, err := chromedp.Run(ctx, chromedp.Evaluate[result](js))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if strings.TrimSpace(res.Title) == "" || len(res.Unlabeled) > 0 || res.IP != "" {
		t.Errorf("%s: title %q, controls without a label %v, IP address %q", what, res.Title, res.Unlabeled, res.IP)
	}
}

// signInBrowser runs a server-initiated sign-in: the browser opens the
// login page, the app (ep, with key kp) answers the page's link, and the
// page's live wait takes the browser to the dashboard.
func signInBrowser(t *testing.T, ctx context.Context, base string, ep *muxrpc.Endpoint, kp feeds.KeyPair, sh *shooter, shotName string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.CSS("#start-link"))); err != nil {
		t.Fatalf("login page: %v", err)
	}
	link := attr(t, ctx, "#start-link", "href")
	basics(t, ctx, "login page")
	if shotName != "" {
		sh.shot(ctx, shotName)
	}
	su, err := httpauth.ParseStartURI(link)
	if err != nil {
		t.Fatalf("link on the login page %q: %v", link, err)
	}
	cc := httpauth.NewChallenge()
	var ok bool
	if err := ep.Async(context.Background(), &ok, httpauth.MethodSendSolution, su.SC, cc, httpauth.Sign(kp, su.SID, su.SC, cc)); err != nil || !ok {
		t.Fatalf("sendSolution: %v %v", ok, err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#me"))); err != nil {
		t.Fatalf("the page did not move on to the dashboard: %v", err)
	}
	me := text(t, ctx, "#me")
	if me != kp.ID.String() {
		t.Fatalf("signed in as %q, want %s", me, kp.ID)
	}
}

func TestBrowserRoomWeb(t *testing.T) {
	ctx := startBrowser(t)
	s, base := startWebRoom(t, "community", nil)
	bg := context.Background()
	sh := newShooter(t)
	admin := newKey(t)
	if err := s.DB().AddMember(bg, admin.ID, roomdb.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	_ = s.DB().SetLanding(bg, "Welcome to the test room. <b>Not bold</b>: user text is escaped.")
	adminApp := dialAnswering(t, s, admin, func(sc, cc string) string { return httpauth.Sign(admin, s.ID(), sc, cc) })
	_ = adminApp.Async(bg, nil, muxrpc.Method{"tunnel", "announce"})

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#landing"))); err != nil {
		t.Fatal(err)
	}
	basics(t, ctx, "home")
	sh.shot(ctx, "01-home")

	// 1. The admin signs in with SSB (server-initiated; the Go app answers).
	signInBrowser(t, ctx, base, adminApp, admin, sh, "02-login")
	basics(t, ctx, "dashboard")
	sh.shot(ctx, "03-dashboard-admin")

	// 2. ... and creates an invite on the dashboard, with JavaScript off:
	// the dashboard's forms are plain HTML.
	noScript := func(off bool) {
		if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: off}); err != nil {
			t.Fatal(err)
		}
	}
	noScript(true)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/dashboard/invites"), chromedp.WaitVisible(chromedp.CSS("#create-invite"))); err != nil {
		t.Fatal(err)
	}
	basics(t, ctx, "invites")
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#invite-expires"), "24h"),
		chromedp.Click(chromedp.CSS("#create-invite")),
		chromedp.WaitVisible(chromedp.CSS("#new-invite-link")),
	); err != nil {
		t.Fatalf("create invite: %v", err)
	}
	link := value(t, ctx, "#new-invite-link")
	noScript(false)
	basics(t, ctx, "new invite")
	sh.shot(ctx, "04-invite-created")
	u, err := url.Parse(link)
	if err != nil || u.Path != "/join" || u.Query().Get("invite") == "" {
		t.Fatalf("invite link %q", link)
	}
	code := u.Query().Get("invite")

	// 3. The invite page, then the new member claims it as an app does.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/join?invite="+url.QueryEscape(code)), chromedp.WaitVisible(chromedp.CSS("#claim-link"))); err != nil {
		t.Fatal(err)
	}
	basics(t, ctx, "join")
	sh.shot(ctx, "05-join")
	newbie := newKey(t)
	claimInvite(t, base, code, newbie.ID)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/dashboard/members")); err != nil {
		t.Fatal(err)
	}
	members := text(t, ctx, "#members")
	if !strings.Contains(members, newbie.ID.String()) {
		t.Fatalf("the new member is not on the members page:\n%s", members)
	}
	basics(t, ctx, "members (admin)")
	sh.shot(ctx, "06-members-admin")

	// 4. The new member registers an alias; its page shows the consume link.
	newbieApp := dialAnswering(t, s, newbie, func(sc, cc string) string { return httpauth.Sign(newbie, s.ID(), sc, cc) })
	var aliasURL string
	if err := newbieApp.Async(bg, &aliasURL, muxrpc.Method{"room", "registerAlias"}, "newbie", roomdb.SignAlias(newbie, s.ID(), "newbie")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/alias/newbie")); err != nil {
		t.Fatal(err)
	}
	consume := attr(t, ctx, "#consume-link", "href")
	basics(t, ctx, "alias")
	sh.shot(ctx, "07-alias")
	cu, err := url.Parse(consume)
	if err != nil {
		t.Fatal(err)
	}
	cq := cu.Query()
	if cu.Scheme != "ssb" || cq.Get("action") != "consume-alias" || cq.Get("alias") != "newbie" || cq.Get("userId") != newbie.ID.String() ||
		cq.Get("roomId") != s.ID().String() || roomdb.VerifyAlias(s.ID(), newbie.ID, "newbie", cq.Get("signature")) != nil {
		t.Fatalf("consume link %q", consume)
	}
	if a, err := feeds.ParseAddress(cq.Get("multiserverAddress")); err != nil || a.Key != s.ID() {
		t.Fatalf("consume link's address %q: %v", cq.Get("multiserverAddress"), err)
	}

	// 5. Sign-out everywhere from the app ends the browser's session.
	var ok bool
	if err := adminApp.Async(bg, &ok, httpauth.MethodInvalidateAll); err != nil || !ok {
		t.Fatalf("invalidateAllSolutions: %v %v", ok, err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/dashboard")); err != nil {
		t.Fatal(err)
	}
	msg := text(t, ctx, "#error-message")
	if !strings.Contains(msg, "not signed in") {
		t.Fatalf("dashboard after sign-out says %q", msg)
	}
	sh.shot(ctx, "08-signed-out")

	// 6. A member without rights sees no admin actions.
	signInBrowser(t, ctx, base, newbieApp, newbie, sh, "")
	sh.shot(ctx, "09-dashboard-member")
	count := `document.querySelectorAll('#mode-form, a[href="/dashboard/denied"], a[href="/dashboard/landing"], form[action="/dashboard/members/role"], form[action="/dashboard/members/remove"], #add-member-form, #invite-uses').length`
	for _, p := range []string{"/dashboard", "/dashboard/members", "/dashboard/invites", "/dashboard/aliases"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+p), chromedp.WaitVisible(chromedp.CSS("main"))); err != nil {
			t.Fatal(err)
		}
		adminBits, err := chromedp.Run(ctx, chromedp.Evaluate[int](count))
		if err != nil {
			t.Fatal(err)
		}
		if adminBits != 0 {
			t.Errorf("member sees %d admin controls on %s", adminBits, p)
		}
		basics(t, ctx, p+" (member)")
		if p == "/dashboard/members" {
			sh.shot(ctx, "10-members-member")
		}
	}
	// The member may still make a single-use invite in community mode.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/dashboard/invites"), chromedp.Click(chromedp.CSS("#create-invite")),
		chromedp.WaitVisible(chromedp.CSS("#new-invite-link"))); err != nil {
		t.Fatal(err)
	}
	created := value(t, ctx, "#new-invite-link")
	if !strings.Contains(created, "/join?invite=") {
		t.Fatalf("member's invite link %q", created)
	}
	t.Logf("screenshots in %s", sh.dir)
}

func attr(t *testing.T, ctx context.Context, css, name string) string {
	t.Helper()
	r, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(css), name))
	if err != nil || !r.Exists {
		t.Fatalf("%s[%s]: %v (exists %v)", css, name, err, r.Exists)
	}
	return r.Value
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("text of %s: %v", css, err)
	}
	return v
}

func value(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("value of %s: %v", css, err)
	}
	return v
}

// claimInvite does what an app does with an invite link (§8.8).
func claimInvite(t *testing.T, base, code string, id feeds.FeedRef) {
	t.Helper()
	resp, err := http.Get(base + "/join?" + url.Values{"invite": {code}, "encoding": {"json"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	var inv struct{ Status, Invite, PostTo string }
	_ = json.NewDecoder(resp.Body).Decode(&inv)
	resp.Body.Close()
	if inv.Status != "successful" {
		t.Fatalf("invite json: %+v", inv)
	}
	pt, _ := url.Parse(inv.PostTo)
	body := fmt.Sprintf(`{"id":%q,"invite":%q}`, id.String(), inv.Invite)
	resp, err = http.Post(base+pt.Path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"successful"`) {
		t.Fatalf("claim: %d %s", resp.StatusCode, b)
	}
}
