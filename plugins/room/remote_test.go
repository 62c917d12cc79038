package room

import (
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
)

// TestAttendantsUnion: the union view sends joined when an id is first
// held by any node and left only when no node holds it; the local
// subscription sees local changes only.
func TestAttendantsUnion(t *testing.T) {
	a := NewAttendants(0)
	x, y := feeds.FeedRef{1}, feeds.FeedRef{2}
	ep := &muxrpc.Endpoint{}
	_, all := a.Subscribe(nil)
	_, local := a.SubscribeLocal(nil)
	type ev = Event
	steps := []struct {
		name      string
		do        func()
		all, locl []ev
	}{
		{"remote join", func() { a.RemoteJoin("n2", x) }, []ev{{x, true}}, nil},
		{"second node holds it too", func() { a.RemoteJoin("n3", x) }, nil, nil},
		{"local join of a remote attendant", func() { a.Join(x, ep) }, nil, []ev{{x, true}}},
		{"one node loses it", func() { a.RemoteLeave("n2", x) }, nil, nil},
		{"local leave", func() { a.Leave(x, ep) }, nil, []ev{{x, false}}},
		{"last node loses it", func() { a.RemoteLeave("n3", x) }, []ev{{x, false}}, nil},
		{"leave of an unknown id", func() { a.RemoteLeave("n3", y) }, nil, nil},
		{"state", func() { a.RemoteState("n2", []feeds.FeedRef{x, y}) }, []ev{{x, true}, {y, true}}, nil},
		{"state again, y gone", func() { a.RemoteState("n2", []feeds.FeedRef{x}) }, []ev{{y, false}}, nil},
		{"link drop", func() { a.RemoteDrop("n2") }, []ev{{x, false}}, nil},
	}
	for _, s := range steps {
		s.do()
		gotAll, gotLocal := all.Take(), local.Take()
		if !sameEvents(gotAll, s.all) || !sameEvents(gotLocal, s.locl) {
			t.Fatalf("%s: union events %v (want %v), local events %v (want %v)", s.name, gotAll, s.all, gotLocal, s.locl)
		}
	}
	if a.UnionLen() != 0 || len(a.Holders(x)) != 0 {
		t.Fatalf("after all left: union %d, holders %v", a.UnionLen(), a.Holders(x))
	}
	a.RemoteJoin("n3", y)
	a.Join(x, ep)
	if a.Len() != 1 || a.UnionLen() != 2 || len(a.IDs()) != 2 || len(a.LocalIDs()) != 1 {
		t.Fatalf("counts: local %d union %d ids %v local ids %v", a.Len(), a.UnionLen(), a.IDs(), a.LocalIDs())
	}
	if h := a.Holders(y); len(h) != 1 || h[0] != "n3" {
		t.Fatalf("holders of y = %v", h)
	}
	if _, ok := a.Lookup(y); ok {
		t.Fatal("Lookup finds a remote attendant: tunnels to it must be forwarded")
	}
}

func sameEvents(a, b []Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
