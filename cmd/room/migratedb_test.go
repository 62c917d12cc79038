package main

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/room/roomdb/pgtest"
)

// startServe runs `room serve` with args on a new repo until the test
// ends, and returns the repo once the room answers on its socket.
func startServe(t *testing.T, toml string, args ...string) string {
	t.Helper()
	repo := t.TempDir()
	if toml != "" {
		if err := os.WriteFile(filepath.Join(repo, "config.toml"), []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		root := newRootCmd()
		root.SetArgs(append([]string{"serve", "--repo", repo, "--listen", "127.0.0.1:0", "--http-listen", "off", "--debug-listen", "off", "--log-level", "warn"}, args...))
		done <- root.ExecuteContext(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("serve did not stop")
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := run(t, "status", "--repo", repo); err == nil {
			return repo
		}
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("room did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServePostgresAndMigrateDB: two room nodes share one PostgreSQL
// database (one given --db, the other db = ... in config.toml); a member
// added on one and an invite made on the other are seen by both. Then
// room migrate-db moves the room to SQLite and back to a new PostgreSQL
// database, refusing a target with members unless --force.
func TestServePostgresAndMigrateDB(t *testing.T) {
	url := pgtest.NewDatabase(t)
	n1 := startServe(t, "", "--db", url)
	n2 := startServe(t, "db = \""+url+"\"\n")
	kp, _ := feeds.GenerateKeyPair(rand.Reader)
	id := kp.ID.String()
	mustRun(t, nil, "admin", "members", "add", id, "--role", "admin", "--repo", n1)
	var members []struct{ ID, Role string }
	mustRun(t, &members, "admin", "members", "list", "--repo", n2)
	if len(members) != 1 || members[0].ID != id || members[0].Role != "admin" {
		t.Fatalf("members on node 2 = %+v", members)
	}
	var inv struct{ Code string }
	mustRun(t, &inv, "admin", "invites", "create", "--uses", "2", "--repo", n2)
	var invites []struct{ Uses int }
	mustRun(t, &invites, "admin", "invites", "list", "--repo", n1)
	if len(invites) != 1 || invites[0].Uses != 2 {
		t.Fatalf("invites on node 1 = %+v", invites)
	}

	lite := "sqlite:" + filepath.Join(t.TempDir(), "moved.sqlite")
	var counts struct{ Members, Invites, Config int }
	mustRun(t, &counts, "migrate-db", "--from", url, "--to", lite)
	if counts.Members != 1 || counts.Invites != 1 || counts.Config != 1 {
		t.Fatalf("counts = %+v", counts)
	}
	if _, err := run(t, "migrate-db", "--from", url, "--to", lite); err == nil || !strings.Contains(err.Error(), "already holds members") {
		t.Fatalf("second copy without --force: %v", err)
	}
	mustRun(t, &counts, "migrate-db", "--from", url, "--to", lite, "--force")
	url2 := pgtest.NewDatabase(t)
	mustRun(t, &counts, "migrate-db", "--from", lite, "--to", url2)
	if counts.Members != 1 || counts.Invites != 1 {
		t.Fatalf("counts back to PostgreSQL = %+v", counts)
	}
	// The moved room serves its members.
	n3 := startServe(t, "", "--db", url2)
	mustRun(t, &members, "admin", "members", "list", "--repo", n3)
	if len(members) != 1 || members[0].ID != id {
		t.Fatalf("members after the move = %+v", members)
	}
}

func TestMigrateDBUsage(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no --to", []string{"--from", "x.sqlite"}, "give both --from and --to"},
		{"same", []string{"--from", "a", "--to", "a"}, "the same database"},
		{"bad scheme", []string{"--from", "mysql://h/db", "--to", "b"}, `unknown scheme "mysql"`},
		{"missing source", []string{"--from", filepath.Join(dir, "none.sqlite"), "--to", filepath.Join(dir, "b.sqlite")}, "no such file"},
		{"unreachable", []string{"--from", filepath.Join(dir, "a.sqlite"), "--to", "postgres://room:pw1234@127.0.0.1:1/db"}, "cannot reach PostgreSQL at 127.0.0.1:1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, "a.sqlite"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := run(t, append([]string{"migrate-db"}, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "pw1234") {
				t.Fatalf("err %v, want it to contain %q (and no password)", err, c.want)
			}
		})
	}
}
