package room

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/room/roomdb"
	"github.com/cask-ssb/cask/room/roomdb/pgtest"
)

// TestSharedPostgres: three room nodes with one identity share one
// PostgreSQL database (no mesh: this is the storage part of a room on
// several machines). An invite made on node 1 is claimed over HTTP on
// node 3 and the new member is a member on node 2; an alias registered
// on node 2 resolves on node 1; the mode set on node 3 is the mode of
// node 1; a key denied on node 1 is refused a session on node 2.
func TestSharedPostgres(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDatabase(t)
	var key string
	nodes := make([]*Server, 3)
	bases := make([]string, 3)
	for i := range nodes {
		nodes[i], bases[i] = startWebRoom(t, "community", func(c *Config) {
			c.DB = db
			if key != "" {
				c.Key = key
			}
		})
		if key == "" {
			key = filepath.Join(nodes[0].cfg.Repo, "secret")
		}
	}
	if nodes[2].ID() != nodes[0].ID() {
		t.Fatal("the nodes do not share the room's identity")
	}
	for i, n := range nodes {
		if b := n.DB().Backend(); b != "postgres" {
			t.Fatalf("node %d backend %q", i+1, b)
		}
	}

	code, _, err := nodes[0].DB().CreateInvite(ctx, nil, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	alice := newKey(t)
	c := browser(t)
	resp, body := post(t, c, bases[2]+"/invite/consume", "application/json", `{"id":"`+alice.ID.String()+`","invite":"`+code+`"}`)
	if m := jsonObject(t, body); resp.StatusCode != 200 || m["status"] != "successful" {
		t.Fatalf("claim on node 3 of node 1's invite: %d %s", resp.StatusCode, body)
	}
	if _, ok, err := nodes[1].DB().Role(ctx, alice.ID); !ok || err != nil {
		t.Fatalf("alice on node 2: member %v, %v", ok, err)
	}
	resp, body = post(t, c, bases[1]+"/invite/consume", "application/json", `{"id":"`+newKey(t).ID.String()+`","invite":"`+code+`"}`)
	if resp.StatusCode != 404 {
		t.Fatalf("second claim, on node 2: %d %s", resp.StatusCode, body)
	}

	ac := mustDial(t, nodes[1], alice)
	var aliasURL string
	if err := ac.ep.Async(ctx, &aliasURL, muxrpc.Method{"room", "registerAlias"}, "alice", roomdb.SignAlias(alice, nodes[1].ID(), "alice")); err != nil {
		t.Fatalf("register alias on node 2: %v", err)
	}
	resp, body = get(t, c, bases[0]+"/alias/alice?encoding=json")
	if m := jsonObject(t, body); resp.StatusCode != 200 || m["userId"] != alice.ID.String() {
		t.Fatalf("alias on node 1: %d %s", resp.StatusCode, body)
	}
	if err := roomdb.VerifyAlias(nodes[0].ID(), alice.ID, "alice", jsonObject(t, body)["signature"].(string)); err != nil {
		t.Fatalf("alias signature served by node 1: %v", err)
	}

	if err := nodes[2].DB().SetMode(ctx, roomdb.ModeRestricted); err != nil {
		t.Fatal(err)
	}
	if m, err := nodes[0].DB().Mode(ctx); m != roomdb.ModeRestricted || err != nil {
		t.Fatalf("mode on node 1 = %s, %v", m, err)
	}
	// Restricted, shared: a non-member gets no session on any node,
	// alice (a member through node 3) gets one on node 1.
	var who struct{ ID string }
	if err := mustDial(t, nodes[0], alice).ep.Async(ctx, &who, muxrpc.Method{"whoami"}); err != nil {
		t.Fatalf("member on node 1: %v", err)
	}
	stranger := newKey(t)
	if err := mustDial(t, nodes[1], stranger).ep.Async(ctx, &who, muxrpc.Method{"whoami"}); err == nil {
		t.Fatal("a non-member got a session on node 2 in restricted mode")
	}
	if err := nodes[0].DB().Deny(ctx, alice.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if err := mustDial(t, nodes[1], alice).ep.Async(ctx, &who, muxrpc.Method{"whoami"}); err == nil {
		t.Fatal("a key denied on node 1 got a session on node 2")
	}
}
