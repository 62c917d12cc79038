package sbot_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// peersReport is the output of `sbot peers`.
type peersReport struct {
	Connected []struct {
		ID        string `json:"id"`
		Direction string `json:"direction"`
		Class     string `json:"class"`
	} `json:"connected"`
	Configured []struct {
		Address   string `json:"address"`
		ID        string `json:"id"`
		Source    string `json:"source"`
		State     string `json:"state"`
		Failures  int    `json:"failures"`
		LastError string `json:"lastError"`
	} `json:"configured"`
	Known []struct {
		Address  string   `json:"address"`
		ID       string   `json:"id"`
		Sources  []string `json:"sources"`
		State    string   `json:"state"`
		LastSeen int64    `json:"lastSeen"`
	} `json:"known"`
}

func peersOf(t *testing.T, repo string) peersReport {
	t.Helper()
	var r peersReport
	out := run(t, "", "peers", "--repo", repo)
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("peers output %q: %v", out, err)
	}
	return r
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPeersCLI: `connect --remember`, `peers`, `disconnect` and
// `disconnect --forget` through the CLI, and a remembered peer redialled
// after the daemon restarts.
func TestPeersCLI(t *testing.T) {
	repoA, repoB := t.TempDir(), t.TempDir()
	a := startDaemon(t, repoA)
	b := startDaemon(t, repoB)

	// Twice, in both address forms: one connection.
	run(t, "", "connect", "--repo", repoA, "--remember", b.tcp)
	legacy := strings.TrimPrefix(strings.Split(b.tcp, "~")[0], "net:") + ":" + b.id
	run(t, "", "connect", "--repo", repoA, legacy)
	r := peersOf(t, repoA)
	if len(r.Connected) != 1 || r.Connected[0].ID != b.id || r.Connected[0].Direction != "out" {
		t.Fatalf("connected = %+v, want B once", r.Connected)
	}
	if len(r.Configured) != 1 || r.Configured[0].Source != "remembered" || r.Configured[0].ID != b.id {
		t.Fatalf("configured = %+v, want B remembered", r.Configured)
	}
	if len(r.Known) != 1 || r.Known[0].Address != b.tcp || strings.Join(r.Known[0].Sources, ",") != "remembered,seen" ||
		r.Known[0].State != "connected" || r.Known[0].LastSeen == 0 {
		t.Fatalf("known = %+v, want B's address, remembered and seen, connected", r.Known)
	}
	if data, err := os.ReadFile(filepath.Join(repoA, "peers.json")); err != nil || !strings.Contains(string(data), b.tcp) {
		t.Fatalf("peers.json = %s, %v", data, err)
	}

	// Disconnect by id: the connection ends; B stays remembered.
	out := run(t, "", "disconnect", "--repo", repoA, b.id)
	if !strings.Contains(string(out), `"disconnected":true`) {
		t.Fatalf("disconnect: %s", out)
	}
	eventually(t, "B to see A leave", func() bool {
		for _, p := range peersOf(t, repoB).Connected {
			if p.ID == a.id {
				return false
			}
		}
		return true
	})
	eventually(t, "B's keeper to pause", func() bool {
		r := peersOf(t, repoA)
		return len(r.Configured) == 1 && r.Configured[0].State == "paused"
	})
	time.Sleep(1500 * time.Millisecond) // past the first back-off: still not redialled
	if r := peersOf(t, repoA); len(r.Connected) != 0 || r.Configured[0].LastError != "disconnected by the owner" {
		t.Fatalf("after disconnect: %+v, want B paused, not connected, with the reason", r)
	}

	// Restart A: it dials the remembered B by itself.
	a.stop(t)
	a = startDaemon(t, repoA)
	eventually(t, "A to redial the remembered B after a restart", func() bool {
		r := peersOf(t, repoA)
		return len(r.Connected) == 1 && r.Connected[0].ID == b.id
	})

	// Forget: disconnected, not remembered, not redialled.
	run(t, "", "disconnect", "--repo", repoA, "--forget", b.tcp)
	if r := peersOf(t, repoA); len(r.Configured) != 0 {
		t.Fatalf("configured after --forget = %+v", r.Configured)
	}
	time.Sleep(1500 * time.Millisecond) // past the first back-off
	if r := peersOf(t, repoA); len(r.Connected) != 0 {
		t.Fatalf("connected after --forget = %+v", r.Connected)
	}
	// Bad input is a usage error.
	if _, code, _ := runCode(t, "", "disconnect", "--repo", repoA, "nonsense"); code != 2 {
		t.Fatalf("disconnect nonsense: exit %d, want 2", code)
	}
}
