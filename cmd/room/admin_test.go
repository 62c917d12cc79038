package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func mustRun(t *testing.T, v any, args ...string) {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("room %s: %v", strings.Join(args, " "), err)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("room %s: output %q: %v", strings.Join(args, " "), out, err)
		}
	}
}

// TestServeAndAdmin runs `room serve` and drives it with `room admin`,
// `room status` and `room address` through the cobra commands.
func TestServeAndAdmin(t *testing.T) {
	repo := t.TempDir()
	os.WriteFile(filepath.Join(repo, "config.toml"), []byte("domain = \"room.example\"\nmode = \"restricted\"\n"), 0o600)
	t.Setenv("SSB_ROOM_MAX_CONNS", "100")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		root := newRootCmd()
		root.SetArgs([]string{"serve", "--repo", repo, "--listen", "127.0.0.1:0", "--http-listen", "off", "--debug-listen", "off", "--log-level", "warn"})
		done <- root.ExecuteContext(ctx)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := run(t, "status", "--repo", repo); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("room did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fi, err := os.Stat(filepath.Join(repo, "socket")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(repo, "secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret: %v %v", fi, err)
	}

	var addr string
	mustRun(t, &addr, "address", "--repo", repo)
	if _, err := feeds.ParseAddress(addr); err != nil || !strings.HasPrefix(addr, "net:127.0.0.1:") {
		t.Fatalf("address %q: %v", addr, err)
	}
	var mode map[string]string
	mustRun(t, &mode, "admin", "mode", "get", "--repo", repo)
	if mode["mode"] != "restricted" {
		t.Fatalf("mode from config.toml = %v", mode)
	}
	mustRun(t, &mode, "admin", "mode", "set", "community", "--repo", repo)
	if _, err := run(t, "admin", "mode", "set", "anarchy", "--repo", repo); err == nil {
		t.Fatal("bad mode accepted")
	}

	kp, _ := feeds.GenerateKeyPair(rand.Reader)
	id := kp.ID.String()
	mustRun(t, nil, "admin", "members", "add", id, "--role", "admin", "--repo", repo)
	var members []struct{ ID, Role string }
	mustRun(t, &members, "admin", "members", "list", "--repo", repo)
	if len(members) != 1 || members[0].ID != id || members[0].Role != "admin" {
		t.Fatalf("members = %+v", members)
	}
	mustRun(t, nil, "admin", "members", "role", id, "moderator", "--repo", repo)
	mustRun(t, &members, "admin", "members", "list", "--repo", repo)
	if members[0].Role != "moderator" {
		t.Fatalf("role not changed: %+v", members)
	}
	if _, err := run(t, "admin", "members", "role", id, "king", "--repo", repo); err == nil {
		t.Fatal("bad role accepted")
	}

	var inv struct {
		Code, URL string
		ID        int64
	}
	mustRun(t, &inv, "admin", "invites", "create", "--uses", "3", "--expires", "1h", "--repo", repo)
	if len(inv.Code) != 43 || inv.URL != "https://room.example/join?invite="+inv.Code {
		t.Fatalf("invite = %+v", inv)
	}
	var invites []struct {
		ID   int64
		Uses int
	}
	mustRun(t, &invites, "admin", "invites", "list", "--repo", repo)
	if len(invites) != 1 || invites[0].Uses != 3 {
		t.Fatalf("invites = %+v", invites)
	}
	mustRun(t, nil, "admin", "invites", "revoke", "1", "--repo", repo)
	mustRun(t, &invites, "admin", "invites", "list", "--repo", repo)
	if len(invites) != 0 {
		t.Fatalf("invites after revoke = %+v", invites)
	}

	mustRun(t, nil, "admin", "deny", "add", id, "--comment", "test", "--repo", repo)
	var denied []struct{ ID, Comment string }
	mustRun(t, &denied, "admin", "deny", "list", "--repo", repo)
	if len(denied) != 1 || denied[0].Comment != "test" {
		t.Fatalf("denied = %+v", denied)
	}
	mustRun(t, nil, "admin", "deny", "remove", id, "--repo", repo)

	var aliases []any
	mustRun(t, &aliases, "admin", "aliases", "list", "--repo", repo)
	if _, err := run(t, "admin", "aliases", "revoke", "nobody", "--repo", repo); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("revoke unknown alias: %v", err)
	}
	mustRun(t, nil, "admin", "members", "remove", id, "--repo", repo)

	var st struct {
		Mode                             string
		Attendants, Connections, Members int
	}
	mustRun(t, &st, "status", "--repo", repo)
	if st.Mode != "community" || st.Members != 0 {
		t.Fatalf("status = %+v", st)
	}

	var dr struct {
		Draining           bool
		Closing, PerSecond int
	}
	mustRun(t, &dr, "drain", "--per-second", "5", "--repo", repo)
	if !dr.Draining || dr.PerSecond != 5 {
		t.Fatalf("drain = %+v", dr)
	}
	var st2 struct{ Draining bool }
	mustRun(t, &st2, "status", "--repo", repo)
	if !st2.Draining {
		t.Fatal("status after drain: not draining")
	}
	mustRun(t, &dr, "drain", "--cancel", "--repo", repo)
	mustRun(t, &st2, "status", "--repo", repo)
	if dr.Draining || st2.Draining {
		t.Fatalf("after drain --cancel: %+v, status draining %v", dr, st2.Draining)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		toml string
		want string
	}{
		{"bad flag value", []string{"--max-conns", "many"}, nil, "", "--max-conns: want an integer"},
		{"bad env value", nil, map[string]string{"SSB_ROOM_KEEPALIVE": "soon"}, "", "SSB_ROOM_KEEPALIVE: want a duration"},
		{"bad mode in toml", nil, nil, "mode = \"secret\"\n", `mode "secret"`},
		{"unknown toml key", nil, nil, "colour = \"red\"\n", "unknown setting colour"},
		{"zero limit", []string{"--max-conns-per-ip", "0"}, nil, "", "max-conns-per-ip: want a positive number"},
		{"bad caps", []string{"--caps", "abc"}, nil, "", `caps "abc"`},
		{"bad db scheme", []string{"--db", "mysql://h/db"}, nil, "", `unknown scheme "mysql"`},
		{"bad db in env", nil, map[string]string{"SSB_ROOM_DB": "sqlite:"}, "", "want sqlite:PATH"},
		{"bad db in toml", nil, nil, "db = \"redis://h\"\n", `unknown scheme "redis"`},
		{"unreachable postgres", []string{"--db", "postgres://room:pw1234@127.0.0.1:1/room", "--listen", "127.0.0.1:0", "--http-listen", "off", "--debug-listen", "off"}, nil, "", "cannot reach PostgreSQL at 127.0.0.1:1"},
		{"mesh without key", []string{"--mesh-with", "127.0.0.1:1"}, nil, "", "mesh-key-file: required"},
		{"bad mesh address in env", nil, map[string]string{"SSB_ROOM_MESH_LISTEN": "nowhere", "SSB_ROOM_MESH_KEY_FILE": "k"}, "", `mesh-listen "nowhere"`},
		{"bad mesh-with in toml", nil, nil, "mesh-with = [\"a\"]\nmesh-key-file = \"k\"\n", `mesh-with "a"`},
		{"mesh key file missing", []string{"--mesh-listen", "127.0.0.1:0", "--mesh-key-file", "/nonexistent/k", "--listen", "127.0.0.1:0", "--http-listen", "off", "--debug-listen", "off"}, nil, "", "mesh key file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			repo := t.TempDir()
			if c.toml != "" {
				os.WriteFile(filepath.Join(repo, "config.toml"), []byte(c.toml), 0o600)
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			_, err := run(t, append([]string{"serve", "--repo", repo}, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestMeshKeyCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mesh-key")
	var out struct{ File string }
	mustRun(t, &out, "mesh-key", path)
	fi, err := os.Stat(path)
	if err != nil || out.File != path || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mesh-key wrote %+v: %v %v", out, fi, err)
	}
	if _, err := run(t, "mesh-key", path); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("mesh-key over an existing file: %v", err)
	}
}
