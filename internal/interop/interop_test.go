package interop

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPeerStartsAndPublishes checks the harness itself: a JS peer starts,
// publishes, and query.js reads its feed over the network.
func TestPeerStartsAndPublishes(t *testing.T) {
	p := StartPeer(t, "--replication", "none", "--publish", "5")
	if !strings.HasPrefix(p.ID, "@") || len(p.PubKey) != 32 {
		t.Fatalf("bad ready event: %v", p.Ready)
	}
	if !strings.HasPrefix(p.Address, "net:127.0.0.1:") {
		t.Fatalf("peer not on loopback: %q", p.Address)
	}
	ev, err := p.WaitEvent(30*time.Second, func(e Event) bool { return e.Name() == "published" })
	if err != nil {
		t.Fatal(err)
	}
	if ev.Int("seq") != 5 {
		t.Fatalf("published event %v, want seq 5", ev)
	}
	out, err := Query(t, 30*time.Second, "latest", "--feed", p.ID, "--remote", p.Address)
	if err != nil {
		t.Fatal(err)
	}
	var latest struct {
		Feed string `json:"feed"`
		Seq  int    `json:"seq"`
	}
	if err := json.Unmarshal(out, &latest); err != nil {
		t.Fatalf("query output %q: %v", out, err)
	}
	if latest.Feed != p.ID || latest.Seq != 5 {
		t.Fatalf("latest = %+v, want %s seq 5", latest, p.ID)
	}
}

// TestKitDir checks where the harness looks for the JS kit: interop/js in
// the module by default, $SSB_INTEROP_DIR when set, and a clear error when
// the kit is incomplete or node is missing.
func TestKitDir(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("moduleRoot() = %s has no go.mod: %v", root, err)
	}
	fakeBin := t.TempDir()
	if err := os.WriteFile(filepath.Join(fakeBin, "node"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	kit := func(files ...string) string {
		d := t.TempDir()
		for _, f := range files {
			p := filepath.Join(d, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	complete := kit("peer.js", "node_modules/.keep")
	tests := []struct {
		name    string
		env     string // SSB_INTEROP_DIR
		path    string // PATH
		want    string // returned dir, when no error is expected
		wantErr string // substring of the error
	}{
		{name: "override", env: complete, path: fakeBin, want: complete},
		{name: "no peer.js", env: kit(), path: fakeBin, wantErr: "no peer.js"},
		{name: "no node_modules", env: kit("peer.js"), path: fakeBin, wantErr: "no node_modules"},
		{name: "no node", env: complete, path: t.TempDir(), wantErr: "node not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SSB_INTEROP_DIR", tc.env)
			t.Setenv("PATH", tc.path)
			got, err := KitDir()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("KitDir() = %q, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("KitDir() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Run("default is interop/js", func(t *testing.T) {
		t.Setenv("SSB_INTEROP_DIR", "")
		want := filepath.Join(root, "interop", "js")
		if _, err := os.Stat(filepath.Join(want, "peer.js")); err != nil {
			t.Fatalf("the repository has no %s: %v", filepath.Join(want, "peer.js"), err)
		}
		got, err := KitDir()
		if err != nil {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("KitDir() error %v does not name %s", err, want)
			}
			return
		}
		if got != want {
			t.Fatalf("KitDir() = %q, want %q", got, want)
		}
	})
}
