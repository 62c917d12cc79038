package room

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/room/roomdb"
)

// TestAllowed is the table of protocol.md §8.2: who may call what, per mode
// and membership.
func TestAllowed(t *testing.T) {
	const (
		open, comm, restr = roomdb.ModeOpen, roomdb.ModeCommunity, roomdb.ModeRestricted
	)
	ok := error(nil)
	rows := []struct {
		mode   roomdb.Mode
		member bool
		method string
		want   error
	}{
		{open, false, "room.metadata", ok}, {comm, false, "room.metadata", ok}, {restr, true, "room.metadata", ok},
		{open, false, "tunnel.connect", ok}, {comm, false, "tunnel.connect", ok}, {restr, true, "tunnel.connect", ok},
		{open, false, "room.connect", ok}, {comm, false, "tunnel.ping", ok}, {comm, false, "whoami", ok},
		{open, false, "tunnel.isRoom", ok}, {comm, false, "gossip.ping", ok}, {comm, false, "manifest", ok},

		{open, false, "room.attendants", ok}, {comm, false, "room.attendants", ErrEnumerate}, {comm, true, "room.attendants", ok},
		{restr, false, "room.attendants", ErrEnumerate}, {restr, true, "room.attendants", ok},
		{open, false, "tunnel.endpoints", ok}, {comm, false, "tunnel.endpoints", ErrEnumerate}, {comm, true, "tunnel.endpoints", ok},
		{open, false, "tunnel.announce", ok}, {comm, false, "tunnel.announce", ErrEnumerate}, {comm, true, "tunnel.leave", ok},
		{open, false, "room.members", ok}, {comm, false, "room.members", ErrEnumerate}, {restr, true, "room.members", ok},

		{open, false, "room.listAliases", ok}, {comm, false, "room.listAliases", ok},
		{restr, false, "room.listAliases", ErrEnumerate}, {restr, true, "room.listAliases", ok},
		{open, false, "room.registerAlias", ErrMembersOnly}, {open, true, "room.registerAlias", ok},
		{comm, false, "room.registerAlias", ErrMembersOnly}, {comm, true, "room.registerAlias", ok},
		{restr, true, "room.registerAlias", ErrAliasesOff}, {restr, true, "room.revokeAlias", ErrAliasesOff},
		{comm, true, "room.revokeAlias", ok},
	}
	for _, r := range rows {
		got := Allowed(r.mode, r.member, r.method)
		if !errors.Is(got, r.want) {
			t.Errorf("%s, member=%v, %s: %v, want %v", r.mode, r.member, r.method, got, r.want)
		}
	}
	// Anything else is "not in list of allowed methods", with the JS text.
	for _, m := range []string{"createHistoryStream", "ebt.replicate", "blobs.get", "publish", "httpAuth.requestSolution"} {
		for _, mode := range []roomdb.Mode{open, comm, restr} {
			err := Allowed(mode, true, m)
			var ce *muxrpc.CallError
			if !errors.As(err, &ce) || ce.Message != muxrpc.NotAllowedError(muxrpc.ParseMethod(m)).Message {
				t.Errorf("%s in %s: %v", m, mode, err)
			}
		}
	}
	// Sessions: denied keys never; restricted only members.
	for _, r := range []struct {
		mode           roomdb.Mode
		member, denied bool
		ok             bool
	}{
		{open, false, false, true}, {comm, false, false, true}, {restr, false, false, false}, {restr, true, false, true},
		{open, false, true, false}, {comm, true, true, false}, {restr, true, true, false},
	} {
		if err := SessionAllowed(r.mode, r.member, r.denied); (err == nil) != r.ok {
			t.Errorf("session %s member=%v denied=%v: %v", r.mode, r.member, r.denied, err)
		}
	}
}

