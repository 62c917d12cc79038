package invite

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// fakeFeed records what a node publishes.
type fakeFeed struct {
	mu   sync.Mutex
	msgs []json.RawMessage
	fail error
}

func (f *fakeFeed) Publish(_ context.Context, content json.RawMessage) (store.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return store.Record{}, f.fail
	}
	f.msgs = append(f.msgs, append(json.RawMessage(nil), content...))
	return store.Record{Value: json.RawMessage(`{"content":` + string(content) + `}`), Timestamp: 1}, nil
}

func (f *fakeFeed) contents() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, m := range f.msgs {
		out = append(out, string(m))
	}
	return out
}

// testPub is a node serving the invite methods; owner() and peer(kp)
// open muxrpc sessions with it as the owner or as a peer with key kp.
type testPub struct {
	t       *testing.T
	id      feeds.KeyPair
	codes   *Codes
	feed    *fakeFeed
	mux     *muxrpc.Mux
	follows map[feeds.FeedRef]bool
}

func newTestPub(t *testing.T, configure func(o *Options)) *testPub {
	t.Helper()
	kp, err := feeds.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	codes, err := OpenCodes(filepath.Join(t.TempDir(), "invites.json"))
	if err != nil {
		t.Fatal(err)
	}
	p := &testPub{t: t, id: kp, codes: codes, feed: &fakeFeed{}, follows: map[feeds.FeedRef]bool{}}
	o := Options{
		Self: kp.ID, Codes: codes, Publisher: p.feed,
		Follows: func(a, b feeds.FeedRef) bool { return a == kp.ID && p.follows[b] },
		Address: func() (string, int, error) { return "pub.example.org", 8008, nil },
	}
	if configure != nil {
		configure(&o)
	}
	p.mux = muxrpc.NewMux()
	if err := service.Mount(p.mux, func(req *muxrpc.Request) bool { return req.RemoteKey() == nil }, Service(o)); err != nil {
		t.Fatal(err)
	}
	return p
}

// session connects a client to the pub over a pipe; remote is the key the
// pub sees (nil: the owner).
func (p *testPub) session(remote ed25519.PublicKey) *muxrpc.Endpoint {
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	srv := muxrpc.NewEndpoint(ctx, a, p.mux, muxrpc.Options{RemoteKey: remote})
	cli := muxrpc.NewEndpoint(ctx, b, nil, muxrpc.Options{})
	p.t.Cleanup(func() { cli.Close(); srv.Close(); cancel() })
	return cli
}

func (p *testPub) create(t *testing.T, opts any) Code {
	t.Helper()
	var s string
	if err := p.session(nil).Async(context.Background(), &s, muxrpc.Method{"invite", "create"}, opts); err != nil {
		t.Fatal(err)
	}
	c, err := ParseCode(s)
	if err != nil {
		t.Fatalf("invite.create printed %q: %v", s, err)
	}
	return c
}

func use(ctx context.Context, e *muxrpc.Endpoint, feed string) (json.RawMessage, error) {
	var out json.RawMessage
	err := e.Async(ctx, &out, muxrpc.Method{"invite", "use"}, map[string]string{"feed": feed})
	return out, err
}

