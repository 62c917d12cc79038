package main

import (
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/sbot"
)

// TestQueryCmds runs the query subcommands against a daemon, then reindex
// on the stopped repo, and checks their output.
func TestQueryCmds(t *testing.T) {
	repo := t.TempDir()
	node, stop := testNode(t, repo, "off")
	self := node.ID().String()
	friend, err := feeds.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := func(args ...string) string {
		t.Helper()
		r := sbotRun(t, "", append(append([]string{"publish"}, args...), "--repo", repo)...)
		if r.code != 0 {
			t.Fatalf("publish %v: %d %s", args, r.code, r.stderr)
		}
		var rec struct{ Key string }
		if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil {
			t.Fatal(err)
		}
		return rec.Key
	}
	root := pub("--text", "root post")
	reply := pub(`{"type":"post","text":"a reply","root":"` + root + `"}`)
	pub(`{"type":"about","about":"` + self + `","name":"cask"}`)
	secret := pub("--recps", friend.ID.String(), `{"type":"post","text":"psst"}`)

	tests := []cliCase{
		{name: "type", args: []string{"type", "post", "--reverse", "--limit", "1"}, stdout: secret},
		{name: "type other", args: []string{"type", "about"}, stdout: `"name":"cask"`},
		{name: "links", args: []string{"links", "--dest", root, "--rel", "root"}, stdout: `"key":"` + reply + `"`},
		{name: "links needs an end", args: []string{"links"}, code: 2, stderr: "give --source or --dest"},
		{name: "about", args: []string{"about", self}, stdout: `"name":"cask"`},
		{name: "thread", args: []string{"thread", root}, stdout: reply},
		{name: "thread bad id", args: []string{"thread", "nope"}, code: 2, stderr: "not a message id"},
		{name: "query", args: []string{"query", `[{"$filter":{"value":{"content":{"type":"post"}}}},{"$map":["value","content","text"]}]`}, stdout: "\"a reply\"\n\"psst\"\n"},
		{name: "query explain", args: []string{"query", "--explain", `{"$filter":{"value":{"content":{"text":{"$prefix":"a"}}}}}`}, stdout: `"index":"log","scan":true`},
		{name: "query bad JSON", args: []string{"query", `[{`}, code: 2, stderr: "not valid JSON"},
		{name: "query bad stage", args: []string{"query", `[{"$reduce":{}}]`}, code: 1, stderr: "$reduce is not supported"},
		{name: "private", args: []string{"private"}, stdout: `"text":"psst"`},
		{name: "publish bad recps", args: []string{"publish", "--recps", "@nope", "--text", "x"}, code: 2, stderr: "not a feed id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkCase(t, tc, sbotRun(t, "", append(tc.args, "--repo", repo)...))
		})
	}
	if r := sbotRun(t, "", "reindex", "--repo", repo); r.code != 1 || !strings.Contains(r.stderr, "stop the daemon first") {
		t.Errorf("reindex with a daemon running: %d %q", r.code, r.stderr)
	}
	stop()
	r := sbotRun(t, "", "reindex", "--repo", repo)
	var sum reindexSummary
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &sum) != nil || sum.Messages != 4 || len(sum.Indexes) != len(sbot.IndexNames()) {
		t.Fatalf("reindex: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := sbotRun(t, "", "reindex", "links", "bytype", "--repo", repo); r.code != 0 || !strings.Contains(r.stdout, `"indexes":["links","bytype"]`) {
		t.Fatalf("reindex links bytype: %d %q %q", r.code, r.stdout, r.stderr)
	}
	checkCase(t, cliCase{code: 2, stderr: `no index named "nope"`}, sbotRun(t, "", "reindex", "nope", "--repo", repo))
	// the rebuilt indexes answer as before
	testNode(t, repo, "off")
	checkCase(t, cliCase{stdout: `"key":"` + reply + `"`}, sbotRun(t, "", "links", "--dest", root, "--repo", repo))
	checkCase(t, cliCase{stdout: `"text":"psst"`}, sbotRun(t, "", "private", "--repo", repo))
}
