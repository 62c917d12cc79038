package sbot_test

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/cask-ssb/cask/internal/interop"
)

// fixtureIDs picks, from the fixture, the ids the compared queries ask
// about: the first author, the message most replied to, the feed most
// contacted, and the feeds most described by about messages.
func fixtureIDs(t *testing.T, path string) (author, root, contacted string, described []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<20)
	roots, contacts, abouts := map[string]int{}, map[string]int{}, map[string]int{}
	for sc.Scan() {
		var r struct {
			Value struct {
				Author  string
				Content json.RawMessage
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if author == "" {
			author = r.Value.Author
		}
		var c struct {
			Type, Root, Contact string
			About               any
		}
		if json.Unmarshal(r.Value.Content, &c) != nil {
			continue
		}
		if c.Root != "" {
			roots[c.Root]++
		}
		if c.Type == "contact" && c.Contact != "" {
			contacts[c.Contact]++
		}
		if s, ok := c.About.(string); ok && c.Type == "about" {
			abouts[s]++
		}
	}
	top := func(m map[string]int, n int) []string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if m[keys[i]] != m[keys[j]] {
				return m[keys[i]] > m[keys[j]]
			}
			return keys[i] < keys[j]
		})
		return keys[:min(n, len(keys))]
	}
	return author, top(roots, 1)[0], top(contacts, 1)[0], top(abouts, 4)
}

type refQuery struct {
	Name   string `json:"name"`
	Method string `json:"method"`
	Type   string `json:"type"`
	Args   []any  `json:"args"`
	// how to compare: "ordered" (default), "set" (sorted first)
	compare string
}

// normalize drops what legitimately differs between two stores holding the
// same messages: the receive timestamp of {key,value,timestamp} records.
func normalize(v any) any {
	switch t := v.(type) {
	case []any:
		for i := range t {
			t[i] = normalize(t[i])
		}
	case map[string]any:
		if _, ok := t["key"]; ok {
			if _, ok := t["value"]; ok {
				delete(t, "timestamp")
			}
		}
	}
	return v
}

