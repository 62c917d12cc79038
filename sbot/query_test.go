package sbot

import (
	"context"
	"encoding/json"
	"iter"
	"slices"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/privatebox"
	"github.com/cask-ssb/cask/sbot/client"
)

type kvtRec struct {
	Key   string `json:"key"`
	Value struct {
		Author    string          `json:"author"`
		Timestamp float64         `json:"timestamp"`
		Content   json.RawMessage `json:"content"`
	} `json:"value"`
	Timestamp float64 `json:"timestamp"`
}

func collectStream(t *testing.T, s iter.Seq2[json.RawMessage, error]) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	for v, err := range s {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func keysOf(t *testing.T, items []json.RawMessage) []string {
	t.Helper()
	var ks []string
	for _, it := range items {
		var r kvtRec
		if err := json.Unmarshal(it, &r); err != nil {
			t.Fatalf("%s: %v", it, err)
		}
		ks = append(ks, r.Key)
	}
	return ks
}

func publishKey(t *testing.T, c *client.Client, content string) string {
	t.Helper()
	out, err := c.Publish(context.Background(), json.RawMessage(content))
	if err != nil {
		t.Fatalf("publish %s: %v", content, err)
	}
	var r kvtRec
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	return r.Key
}

// TestQueryMethods publishes a small social fixture and checks every
// query method's answer against what was published.
func TestQueryMethods(t *testing.T) {
	ctx := context.Background()
	n, c := startNode(t)
	me := n.ID().String()
	other, _ := feedOf(t, 0)
	ot := other.ID.String()

	// another feed: two posts and an about of itself, and about us
	var state *classic.FeedState
	var theirs []*classic.Message
	for i, content := range []string{
		`{"type":"post","text":"their first"}`,
		`{"type":"about","about":"` + ot + `","name":"them"}`,
		`{"type":"about","about":"` + me + `","name":"you-by-them"}`,
	} {
		m, err := classic.Create(other.Private, state, float64(1600000000000+i), classic.RawJSON(content), nil)
		if err != nil {
			t.Fatal(err)
		}
		s := classic.StateAfter(m)
		state = &s
		theirs = append(theirs, m)
	}
	if res := n.writer.Add(ctx, theirs); res.Err != nil {
		t.Fatal(res.Err)
	}
	root := publishKey(t, c, `{"type":"post","text":"root"}`)
	reply1 := publishKey(t, c, `{"type":"post","text":"reply 1","root":"`+root+`","branch":"`+root+`"}`)
	publishKey(t, c, `{"type":"vote","vote":{"link":"`+root+`","value":1}}`)
	reply2 := publishKey(t, c, `{"type":"post","text":"reply 2","root":"`+root+`","branch":["`+reply1+`"],"mentions":["`+ot+`"]}`)
	publishKey(t, c, `{"type":"about","about":"`+me+`","name":"me-by-me"}`)
	publishKey(t, c, `{"type":"about","about":"`+ot+`","name":"them-by-me","description":"a peer"}`)
	publishKey(t, c, `{"type":"contact","contact":"`+ot+`","following":true}`)

	t.Run("messagesByType", func(t *testing.T) {
		got := keysOf(t, collectStream(t, c.MessagesByType(ctx, map[string]any{"type": "post"})))
		want := []string{theirs[0].Key.String(), root, reply1, reply2}
		if !slices.Equal(got, want) {
			t.Fatalf("posts %v, want %v", got, want)
		}
		got = keysOf(t, collectStream(t, c.MessagesByType(ctx, map[string]any{"type": "post", "reverse": true, "limit": 2})))
		if want := []string{reply2, reply1}; !slices.Equal(got, want) {
			t.Fatalf("reverse limit 2: %v, want %v", got, want)
		}
		ks := collectStream(t, c.MessagesByType(ctx, map[string]any{"type": "vote", "values": false}))
		if len(ks) != 1 || string(ks[0])[0] != '"' {
			t.Fatalf("keys only: %s", ks)
		}
	})
	t.Run("links", func(t *testing.T) {
		items := collectStream(t, c.Links(ctx, map[string]any{"dest": root, "rel": "root"}))
		var got []string
		for _, it := range items {
			var l struct{ Source, Rel, Dest, Key string }
			if err := json.Unmarshal(it, &l); err != nil {
				t.Fatal(err)
			}
			if l.Source != me || l.Rel != "root" || l.Dest != root {
				t.Fatalf("link %s", it)
			}
			got = append(got, l.Key)
		}
		if !slices.Equal(got, []string{reply1, reply2}) {
			t.Fatalf("replies %v", got)
		}
		all := collectStream(t, c.Links(ctx, map[string]any{"dest": root}))
		if len(all) != 4 { // root x2, branch of reply1, vote
			t.Fatalf("links to root: %d: %s", len(all), all)
		}
		fwd := collectStream(t, c.Links(ctx, map[string]any{"source": me, "dest": "@"}))
		if len(fwd) != 4 { // mentions, two abouts, contact
			t.Fatalf("links from us to feeds: %d: %s", len(fwd), fwd)
		}
	})
	t.Run("about", func(t *testing.T) {
		for _, tt := range []struct {
			method, dest, want string
		}{
			{"social", me, `"me-by-me"`},
			{"social", ot, `"them-by-me"`}, // our own value first
			{"latest", me, `"me-by-me"`},
		} {
			var v json.RawMessage
			var err error
			if tt.method == "social" {
				v, err = c.AboutSocialValue(ctx, "name", tt.dest)
			} else {
				v, err = c.AboutLatestValue(ctx, "name", tt.dest)
			}
			if err != nil || string(v) != tt.want {
				t.Errorf("%s name of %s: %s, %v; want %s", tt.method, tt.dest, v, err, tt.want)
			}
		}
		v, err := c.AboutLatestValues(ctx, []string{"name", "description", "image"}, ot)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(v, &m)
		if m["description"] != "a peer" || m["image"] != nil || len(m) != 3 {
			t.Fatalf("latestValues %s", v)
		}
	})
	t.Run("query", func(t *testing.T) {
		q := map[string]any{"query": []any{
			map[string]any{"$filter": map[string]any{"value": map[string]any{"content": map[string]any{"type": "post", "text": map[string]any{"$prefix": "reply"}}}}},
			map[string]any{"$map": []string{"value", "content", "text"}},
		}}
		got := collectStream(t, c.Query(ctx, q))
		if len(got) != 2 || string(got[0]) != `"reply 1"` || string(got[1]) != `"reply 2"` {
			t.Fatalf("query: %s", got)
		}
		ex, err := c.Explain(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Index string
			Scan  bool
		}
		_ = json.Unmarshal(ex, &e)
		if e.Index != "type" || e.Scan {
			t.Fatalf("explain %s", ex)
		}
		q = map[string]any{"query": []any{map[string]any{"$filter": map[string]any{"value": map[string]any{"author": ot}}}}}
		if got := collectStream(t, c.Query(ctx, q)); len(got) != 3 {
			t.Fatalf("author query: %d", len(got))
		}
		ex, _ = c.Explain(ctx, q)
		if _ = json.Unmarshal(ex, &e); e.Index != "author" {
			t.Fatalf("explain %s", ex)
		}
		q = map[string]any{"query": []any{map[string]any{"$filter": map[string]any{"value": map[string]any{"content": map[string]any{"name": map[string]any{"$in": []string{"them", "me-by-me"}}}}}}}}
		if got := collectStream(t, c.Query(ctx, q)); len(got) != 2 {
			t.Fatalf("$in scan: %d", len(got))
		}
		ex, _ = c.Explain(ctx, q)
		if _ = json.Unmarshal(ex, &e); e.Index != "log" || !e.Scan {
			t.Fatalf("explain %s", ex)
		}
		if _, err := c.Explain(ctx, map[string]any{"query": []any{map[string]any{"$reduce": map[string]any{}}}}); err == nil {
			t.Fatal("$reduce accepted")
		}
	})
	t.Run("thread", func(t *testing.T) {
		v, err := c.Thread(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		var th struct {
			Messages []json.RawMessage
			Full     bool
		}
		if err := json.Unmarshal(v, &th); err != nil {
			t.Fatal(err)
		}
		if got := keysOf(t, th.Messages); !th.Full || !slices.Equal(got, []string{root, reply1, reply2}) {
			t.Fatalf("thread %v full=%v", got, th.Full)
		}
	})
	t.Run("feedstream", func(t *testing.T) {
		items := collectStream(t, c.FeedStream(ctx, nil))
		var prev float64
		for _, it := range items {
			var r kvtRec
			_ = json.Unmarshal(it, &r)
			if r.Value.Timestamp < prev {
				t.Fatalf("createFeedStream out of claimed-timestamp order at %s", r.Key)
			}
			prev = r.Value.Timestamp
		}
		if len(items) != 10 {
			t.Fatalf("createFeedStream: %d items", len(items))
		}
		lat := collectStream(t, c.Latest(ctx))
		if len(lat) != 2 {
			t.Fatalf("latest: %s", lat)
		}
	})
	t.Run("friends.get", func(t *testing.T) {
		v, err := c.FriendsGet(ctx, map[string]any{"source": me, "dest": ot})
		if err != nil || string(v) != "1" {
			t.Fatalf("friends.get: %s %v", v, err)
		}
	})
}

// TestPrivateMessages: a private message we publish is read back
// decrypted by us, unboxed, indexed by its cleartext type, and opaque to
// the message's stored form; one for another feed is not ours to read;
// the private index survives a restart.
func TestPrivateMessages(t *testing.T) {
	ctx := context.Background()
	repo := t.TempDir()
	n, c, stop := startNodeStop(t, repo)
	friend, _ := feedOf(t, 0)
	rec, err := c.PrivatePublish(ctx, map[string]any{"type": "secret-note", "text": "for friend"}, []string{friend.ID.String()})
	if err != nil {
		t.Fatal(err)
	}
	var r kvtRec
	_ = json.Unmarshal(rec, &r)
	var box string
	if err := json.Unmarshal(r.Value.Content, &box); err != nil || len(box) < 10 || box[len(box)-4:] != ".box" {
		t.Fatalf("stored content is not a box string: %s", r.Value.Content)
	}
	// a box for someone else, as a peer would send it
	stranger, _ := feedOf(t, 0)
	ct, err := sealFor(t, `{"type":"secret-note","text":"not for us"}`, stranger.ID)
	if err != nil {
		t.Fatal(err)
	}
	m, err := classic.Create(friend.Private, nil, 1600000000000, classic.RawJSON(ct), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res := n.writer.Add(ctx, []*classic.Message{m}); res.Err != nil {
		t.Fatal(res.Err)
	}
	check := func(c *client.Client) {
		t.Helper()
		items := collectStream(t, c.PrivateRead(ctx, nil))
		if len(items) != 1 {
			t.Fatalf("private.read: %d items: %s", len(items), items)
		}
		var pr struct {
			Key   string
			Value struct {
				Content struct {
					Type, Text string
					Recps      []string
				}
				Cyphertext string
				Private    bool
			}
		}
		if err := json.Unmarshal(items[0], &pr); err != nil {
			t.Fatal(err)
		}
		if pr.Key != r.Key || pr.Value.Content.Text != "for friend" || !pr.Value.Private || pr.Value.Cyphertext != box ||
			!slices.Contains(pr.Value.Content.Recps, n.ID().String()) || !slices.Contains(pr.Value.Content.Recps, friend.ID.String()) {
			t.Fatalf("private.read: %s", items[0])
		}
		if got := keysOf(t, collectStream(t, c.MessagesByType(ctx, map[string]any{"type": "secret-note"}))); !slices.Equal(got, []string{r.Key}) {
			t.Fatalf("by type: %v", got)
		}
		v, err := c.PrivateUnbox(ctx, box)
		if err != nil || !json.Valid(v) || string(v) == "null" {
			t.Fatalf("unbox: %s %v", v, err)
		}
		v, err = c.PrivateUnbox(ctx, json.RawMessage(m.Compact))
		if err != nil || string(v) != "null" {
			t.Fatalf("unbox of someone else's: %s %v", v, err)
		}
	}
	check(c)
	// restart on the same repo: the index is read, not rebuilt
	c.Close()
	stop()
	_, c2, _ := startNodeStop(t, repo)
	check(c2)
}

// startNodeStop is startNodeWith with a stop function (also run at cleanup).
func startNodeStop(t *testing.T, repo string) (*Node, *client.Client, func()) {
	t.Helper()
	cfg := Defaults(repo)
	cfg.Listen = "127.0.0.1:0"
	n, err := New(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	var stopped bool
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	t.Cleanup(stop)
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	c, err := client.DialRepo(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return n, c, stop
}

func sealPrivate(pt []byte, to feeds.FeedRef) (string, error) {
	ct, err := privatebox.Seal(pt, []feeds.FeedRef{to}, nil)
	if err != nil {
		return "", err
	}
	return privatebox.BoxContent(ct), nil
}

func sealFor(t *testing.T, content string, to feeds.FeedRef) (string, error) {
	t.Helper()
	b, err := sealPrivate([]byte(content), to)
	if err != nil {
		return "", err
	}
	s, _ := json.Marshal(b)
	return string(s), nil
}