func newFeed(t *testing.T) feeds.KeyPair {
	t.Helper()
	kp, err := feeds.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func TestCreateAndUse(t *testing.T) {
	p := newTestPub(t, nil)
	code := p.create(t, map[string]any{"uses": 2, "note": "for alice"})
	if code.Addr.Host != "pub.example.org" || code.Addr.Port != 8008 || code.Addr.Key != p.id.ID {
		t.Fatalf("code address %v", code.Addr)
	}
	want := "pub.example.org:8008:" + p.id.ID.String() + "~"
	if !strings.HasPrefix(code.String(), want) {
		t.Fatalf("code %q, want prefix %q", code, want)
	}
	kp, _ := code.KeyPair()
	ctx := context.Background()
	alice, bob, carol := newFeed(t), newFeed(t), newFeed(t)

	// A stranger (not the invite key) may not use it.
	if _, err := use(ctx, p.session(newFeed(t).Private.Public().(ed25519.PublicKey)), alice.ID.String()); err == nil || !strings.Contains(err.Error(), "method:invite,use is not in list of allowed methods") {
		t.Fatalf("stranger: %v", err)
	}
	inv := p.session(kp.ID.PublicKey())
	if _, err := use(ctx, inv, ""); err == nil || !strings.Contains(err.Error(), "feed to follow is missing") {
		t.Fatalf("no feed: %v", err)
	}
	if _, err := use(ctx, inv, alice.ID.String()); err != nil {
		t.Fatal(err)
	}
	wantFollow := `{"type":"contact","contact":"` + alice.ID.String() + `","following":true,"pub":true,"note":"for alice"}`
	if got := p.feed.contents(); len(got) != 1 || got[0] != wantFollow {
		t.Fatalf("published %q, want %q", got, wantFollow)
	}
	// Already followed: JS's error, and no use counted.
	p.follows[alice.ID] = true
	if _, err := use(ctx, inv, alice.ID.String()); err == nil || !strings.Contains(err.Error(), "already following") {
		t.Fatalf("again: %v", err)
	}
	if _, err := use(ctx, inv, bob.ID.String()); err != nil {
		t.Fatal(err)
	}
	// Exhausted: the invite key has no right to call invite.use any more.
	if _, err := use(ctx, inv, carol.ID.String()); err == nil || !strings.Contains(err.Error(), "method:invite,use is not in list of allowed methods") {
		t.Fatalf("exhausted: %v", err)
	}
	if got := p.codes.List(); len(got) != 1 || got[0].Used != 2 || got[0].Total != 2 || got[0].Note != "for alice" {
		t.Fatalf("stored %+v", got)
	}
	// The count survives a restart (the file).
	again, err := OpenCodes(p.codes.path)
	if err != nil {
		t.Fatal(err)
	}
	if again.Usable(kp.ID) {
		t.Fatal("an exhausted invite is usable after reopening")
	}
}

func TestCreateArguments(t *testing.T) {
	p := newTestPub(t, nil)
	tests := []struct {
		name string
		args []any
		uses int
		host string
		err  string
	}{
		{"none", nil, 1, "pub.example.org", ""},
		{"number", []any{3}, 3, "pub.example.org", ""},
		{"object", []any{map[string]any{"uses": 5}}, 5, "pub.example.org", ""},
		{"external", []any{map[string]any{"external": "other.example.org"}}, 1, "other.example.org", ""},
		{"zero uses", []any{map[string]any{"uses": -1}}, 0, "", "want 1 to"},
		{"fraction", []any{1.5}, 0, "", "not an integer"},
		{"bad host", []any{map[string]any{"external": "a~b"}}, 0, "", "usable invite code"},
		{"wrong type", []any{"ten"}, 0, "", "want a number of uses"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s string
			err := p.session(nil).Async(context.Background(), &s, muxrpc.Method{"invite", "create"}, tc.args...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseCode(s)
			if err != nil {
				t.Fatal(err)
			}
			kp, _ := c.KeyPair()
			var e *Entry
			for _, x := range p.codes.List() {
				if x.ID == kp.ID {
					e = &x
				}
			}
			if e == nil || e.Total != tc.uses || c.Addr.Host != tc.host {
				t.Fatalf("entry %+v host %q, want uses %d host %q", e, c.Addr.Host, tc.uses, tc.host)
			}
		})
	}
	// Peers other than the owner may not create invites.
	err := p.session(newFeed(t).ID.PublicKey()).Async(context.Background(), nil, muxrpc.Method{"invite", "create"})
	if err == nil || !strings.Contains(err.Error(), "not in list of allowed methods") {
		t.Fatalf("stranger created an invite: %v", err)
	}
}

func TestCreateWithoutAddress(t *testing.T) {
	p := newTestPub(t, func(o *Options) {
		o.Address = func() (string, int, error) { return "", 0, errors.New("the daemon has no TCP listener") }
	})
	err := p.session(nil).Async(context.Background(), nil, muxrpc.Method{"invite", "create"})
	if err == nil || !strings.Contains(err.Error(), "no TCP listener") {
		t.Fatalf("err %v", err)
	}
}

// TestUseIsCountedOnce: many invitees race for the last uses; exactly
// total of them are followed.
func TestUseIsCountedOnce(t *testing.T) {
	p := newTestPub(t, nil)
	code := p.create(t, 3)
	kp, _ := code.KeyPair()
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := p.session(kp.ID.PublicKey())
			_, err := use(context.Background(), e, newFeed(t).ID.String())
			switch {
			case err == nil:
				ok.Add(1)
			case strings.Contains(err.Error(), "invite has expired"), strings.Contains(err.Error(), "not in list of allowed methods"):
			default:
				t.Errorf("use: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 3 || len(p.feed.contents()) != 3 {
		t.Fatalf("%d uses succeeded, %d follows published; want 3", ok.Load(), len(p.feed.contents()))
	}
}

// TestUseGivesBackOnPublishFailure: a use whose follow could not be
// published is not counted.
func TestUseGivesBackOnPublishFailure(t *testing.T) {
	p := newTestPub(t, nil)
	code := p.create(t, 1)
	kp, _ := code.KeyPair()
	p.feed.fail = errors.New("disk full")
	if _, err := use(context.Background(), p.session(kp.ID.PublicKey()), newFeed(t).ID.String()); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err %v", err)
	}
	if !p.codes.Usable(kp.ID) {
		t.Fatal("the failed use was counted")
	}
}

// TestAccept: the invitee dials the pub with the invite key, the pub
// follows it, and it follows the pub and publishes the pub's address.
func TestAccept(t *testing.T) {
	pub := newTestPub(t, nil)
	code := pub.create(t, map[string]any{"uses": 1})
	me := newFeed(t)
	var dialled []feeds.FeedRef
	var connected feeds.Address
	invitee := newTestPub(t, func(o *Options) {
		o.Self = me.ID
		o.Dial = func(ctx context.Context, a feeds.Address, kp feeds.KeyPair) (*muxrpc.Endpoint, error) {
			if a != code.Addr {
				t.Errorf("dialled %v, want %v", a, code.Addr)
			}
			dialled = append(dialled, kp.ID)
			return pub.session(kp.ID.PublicKey()), nil
		}
		o.Connect = func(ctx context.Context, a feeds.Address) error { connected = a; return nil }
	})
	invitee.id = me
	var res AcceptResult
	if err := invitee.session(nil).Async(context.Background(), &res, muxrpc.Method{"invite", "accept"}, code.String()); err != nil {
		t.Fatal(err)
	}
	kp, _ := code.KeyPair()
	if len(dialled) != 1 || dialled[0] != kp.ID {
		t.Fatalf("dialled with %v, want the invite key %s", dialled, kp.ID)
	}
	if got := pub.feed.contents(); len(got) != 1 || !strings.Contains(got[0], `"contact":"`+me.ID.String()+`"`) {
		t.Fatalf("pub published %q", got)
	}
	want := []string{
		`{"type":"contact","following":true,"autofollow":true,"contact":"` + pub.id.ID.String() + `"}`,
		`{"type":"pub","address":{"host":"pub.example.org","port":8008,"key":"` + pub.id.ID.String() + `"}}`,
	}
	if got := invitee.feed.contents(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("invitee published\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !res.Connected || connected != code.Addr || res.Pub != pub.id.ID.String() || len(res.Published) != 2 {
		t.Fatalf("result %+v, connected %v", res, connected)
	}
	// The same code again: used up, refused with the JS text.
	err := invitee.session(nil).Async(context.Background(), &res, muxrpc.Method{"invite", "accept"}, code.Multiserver())
	if err == nil || !strings.Contains(err.Error(), "invite not accepted") || !strings.Contains(err.Error(), "method:invite,use is not in list of allowed methods") {
		t.Fatalf("second accept: %v", err)
	}
}

func TestAcceptRetriesTheDial(t *testing.T) {
	pub := newTestPub(t, nil)
	code := pub.create(t, 1)
	var dials int
	invitee := newTestPub(t, func(o *Options) {
		o.RetryWait = time.Millisecond
		o.Dial = func(ctx context.Context, a feeds.Address, kp feeds.KeyPair) (*muxrpc.Endpoint, error) {
			dials++
			return nil, errors.New("connection refused")
		}
	})
	err := invitee.session(nil).Async(context.Background(), nil, muxrpc.Method{"invite", "accept"}, code.String())
	if err == nil || !strings.Contains(err.Error(), "could not connect to the pub") || dials != 3 {
		t.Fatalf("err %v after %d dials, want 3", err, dials)
	}
}

func TestParseCode(t *testing.T) {
	key := "@VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8=.ed25519"
	seed := "r4hIBk7KC7a9Gknj6Qiuuo4+Et/TS2rjgl6gYgw3OIM="
	tests := []struct {
		in   string
		host string
		port int
		ok   bool
	}{
		{"one.butt.nz:8008:" + key + "~" + seed, "one.butt.nz", 8008, true},
		{`"one.butt.nz:8008:` + key + "~" + seed + `"`, "one.butt.nz", 8008, true},
		{"one.butt.nz:8008:" + key + "~" + seed + "#@redirect", "one.butt.nz", 8008, true},
		{"net:one.butt.nz:8008~shs:VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8=:" + seed, "one.butt.nz", 8008, true},
		{"  127.0.0.1:9000:" + key + "~" + seed + "\n", "127.0.0.1", 9000, true},
		{"one.butt.nz:8008:" + key, "", 0, false},
		{"one.butt.nz:8008:" + key + "~short", "", 0, false},
		{"net:one.butt.nz:8008~shs:VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8=", "", 0, false},
		{"ws://one.butt.nz:80~shs:VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8=:" + seed, "", 0, false},
		{"one.butt.nz:8008:" + key + "~" + seed + "~" + seed, "", 0, false},
		{"", "", 0, false},
	}
	for _, tc := range tests {
		c, err := ParseCode(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseCode(%q) = %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		if c.Addr.Host != tc.host || c.Addr.Port != tc.port || c.Addr.Key.String() != key || len(c.Seed) != 32 {
			t.Errorf("ParseCode(%q) = %+v", tc.in, c)
		}
		// Both printed forms read back the same.
		for _, s := range []string{c.String(), c.Multiserver()} {
			if back, err := ParseCode(s); err != nil || back.Addr != c.Addr || string(back.Seed) != string(c.Seed) {
				t.Errorf("round trip %q: %+v, %v", s, back, err)
			}
		}
	}
}

func FuzzParseCode(f *testing.F) {
	f.Add("one.butt.nz:8008:@VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8=.ed25519~r4hIBk7KC7a9Gknj6Qiuuo4+Et/TS2rjgl6gYgw3OIM=")
	f.Add("net:one.butt.nz:8008~shs:VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8=:r4hIBk7KC7a9Gknj6Qiuuo4+Et/TS2rjgl6gYgw3OIM=")
	f.Add("[::1]:8008:@x~y")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCode(s)
		if err != nil {
			return
		}
		if len(c.Seed) != 32 {
			t.Fatalf("seed of %d bytes", len(c.Seed))
		}
		back, err := ParseCode(c.Multiserver())
		if err != nil || back.Addr != c.Addr {
			t.Fatalf("%q parsed as %+v; its multiserver form %q reads back as %+v, %v", s, c, c.Multiserver(), back, err)
		}
	})
}
