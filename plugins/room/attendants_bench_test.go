package room

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
)

// BenchmarkAttendantsState: what a subscriber's state costs the room with
// 1,000 attendants present, built from the cached id strings
// (SubscribeJSON) against sorting the ids and encoding them with
// encoding/json (how it was built before).
func BenchmarkAttendantsState(b *testing.B) {
	a := NewAttendants(0)
	ep := &muxrpc.Endpoint{}
	for i := range 1000 {
		kp, err := feeds.KeyPairFromSeed(fmt.Appendf(nil, "%032d", i))
		if err != nil {
			b.Fatal(err)
		}
		a.Join(kp.ID, ep)
	}
	b.Run("json-cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			state, sub := a.SubscribeJSON(nil)
			sub.Close()
			if len(state) < 1000*50 {
				b.Fatalf("state of %d bytes", len(state))
			}
		}
	})
	b.Run("sorted-marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ids, sub := a.Subscribe(nil)
			sub.Close()
			state, err := json.Marshal(struct {
				Type string   `json:"type"`
				IDs  []string `json:"ids"`
			}{"state", idStrings(ids)})
			if err != nil || len(state) < 1000*50 {
				b.Fatalf("state of %d bytes, %v", len(state), err)
			}
		}
	})
}

// TestStateJSON: the state SubscribeJSON gives decodes to the present set.
func TestStateJSON(t *testing.T) {
	a := NewAttendants(0)
	ep := &muxrpc.Endpoint{}
	want := map[string]bool{}
	for i := range 5 {
		kp, err := feeds.KeyPairFromSeed(fmt.Appendf(nil, "%032d", i))
		if err != nil {
			t.Fatal(err)
		}
		a.Join(kp.ID, ep)
		want[kp.ID.String()] = true
	}
	remote := feeds.FeedRef{9}
	a.RemoteJoin("n2", remote)
	want[remote.String()] = true
	state, sub := a.SubscribeJSON(nil)
	defer sub.Close()
	var got struct {
		Type string   `json:"type"`
		IDs  []string `json:"ids"`
	}
	if err := json.Unmarshal(state, &got); err != nil {
		t.Fatalf("%s: %v", state, err)
	}
	if got.Type != "state" || len(got.IDs) != len(want) {
		t.Fatalf("state %s, want %d ids", state, len(want))
	}
	for _, id := range got.IDs {
		if !want[id] {
			t.Errorf("state has %s, not present", id)
		}
	}
	// Events carry their JSON, shared by every subscriber.
	a.Leave(func() feeds.FeedRef { kp, _ := feeds.KeyPairFromSeed(fmt.Appendf(nil, "%032d", 0)); return kp.ID }(), ep)
	evs, js := sub.TakeJSON()
	if len(evs) != 1 || len(js) != 1 || string(js[0]) != string(evs[0].JSON()) {
		t.Fatalf("events %v, JSON %q", evs, js)
	}
}
