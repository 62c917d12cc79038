package pubs

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/store"
)

const pubKey = "@VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8=.ed25519"

func TestParseContent(t *testing.T) {
	tests := []struct {
		content string
		want    string // "" = not a pub announcement
	}{
		{`{"type":"pub","address":{"host":"one.butt.nz","port":8008,"key":"` + pubKey + `"}}`, "net:one.butt.nz:8008~shs:VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8="},
		{`{"type":"pub","address":{"host":"10.0.0.1","port":"8009","key":"` + pubKey + `"}}`, "net:10.0.0.1:8009~shs:VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8="},
		{`{"type":"pub","address":"net:one.butt.nz:8008~shs:VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8="}`, "net:one.butt.nz:8008~shs:VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8="},
		{`{"type":"pub","address":"one.butt.nz:8008:` + pubKey + `"}`, "net:one.butt.nz:8008~shs:VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8="},
		{`{"type":"pub","address":{"host":"one.butt.nz","port":0,"key":"` + pubKey + `"}}`, ""},
		{`{"type":"pub","address":{"host":"one.butt.nz","port":8008,"key":"@nope.ed25519"}}`, ""},
		{`{"type":"pub","address":{"host":"bad host","port":8008,"key":"` + pubKey + `"}}`, ""},
		{`{"type":"pub","address":"ws://one.butt.nz:80~shs:VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8="}`, ""},
		{`{"type":"pub"}`, ""},
		{`{"type":"post","address":{"host":"one.butt.nz","port":8008,"key":"` + pubKey + `"}}`, ""},
		{`"pub"`, ""},
	}
	for _, tc := range tests {
		a, ok := ParseContent([]byte(tc.content))
		got := ""
		if ok {
			got = a.String()
		}
		if got != tc.want {
			t.Errorf("ParseContent(%s) = %q, want %q", tc.content, got, tc.want)
		}
	}
}

func record(author feeds.FeedRef, seq int64, content string) store.Record {
	k := sha256.Sum256([]byte(fmt.Sprint(author, seq)))
	var key feeds.MessageRef
	copy(key[:], k[:])
	return store.Record{Key: key, Author: author, Sequence: seq,
		Value: []byte(`{"author":"` + author.String() + `","sequence":` + fmt.Sprint(seq) + `,"content":` + content + `}`)}
}

// TestIndexPersists: announcements staged in the append batch are seen at
// once and after reopening the store; other messages are ignored.
func TestIndexPersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	x := New()
	st, err := store.Open(dir, store.Options{Indexers: []store.Indexer{x}})
	if err != nil {
		t.Fatal(err)
	}
	var alice, bob feeds.FeedRef
	alice[0], bob[0] = 1, 2
	pub := `{"type":"pub","address":{"host":"one.butt.nz","port":8008,"key":"` + pubKey + `"}}`
	other := `{"type":"pub","address":{"host":"two.example.org","port":8008,"key":"` + pubKey + `"}}`
	recs := []store.Record{
		record(alice, 1, pub),
		record(alice, 2, `{"type":"post","text":"pub"}`),
		record(bob, 1, pub),
		record(bob, 2, other),
	}
	if _, err := st.Append(recs); err != nil {
		t.Fatal(err)
	}
	check := func(x *Index) {
		t.Helper()
		all := x.Addresses(nil)
		if len(all) != 2 {
			t.Fatalf("addresses %+v", all)
		}
		if all[0].Address.Host != "two.example.org" || len(all[0].By) != 1 || all[0].By[0] != bob {
			t.Fatalf("latest first: %+v", all[0])
		}
		if all[1].Address.Host != "one.butt.nz" || len(all[1].By) != 2 {
			t.Fatalf("announced by both: %+v", all[1])
		}
		onlyAlice := x.Addresses(func(a feeds.FeedRef) bool { return a == alice })
		if len(onlyAlice) != 1 || onlyAlice[0].Address.Host != "one.butt.nz" {
			t.Fatalf("alice's: %+v", onlyAlice)
		}
	}
	check(x)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	y := New()
	st, err = store.Open(dir, store.Options{Indexers: []store.Indexer{y}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	check(y)
}

func FuzzParseContent(f *testing.F) {
	f.Add(`{"type":"pub","address":{"host":"one.butt.nz","port":8008,"key":"` + pubKey + `"}}`)
	f.Add(`{"type":"pub","address":"net:one.butt.nz:8008~shs:VJM7w1W19ZsKmG2KnfaoKIM66BRoreEkzaVm/J//wl8="}`)
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := ParseContent([]byte(s))
		if !ok {
			return
		}
		back, err := feeds.ParseAddress(a.String())
		if err != nil || back.String() != a.String() {
			t.Fatalf("%s gave %q, which reads back as %v, %v", s, a, back, err)
		}
	})
}
