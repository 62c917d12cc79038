package sbot_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/plugins/status"
	"github.com/cask-ssb/cask/sbot"
)

func mustID(t *testing.T, s string) feeds.FeedRef {
	t.Helper()
	id, err := feeds.ParseFeedRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRoomCLI: `sbot room join`, `room list`, `room leave` through the
// CLI, persisted in REPO/rooms.json, and bad input refused.
func TestRoomCLI(t *testing.T) {
	r := sbot.StartTestRoom(t, "open")
	repo := t.TempDir()
	d := startDaemon(t, repo, "--listen", "off")
	out := run(t, "", "room", "join", "--repo", repo, r.Address())
	var joined status.Room
	if err := json.Unmarshal(out, &joined); err != nil {
		t.Fatalf("room join output %q: %v", out, err)
	}
	if joined.ID != r.ID().String() || joined.Source != "joined" {
		t.Fatalf("room join = %+v", joined)
	}
	if data, err := os.ReadFile(filepath.Join(repo, "rooms.json")); err != nil || !strings.Contains(string(data), r.Address()) {
		t.Fatalf("rooms.json = %s, %v", data, err)
	}
	eventually(t, "the room to list us as an attendant", func() bool {
		var rooms []status.Room
		if err := json.Unmarshal(run(t, "", "room", "list", "--repo", repo), &rooms); err != nil {
			t.Fatal(err)
		}
		return len(rooms) == 1 && rooms[0].State == "attendant" && rooms[0].Version == "2" &&
			len(rooms[0].Attendants) == 1 && rooms[0].Attendants[0] == d.id
	})
	// A restart rejoins the room from rooms.json.
	d.stop(t)
	d = startDaemon(t, repo, "--listen", "off")
	eventually(t, "the room to be rejoined after a restart", func() bool {
		var rooms []status.Room
		if err := json.Unmarshal(run(t, "", "room", "list", "--repo", repo), &rooms); err != nil {
			t.Fatal(err)
		}
		return len(rooms) == 1 && rooms[0].State == "attendant"
	})
	// Aliases: members only (a stranger is refused), then register, list,
	// revoke.
	if _, code, _ := runCode(t, "", "room", "alias", "register", "--repo", repo, "--room", r.ID().String(), "alice"); code == 0 {
		t.Error("a non-member registered an alias")
	}
	if err := r.DB().AddMember(context.Background(), mustID(t, d.id), "member"); err != nil {
		t.Fatal(err)
	}
	out = run(t, "", "room", "alias", "register", "--repo", repo, "--room", r.Address(), "alice")
	if !strings.Contains(string(out), `"url"`) || !strings.Contains(string(out), "alice") {
		t.Fatalf("alias register: %s", out)
	}
	aliases, err := r.DB().Aliases(context.Background(), nil)
	if err != nil || len(aliases) != 1 || aliases[0].Name != "alice" || aliases[0].Owner.String() != d.id {
		t.Fatalf("room's aliases = %+v, %v", aliases, err)
	}
	if out := run(t, "", "room", "alias", "list", "--repo", repo, "--room", r.ID().String()); !strings.Contains(string(out), `"aliases":["alice"]`) {
		t.Fatalf("alias list: %s", out)
	}
	run(t, "", "room", "alias", "revoke", "--repo", repo, "--room", r.ID().String(), "alice")
	if out := run(t, "", "room", "alias", "list", "--repo", repo, "--room", r.ID().String()); !strings.Contains(string(out), `"aliases":[]`) {
		t.Fatalf("alias list after revoke: %s", out)
	}
	if _, code, _ := runCode(t, "", "room", "alias", "list", "--repo", repo); code != 2 {
		t.Errorf("alias list without --room: exit %d, want 2", code)
	}

	out = run(t, "", "room", "leave", "--repo", repo, r.ID().String())
	if !strings.Contains(string(out), `"left":true`) {
		t.Fatalf("room leave: %s", out)
	}
	if data, err := os.ReadFile(filepath.Join(repo, "rooms.json")); err != nil || strings.Contains(string(data), r.Address()) {
		t.Fatalf("rooms.json after leave = %s, %v", data, err)
	}
	eventually(t, "the room connection to end", func() bool {
		for _, p := range peersOf(t, repo).Connected {
			if p.ID == r.ID().String() {
				return false
			}
		}
		return true
	})
	for _, args := range [][]string{
		{"room", "join", "--repo", repo, "nonsense"},
		{"room", "join", "--repo", repo, "tunnel:" + r.ID().String() + ":" + d.id + "~shs:" + strings.TrimSuffix(strings.TrimPrefix(d.id, "@"), ".ed25519")},
		{"room", "leave", "--repo", repo, "@nope"},
	} {
		if _, code, _ := runCode(t, "", args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if _, code, _ := runCode(t, "", "serve", "--repo", t.TempDir(), "--tunnel-accept", "friends"); code != 2 {
		t.Errorf("serve --tunnel-accept friends: exit %d, want 2", code)
	}
}
