package sbot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/bench/fill"
	"github.com/cask-ssb/cask/feeds"
)

// syncFilledRepo returns a repo whose own feed holds n messages (written to
// its store directly, before any daemon runs).
func syncFilledRepo(t *testing.T, n int) string {
	t.Helper()
	repo := t.TempDir()
	kp, _, err := feeds.LoadOrCreateSecret(filepath.Join(repo, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	// Small posts: under -race, making and signing the messages is most
	// of this test's time.
	small := func(_ int, seq int64) []byte { return fmt.Appendf(nil, `{"type":"post","text":"%d"}`, seq) }
	if err := fill.Repo(context.Background(), repo, fill.Options{Authors: []feeds.KeyPair{kp}, Messages: n, Content: small}); err != nil {
		t.Fatal(err)
	}
	return repo
}

// TestSyncWaitCLI: `sbot sync --wait` (the real binary, stdout a pipe)
// against a peer holding 20,000 messages ends when all are held; every
// line it prints is JSON and the last one says caught up.
func TestSyncWaitCLI(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	t0 := time.Now()
	repo := syncFilledRepo(t, n)
	t.Logf("filled the peer's repo with %d messages in %s", n, time.Since(t0).Round(time.Millisecond))
	peer := startDaemon(t, repo)
	us := startDaemon(t, t.TempDir())
	t.Logf("daemons up after %s", time.Since(t0).Round(time.Millisecond))

	if out, err := exec.Command(sbotBinary(t), "connect", "--repo", us.repo, peer.tcp).CombinedOutput(); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	cmd := exec.Command(sbotBinary(t), "sync", "--wait", "--timeout", "3m", "--repo", us.repo)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("sync --wait: %v\nstdout:\n%s\nstderr:\n%s\ndaemon:\n%s", err, stdout.String(), stderr.String(), us.stderr.String())
	}
	t.Logf("sync --wait took %s", time.Since(start).Round(time.Millisecond))

	type line struct {
		Known    *int64 `json:"known"`
		Held     *int64 `json:"held"`
		Peers    *int   `json:"peers"`
		CaughtUp bool   `json:"caughtUp"`
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	var last line
	var held int64
	for i, l := range lines {
		var v line
		if err := json.Unmarshal([]byte(l), &v); err != nil || v.Known == nil || v.Held == nil || v.Peers == nil {
			t.Fatalf("line %d is not a progress JSON line: %q (%v)", i+1, l, err)
		}
		if *v.Held < held {
			t.Errorf("line %d: held went down from %d to %d", i+1, held, *v.Held)
		}
		held = *v.Held
		if v.CaughtUp && i != len(lines)-1 {
			t.Errorf("line %d says caught up but is not the last", i+1)
		}
		last = v
	}
	if !last.CaughtUp || *last.Held != int64(n) || *last.Known != int64(n) || *last.Peers != 1 {
		t.Fatalf("last line %q: want caught up with %d known and held from 1 peer", lines[len(lines)-1], n)
	}

	// The daemon holds them all, and status says the same.
	out, err := exec.Command(sbotBinary(t), "status", "--repo", us.repo).Output()
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Sync struct {
			Known, Held int64
			CaughtUp    bool `json:"caughtUp"`
		} `json:"sync"`
		Peers []struct {
			ID   string `json:"id"`
			Sync *struct {
				Known, Held int64
			} `json:"sync"`
		} `json:"peers"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status %s: %v", out, err)
	}
	if !st.Sync.CaughtUp || st.Sync.Held != int64(n) || len(st.Peers) != 1 || st.Peers[0].ID != peer.id || st.Peers[0].Sync == nil || st.Peers[0].Sync.Held != int64(n) {
		t.Fatalf("status after sync: %s", out)
	}
	hist, err := exec.Command(sbotBinary(t), "hist", "--repo", us.repo, "--seq", fmt.Sprint(n), peer.id).Output()
	if err != nil || !strings.Contains(string(hist), fmt.Sprintf(`"sequence":%d`, n)) {
		t.Fatalf("hist of the peer's feed at %d: %v %.200s", n, err, hist)
	}
}

// TestSyncTimeoutCLI: without a peer `sbot sync --wait` never catches up:
// --timeout ends it with exit status 1, its lines still JSON.
func TestSyncTimeoutCLI(t *testing.T) {
	us := startDaemon(t, t.TempDir())
	cmd := exec.Command(sbotBinary(t), "sync", "--wait", "--timeout", "1500ms", "--repo", us.repo)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("sync --wait without peers: %v, want exit status 1\nstderr: %s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "timed out") {
		t.Errorf("stderr %q does not say it timed out", stderr.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil || v["caughtUp"] != false || v["peers"] != float64(0) {
			t.Fatalf("line %q: want JSON, not caught up, 0 peers", l)
		}
	}
}
