package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/cask-ssb/cask/sbot"
	"github.com/cask-ssb/cask/sbot/client"
)

// Query a daemon's indexes with the typed helpers: messages by type, a
// map-filter-reduce query, and an about value. (The example runs its own
// daemon on a temporary repo; a script dials REPO/socket with DialRepo.)
func Example() {
	repo, err := os.MkdirTemp("", "cask-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(repo)
	cfg := sbot.Defaults(repo)
	cfg.Listen = "off"
	node, err := sbot.New(sbot.Options{Config: cfg})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- node.Serve(ctx) }()
	defer func() { stop(); <-done }()
	<-node.Ready()

	c, err := client.DialRepo(ctx, repo)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	me := node.ID().String()
	for _, content := range []string{
		`{"type":"post","text":"hello"}`,
		`{"type":"about","about":"` + me + `","name":"alice"}`,
		`{"type":"post","text":"world"}`,
	} {
		if _, err := c.Publish(ctx, json.RawMessage(content)); err != nil {
			log.Fatal(err)
		}
	}

	// messagesByType: {key, value, timestamp} records, receive order.
	for rec, err := range c.MessagesByType(ctx, map[string]any{"type": "post"}) {
		if err != nil {
			log.Fatal(err)
		}
		var m struct {
			Value struct{ Content struct{ Text string } }
		}
		_ = json.Unmarshal(rec, &m)
		fmt.Println("post:", m.Value.Content.Text)
	}

	// query.read: filter, then map to the text.
	q := map[string]any{"query": []any{
		map[string]any{"$filter": map[string]any{"value": map[string]any{"content": map[string]any{"text": map[string]any{"$prefix": "w"}}}}},
		map[string]any{"$map": []string{"value", "content", "text"}},
	}}
	for v, err := range c.Query(ctx, q) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("query:", string(v))
	}

	// about.socialValue: the name we gave ourselves.
	name, err := c.AboutSocialValue(ctx, "name", me)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("name:", string(name))
	// Output:
	// post: hello
	// post: world
	// query: "world"
	// name: "alice"
}
