package contacts

import (
	"fmt"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

func ref(b byte) feeds.FeedRef { return feeds.FeedRef{b} }

func contact(to feeds.FeedRef, fields string) []byte {
	return []byte(fmt.Sprintf(`{"type":"contact","contact":%q%s}`, to.String(), fields))
}

func TestApply(t *testing.T) {
	a, b := ref(1), ref(2)
	tests := []struct {
		name    string
		msgs    [][]byte
		applied int
		want    Edge
	}{
		{"follow", [][]byte{contact(b, `,"following":true`)}, 1, Edge{Following: true}},
		{"unfollow", [][]byte{contact(b, `,"following":true`), contact(b, `,"following":false`)}, 2, Edge{}},
		{"block stops following", [][]byte{contact(b, `,"following":true`), contact(b, `,"blocking":true`)}, 2, Edge{Blocking: true}},
		{"unblock", [][]byte{contact(b, `,"blocking":true`), contact(b, `,"blocking":false`)}, 2, Edge{}},
		{"pub flag and extra fields", [][]byte{contact(b, `,"following":true,"pub":true,"autofollow":true`)}, 1, Edge{Following: true}},
		{"not a contact", [][]byte{[]byte(`{"type":"post","contact":"x"}`)}, 0, Edge{}},
		{"no fields", [][]byte{contact(b, ``)}, 0, Edge{}},
		{"bad target", [][]byte{[]byte(`{"type":"contact","contact":"@nope","following":true}`)}, 0, Edge{}},
		{"encrypted", [][]byte{[]byte(`"abc.box"`)}, 0, Edge{}},
		{"garbage", [][]byte{[]byte(`{"type":"contact","following":tru`)}, 0, Edge{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := New()
			n := 0
			for _, m := range tc.msgs {
				if g.Apply(a, m) {
					n++
				}
			}
			if n != tc.applied {
				t.Fatalf("applied %d, want %d", n, tc.applied)
			}
			if got := g.Edge(a, b); got != tc.want {
				t.Fatalf("edge %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestHops(t *testing.T) {
	me, a, b, c, d, x := ref(1), ref(2), ref(3), ref(4), ref(5), ref(6)
	g := New()
	g.Apply(me, contact(a, `,"following":true`))
	g.Apply(a, contact(b, `,"following":true`))
	g.Apply(b, contact(c, `,"following":true`))
	g.Apply(a, contact(x, `,"following":true`))
	g.Apply(me, contact(x, `,"blocking":true`))
	g.Apply(c, contact(d, `,"following":true`))
	tests := []struct {
		max  int
		want map[feeds.FeedRef]int
	}{
		{0, map[feeds.FeedRef]int{me: 0}},
		{1, map[feeds.FeedRef]int{me: 0, a: 1}},
		{2, map[feeds.FeedRef]int{me: 0, a: 1, b: 2}},
		{3, map[feeds.FeedRef]int{me: 0, a: 1, b: 2, c: 3}},
	}
	for _, tc := range tests {
		got := g.Hops(me, tc.max)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("hops %d = %v, want %v", tc.max, got, tc.want)
		}
	}
	// The cache follows changes.
	g.Apply(me, contact(a, `,"following":false`))
	if got := g.Hops(me, 3); len(got) != 1 {
		t.Fatalf("after unfollow: %v", got)
	}
}

func TestBuild(t *testing.T) {
	me, a := ref(1), ref(2)
	val := func(author feeds.FeedRef, content []byte) []byte {
		return []byte(fmt.Sprintf(`{"previous":null,"sequence":1,"author":%q,"timestamp":1,"hash":"sha256","content":%s,"signature":"x"}`, author.String(), content))
	}
	values := [][]byte{
		val(me, []byte(`{"type":"post","text":"hi"}`)),
		val(me, contact(a, `,"following":true`)),
		val(a, []byte(`"secret.box"`)),
	}
	g, n, err := Build(func(yield func([]byte, error) bool) {
		for _, v := range values {
			if !yield(v, nil) {
				return
			}
		}
	})
	if err != nil || n != 1 || !g.Follows(me, a) {
		t.Fatalf("Build: %v, %d contacts, follows=%v", err, n, g.Follows(me, a))
	}
}

// FuzzApply: contact messages come from other people's feeds.
func FuzzApply(f *testing.F) {
	b := ref(2)
	for _, s := range [][]byte{contact(b, `,"following":true`), contact(b, `,"blocking":true,"following":true`), []byte(`{"type":"contact"}`), []byte(`"x.box"`), []byte(`{"type":"contact","contact":null,"following":1}`)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		g := New()
		a := ref(1)
		applied := g.Apply(a, content)
		hops := g.Hops(a, 3)
		if hops[a] != 0 || len(hops) > 2 {
			t.Fatalf("%q: hops %v", content, hops)
		}
		if !applied && len(hops) != 1 {
			t.Fatalf("%q: not applied but hops %v", content, hops)
		}
		for tgt, e := range g.edges[a] {
			if e.Blocking && e.Following {
				t.Fatalf("%q: %v both blocked and followed", content, tgt)
			}
		}
		g.ApplyValue(content) // must not panic either
	})
}