// TestInteropQueryCompare imports the 5,000-message fixture into our daemon
// and into the JS reference stack for these methods (ssb-db@20 with
// ssb-backlinks, ssb-query and ssb-about, pinned in interop/js), runs the
// same calls through JS against both (ssb-client over muxrpc for ours) and
// compares the answers, order included.
func TestInteropQueryCompare(t *testing.T) {
	kit := interop.Kit(t)
	fixture, err := filepath.Abs("../testdata/fixtures/messages.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	author, root, contacted, described := fixtureIDs(t, fixture)
	queries := []refQuery{
		{Name: "messagesByType post", Method: "messagesByType", Type: "source", Args: []any{map[string]any{"type": "post", "limit": 200}}},
		{Name: "messagesByType contact reverse", Method: "messagesByType", Type: "source", Args: []any{map[string]any{"type": "contact", "reverse": true, "limit": 100}}},
		{Name: "messagesByType vote keys", Method: "messagesByType", Type: "source", Args: []any{map[string]any{"type": "vote", "values": false}}},
		{Name: "messagesByType about", Method: "messagesByType", Type: "source", Args: []any{map[string]any{"type": "about"}}},
		{Name: "links root", Method: "links", Type: "source", Args: []any{map[string]any{"dest": root, "rel": "root"}}},
		{Name: "links to feed", Method: "links", Type: "source", Args: []any{map[string]any{"dest": contacted}}},
		{Name: "links from feed", Method: "links", Type: "source", Args: []any{map[string]any{"source": author}}},
		{Name: "links from feed rel contact values", Method: "links", Type: "source", Args: []any{map[string]any{"source": author, "rel": "contact", "values": true}}},
		{Name: "links to root no meta", Method: "links", Type: "source", Args: []any{map[string]any{"dest": root, "meta": false, "values": true}}},
		{Name: "query type map", Method: "query.read", Type: "source", Args: []any{map[string]any{"query": []any{
			map[string]any{"$filter": map[string]any{"value": map[string]any{"content": map[string]any{"type": "post"}}}},
			map[string]any{"$map": []any{"value", "content", "text"}}}, "limit": 100}}},
		{Name: "query author", Method: "query.read", Type: "source", Args: []any{map[string]any{"query": []any{
			map[string]any{"$filter": map[string]any{"value": map[string]any{"author": author}}}}}}},
		{Name: "query scan", Method: "query.read", Type: "source", Args: []any{map[string]any{"query": []any{
			map[string]any{"$filter": map[string]any{"value": map[string]any{"content": map[string]any{"contact": contacted}}}},
			map[string]any{"$map": map[string]any{"author": []any{"value", "author"}, "following": []any{"value", "content", "following"}}}}}}},
		{Name: "latest", Method: "latest", Type: "source", Args: []any{}, compare: "set"},
		{Name: "createFeedStream", Method: "createFeedStream", Type: "source", Args: []any{map[string]any{"limit": 300}}},
	}
	// friends (ssb-friends 5 on ssb-db: the follow graph of the public
	// contact messages). friends.hops is not compared: ssb-friends 5 also
	// lists unfollowed (-2) and blocked (-1) feeds in it, and a follow
	// after a block unblocks there (each contact message sets the edge).
	for _, pair := range [][2]string{{author, contacted}, {contacted, author}, {author, described[0]}, {described[1], contacted}} {
		for _, m := range []string{"isFollowing", "isBlocking"} {
			queries = append(queries, refQuery{Name: fmt.Sprintf("friends.%s %.8s→%.8s", m, pair[0], pair[1]), Method: "friends." + m, Type: "async", Args: []any{map[string]any{"source": pair[0], "dest": pair[1]}}})
		}
	}
	for i, d := range described {
		for _, m := range []string{"socialValue", "latestValue"} {
			for _, k := range []string{"name", "description", "image"} {
				queries = append(queries, refQuery{Name: fmt.Sprintf("about.%s %s of described[%d]", m, k, i), Method: "about." + m, Type: "async", Args: []any{map[string]any{"key": k, "dest": d}}})
			}
		}
	}
	qfile := filepath.Join(t.TempDir(), "queries.json")
	b, _ := json.Marshal(queries)
	if err := os.WriteFile(qfile, b, 0o600); err != nil {
		t.Fatal(err)
	}

	// ours: import offline, then serve
	repo := t.TempDir()
	run(t, "", "import", "--repo", repo, fixture)
	d := startDaemon(t, repo)
	oursOut, err := interop.Node(kit, 3*time.Minute, "queryref.js", "--queries", qfile, "--remote", d.tcp, "--keys", filepath.Join(repo, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	d.stop(t)
	refOut, err := interop.Node(kit, 5*time.Minute, "queryref.js", "--queries", qfile, "--fixture", fixture, "--path", t.TempDir(), "--timeout", "290000")
	if err != nil {
		t.Fatal(err)
	}
	var ours, ref map[string]any
	if err := json.Unmarshal(oursOut, &ours); err != nil {
		t.Fatalf("our answers: %v: %.300s", err, oursOut)
	}
	if err := json.Unmarshal(refOut, &ref); err != nil {
		t.Fatalf("reference answers: %v: %.300s", err, refOut)
	}
	for _, q := range queries {
		t.Run(q.Name, func(t *testing.T) {
			o, r := normalize(ours[q.Name]), normalize(ref[q.Name])
			if m, ok := r.(map[string]any); ok && m["error"] != nil {
				t.Fatalf("the reference failed: %v", m["error"])
			}
			if q.compare == "set" {
				o, r = sortedJSON(o), sortedJSON(r)
			}
			if !reflect.DeepEqual(o, r) {
				t.Errorf("answers differ:\nours %s\nref  %s", firstDiff(o, r), firstDiff(r, o))
			}
			if items, ok := r.([]any); ok && len(items) == 0 {
				t.Errorf("the reference answered nothing: the query does not exercise the method")
			}
		})
	}
}

func sortedJSON(v any) any {
	items, ok := v.([]any)
	if !ok {
		return v
	}
	s := make([]string, len(items))
	for i, it := range items {
		b, _ := json.Marshal(it)
		s[i] = string(b)
	}
	sort.Strings(s)
	out := make([]any, len(s))
	for i := range s {
		out[i] = s[i]
	}
	return out
}

// firstDiff shows a's length and its first item that differs from b.
func firstDiff(a, b any) string {
	ai, aok := a.([]any)
	bi, bok := b.([]any)
	if !aok || !bok {
		s, _ := json.Marshal(a)
		return fmt.Sprintf("%.600s", s)
	}
	for i := range ai {
		if i >= len(bi) || !reflect.DeepEqual(ai[i], bi[i]) {
			s, _ := json.Marshal(ai[i])
			return fmt.Sprintf("%d items; item %d: %.600s", len(ai), i, s)
		}
	}
	return fmt.Sprintf("%d items (a prefix of the other)", len(ai))
}