func TestFeatures(t *testing.T) {
	for mode, want := range map[roomdb.Mode]string{
		roomdb.ModeOpen: "tunnel,room2,room1,alias", roomdb.ModeCommunity: "tunnel,room2,alias", roomdb.ModeRestricted: "tunnel,room2",
	} {
		b, _ := json.Marshal(Features(mode))
		var got []string
		json.Unmarshal(b, &got)
		if s := join(got); s != want {
			t.Errorf("%s: %s, want %s", mode, s, want)
		}
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

// TestAttendantsAtomic: concurrent joins and leaves with subscribers that
// subscribe at random moments; every subscriber's state plus its events
// equals the final set.
func TestAttendantsAtomic(t *testing.T) {
	a := NewAttendants(1 << 16)
	const n = 64
	eps := make([]*muxrpc.Endpoint, n)
	for i := range eps {
		eps[i] = new(muxrpc.Endpoint)
	}
	id := func(i int) feeds.FeedRef { return feeds.FeedRef{byte(i), 1} }
	type sub struct {
		set map[feeds.FeedRef]bool
		s   *Subscription
	}
	var mu sync.Mutex
	var subs []*sub
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 50 {
				if k%10 == i%10 {
					state, s := a.Subscribe(nil)
					sb := &sub{set: map[feeds.FeedRef]bool{}, s: s}
					for _, x := range state {
						sb.set[x] = true
					}
					mu.Lock()
					subs = append(subs, sb)
					mu.Unlock()
				}
				if k%2 == 0 {
					a.Join(id(i), eps[i])
				} else if k != 49 || i%2 == 0 {
					a.Leave(id(i), eps[i])
				}
			}
		}()
	}
	wg.Wait()
	truth := map[feeds.FeedRef]bool{}
	for _, x := range a.IDs() {
		truth[x] = true
	}
	for i, sb := range subs {
		for _, ev := range sb.s.Take() {
			if ev.Joined == sb.set[ev.ID] {
				t.Fatalf("subscriber %d: event %+v repeats the state", i, ev)
			}
			sb.set[ev.ID] = ev.Joined
			if !ev.Joined {
				delete(sb.set, ev.ID)
			}
		}
		if len(sb.set) != len(truth) {
			t.Fatalf("subscriber %d sees %d, truth %d", i, len(sb.set), len(truth))
		}
		for x := range truth {
			if !sb.set[x] {
				t.Fatalf("subscriber %d misses %v", i, x)
			}
		}
		sb.s.Close()
	}
	if a.Subscribers() != 0 {
		t.Fatalf("%d subscribers left", a.Subscribers())
	}
}

func TestAttendantsOverflowAndReplace(t *testing.T) {
	a := NewAttendants(2)
	dropped := make(chan struct{})
	_, slow := a.Subscribe(func() { close(dropped) })
	ep1, ep2 := new(muxrpc.Endpoint), new(muxrpc.Endpoint)
	x := feeds.FeedRef{9}
	for i := range 3 {
		a.Join(feeds.FeedRef{byte(i)}, ep1)
	}
	<-dropped
	select {
	case <-slow.Dead():
	default:
		t.Fatal("overflowed subscription not dead")
	}
	_, s := a.Subscribe(nil)
	if !a.Join(x, ep1) || a.Join(x, ep2) {
		t.Fatal("replacement announced as a new join")
	}
	if a.Leave(x, ep1) {
		t.Fatal("the replaced connection removed its successor")
	}
	if ep, _ := a.Lookup(x); ep != ep2 {
		t.Fatal("lookup does not return the newer connection")
	}
	if !a.Leave(x, ep2) {
		t.Fatal("leave failed")
	}
	evs := s.Take()
	if len(evs) != 2 || !evs[0].Joined || evs[1].Joined {
		t.Fatalf("events %+v, want one joined and one left", evs)
	}
}

func FuzzStringArgs(f *testing.F) {
	f.Add(`["alice","sig.sig.ed25519"]`, 2)
	f.Add(`[1,2]`, 2)
	f.Add(`{}`, 1)
	f.Fuzz(func(t *testing.T, args string, n int) {
		if n < 0 || n > 4 {
			return
		}
		req := &muxrpc.Request{Method: muxrpc.Method{"room", "registerAlias"}, Args: json.RawMessage(args)}
		out, err := stringArgs(req, n)
		if err == nil && len(out) != n {
			t.Fatalf("%q: %d strings, want %d", args, len(out), n)
		}
	})
}
