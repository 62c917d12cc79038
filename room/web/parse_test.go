package web

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/room/roomdb"
)

const testID = "@FlieaFef19uJ6jhHwv2CSkFrDLYKJd/SuIS71A5Y2as=.ed25519"

var testCode = strings.Repeat("A", roomdb.InviteCodeLen-1) + "Q"

func TestParseConsume(t *testing.T) {
	for _, c := range []struct {
		ctype, body string
		ok, json    bool
	}{
		{"application/json", `{"id":"` + testID + `","invite":"` + testCode + `"}`, true, true},
		{"application/json; charset=utf-8", `{"id":"` + testID + `","invite":"` + testCode + `"}`, true, true},
		{"application/x-www-form-urlencoded", "id=" + url.QueryEscape(testID) + "&invite=" + testCode + "&csrf=t", true, false},
		{"application/json", `{"id":"` + testID + `"}`, false, true},
		{"application/json", `{"id":"@x","invite":"` + testCode + `"}`, false, true},
		{"application/json", `{"id":"` + testID + `","invite":"short"}`, false, true},
		{"application/json", `[]`, false, true},
		{"text/plain", "id=x", false, false},
		{"", "", false, false},
		{"application/json", `{"id":"` + testID + `","invite":"` + testCode + `","x":"` + strings.Repeat("a", maxBody) + `"}`, false, false},
	} {
		r, err := parseConsume(c.ctype, strings.NewReader(c.body))
		if (err == nil) != c.ok {
			t.Errorf("%s %.60q: err = %v, want ok=%v", c.ctype, c.body, err, c.ok)
			continue
		}
		if c.ok && (r.ID.String() != testID || r.Invite != testCode || r.JSON != c.json) {
			t.Errorf("%s: got %+v", c.ctype, r)
		}
	}
}

func TestParseLoginQuery(t *testing.T) {
	cc := strings.Repeat("a", 43) + "="
	for _, c := range []struct {
		q          string
		clientInit bool
		ok         bool
	}{
		{"", false, true},
		{"cid=" + url.QueryEscape(testID) + "&cc=" + cc, true, true},
		{"ssb-http-auth=1&cid=" + url.QueryEscape(testID) + "&cc=" + cc, true, true},
		{"cid=" + url.QueryEscape(testID), true, false},
		{"cc=" + cc, true, false},
		{"cid=" + url.QueryEscape(testID) + "&cc=short", true, false},
		{"cid=" + url.QueryEscape(testID) + "&cc=" + strings.Repeat("%3C", 50), true, false},
	} {
		q, _ := url.ParseQuery(c.q)
		lq, ci, err := parseLoginQuery(q)
		if ci != c.clientInit || (err == nil) != c.ok {
			t.Errorf("%q: clientInit=%v err=%v", c.q, ci, err)
		}
		if ci && err == nil && (lq.CID.String() != testID || lq.CC != cc) {
			t.Errorf("%q: %+v", c.q, lq)
		}
	}
}

func TestParseInviteForm(t *testing.T) {
	for _, c := range []struct {
		f    url.Values
		uses int
		ttl  time.Duration
		ok   bool
	}{
		{url.Values{}, 1, 7 * 24 * time.Hour, true},
		{url.Values{"uses": {"3"}, "expires": {"1h"}}, 3, time.Hour, true},
		{url.Values{"uses": {"0"}}, 0, 0, false},
		{url.Values{"uses": {"1001"}}, 0, 0, false},
		{url.Values{"uses": {"x"}}, 0, 0, false},
		{url.Values{"expires": {"100y"}}, 0, 0, false},
	} {
		f, err := parseInviteForm(c.f)
		if (err == nil) != c.ok || c.ok && (f.Uses != c.uses || f.TTL != c.ttl) {
			t.Errorf("%v: %+v, %v", c.f, f, err)
		}
	}
}

func TestSubdomainAlias(t *testing.T) {
	s := &Server{o: Options{Domain: "room.example.org"}}
	for host, want := range map[string]string{
		"alice.room.example.org": "alice", "ALICE.room.example.org:443": "alice",
		"room.example.org": "", "a.b.room.example.org": "", "alice.other.org": "", ".room.example.org": "",
	} {
		got, ok := s.subdomainAlias(host)
		if ok != (want != "") || got != want {
			t.Errorf("%q: %q %v, want %q", host, got, ok, want)
		}
	}
}

func FuzzParseConsume(f *testing.F) {
	f.Add("application/json", `{"id":"`+testID+`","invite":"`+testCode+`"}`)
	f.Add("application/x-www-form-urlencoded", "id="+url.QueryEscape(testID)+"&invite="+testCode+"&csrf=x")
	f.Add("multipart/form-data; boundary=x", "--x--")
	f.Fuzz(func(t *testing.T, ctype, body string) {
		r, err := parseConsume(ctype, strings.NewReader(body))
		if err != nil {
			return
		}
		if _, err := roomdb.ParseInviteCode(r.Invite); err != nil {
			t.Fatalf("accepted a bad invite code %q", r.Invite)
		}
		if _, err := feeds.ParseFeedRef(r.ID.String()); err != nil {
			t.Fatalf("accepted a bad id")
		}
	})
}

func FuzzParseLoginQuery(f *testing.F) {
	f.Add("cid=" + url.QueryEscape(testID) + "&cc=" + strings.Repeat("a", 44))
	f.Add("cid=&cc=")
	f.Add("%zz")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		lq, ci, err := parseLoginQuery(q)
		if ci && err == nil && (len(lq.CC) < 43 || len(lq.CC) > 128) {
			t.Fatalf("accepted cc of %d bytes", len(lq.CC))
		}
	})
}

func FuzzParseInviteForm(f *testing.F) {
	f.Add("uses=3&expires=24h")
	f.Add("uses=-1")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		fm, err := parseInviteForm(q)
		if err == nil && (fm.Uses < 1 || fm.Uses > 1000 || fm.TTL <= 0) {
			t.Fatalf("accepted %+v", fm)
		}
	})
}

func FuzzSubdomainAlias(f *testing.F) {
	f.Add("alice.room.example.org:443")
	f.Fuzz(func(t *testing.T, host string) {
		s := &Server{o: Options{Domain: "room.example.org"}}
		if name, ok := s.subdomainAlias(host); ok && (name == "" || strings.Contains(name, ".")) {
			t.Fatalf("%q -> %q", host, name)
		}
	})
}
