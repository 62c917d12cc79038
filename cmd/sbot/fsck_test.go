package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// damageLog changes the stored bytes of log record seq of the stopped
// daemon's store in repo (store layout: feeds/store/doc.go).
func damageLog(t *testing.T, repo string, seq uint64, damage func([]byte) []byte) {
	t.Helper()
	db, err := pebble.Open(filepath.Join(repo, "store", "pebble"), &pebble.Options{ErrorIfNotExists: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := binary.BigEndian.AppendUint64([]byte("l/"), seq)
	v, closer, err := db.Get(key)
	if err != nil {
		t.Fatalf("read record %d: %v", seq, err)
	}
	nv := damage(append([]byte(nil), v...))
	closer.Close()
	if err := db.Set(key, nv, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

type fsckJSON struct {
	Records     int64          `json:"records"`
	Tail        int64          `json:"tail"`
	Quarantined int64          `json:"quarantined"`
	Found       int            `json:"found"`
	Counts      map[string]int `json:"counts"`
	Problems    []struct {
		Kind     string `json:"kind"`
		Seq      int64  `json:"seq"`
		Repaired bool   `json:"repaired"`
	} `json:"problems"`
	Repaired bool `json:"repaired"`
	Left     int  `json:"left"`
}

func fsckReport(t *testing.T, r runResult) fsckJSON {
	t.Helper()
	var rep fsckJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("fsck --json output is not one JSON object: %v\n%s", err, r.stdout)
	}
	return rep
}

// TestFsckCLI runs `sbot fsck` on a daemon's repo: clean, then with a torn
// tail and a corrupted record written by the test, then repaired; the
// daemon starts on the repaired repo and holds every other message.
func TestFsckCLI(t *testing.T) {
	const n = 12
	repo := t.TempDir()
	_, stop := testNode(t, repo, "off")
	for i := range n {
		if r := sbotRun(t, "", "publish", "--text", "message "+itoa(i+1), "--repo", repo); r.code != 0 {
			t.Fatalf("publish: %d %s", r.code, r.stderr)
		}
	}

	// A running daemon holds the repo.
	checkCase(t, cliCase{code: 1, stderr: "stop the daemon first"}, sbotRun(t, "", "fsck", "--repo", repo))
	stop()

	checkCase(t, cliCase{code: 0, stdout: "no problems found"}, sbotRun(t, "", "fsck", "--repo", repo))
	r := sbotRun(t, "", "fsck", "--json", "--repo", repo)
	if rep := fsckReport(t, r); r.code != 0 || rep.Found != 0 || rep.Records != n || rep.Tail != n {
		t.Fatalf("clean fsck --json: exit %d, %+v", r.code, rep)
	}
	checkCase(t, cliCase{code: 2, stderr: "unknown command"}, sbotRun(t, "", "fsck", "extra", "--repo", repo))
	checkCase(t, cliCase{code: 1, stderr: "has no store"}, sbotRun(t, "", "fsck", "--repo", t.TempDir()))

	// A write cut short at the tail, and a flipped bit in record 5.
	damageLog(t, repo, n, func(v []byte) []byte { return v[:len(v)/3] })
	damageLog(t, repo, 5, func(v []byte) []byte { v[len(v)-2] ^= 1; return v })
	// The daemon cannot start on it; it says so.
	if r := sbotRun(t, "", "log", "--repo", repo); r.code != 1 || !strings.Contains(r.stderr, "sbot fsck --repair") {
		t.Fatalf("log on a store with a torn tail: exit %d, stderr %q; want 1 and a hint to run fsck", r.code, r.stderr)
	}

	r = sbotRun(t, "", "fsck", "--repo", repo)
	checkCase(t, cliCase{code: 1, stdout: "torn-tail at seq 12", stderr: "2 problems found; sbot fsck --repair"}, r)
	if !strings.Contains(r.stdout, "corrupt-record at seq 5") {
		t.Errorf("fsck output does not name the corrupted record:\n%s", r.stdout)
	}
	r = sbotRun(t, "", "fsck", "--json", "--repo", repo)
	rep := fsckReport(t, r)
	if r.code != 1 || rep.Found != 2 || rep.Counts["torn-tail"] != 1 || rep.Counts["corrupt-record"] != 1 || rep.Repaired {
		t.Fatalf("fsck --json of the damaged store: exit %d, %+v", r.code, rep)
	}

	r = sbotRun(t, "", "fsck", "--repair", "--json", "--repo", repo)
	rep = fsckReport(t, r)
	if r.code != 0 || !rep.Repaired || rep.Left != 0 || rep.Records != n-2 || rep.Quarantined != 2 || rep.Tail != n-1 {
		t.Fatalf("fsck --repair: exit %d %s, %+v", r.code, r.stderr, rep)
	}
	for _, p := range rep.Problems {
		if !p.Repaired {
			t.Errorf("problem %+v not repaired", p)
		}
	}
	checkCase(t, cliCase{code: 0, stdout: "2 records quarantined"}, sbotRun(t, "", "fsck", "--repo", repo))

	// Every other message is there, offline and through a daemon.
	r = sbotRun(t, "", "log", "--repo", repo)
	if r.code != 0 {
		t.Fatalf("log after the repair: %d %s", r.code, r.stderr)
	}
	lines := jsonLinesOf(t, r.stdout)
	if len(lines) != n-2 {
		t.Fatalf("log after the repair: %d messages, want %d", len(lines), n-2)
	}
	for _, l := range lines {
		if strings.Contains(l, `"message 5"`) || strings.Contains(l, `"message 12"`) {
			t.Errorf("a quarantined message is in the log: %s", l)
		}
	}
	testNode(t, repo, "off")
	if r := sbotRun(t, "", "publish", "--text", "after repair", "--repo", repo); r.code != 0 {
		t.Fatalf("publish after the repair: %d %s", r.code, r.stderr)
	}
}

func jsonLinesOf(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		if !json.Valid([]byte(l)) {
			t.Fatalf("not JSON: %q", l)
		}
		out = append(out, l)
	}
	return out
}

// TestFsckNoStoreCLI: fsck on a repo without a store says in one statement
// which directory is missing and what to do, without the store's error
// chain, and creates nothing.
func TestFsckNoStoreCLI(t *testing.T) {
	base := t.TempDir()
	for _, tc := range []struct {
		name, repo string
	}{
		{"empty repo", base},
		{"no repo directory", filepath.Join(base, "none")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sbotRun(t, "", "fsck", "--repo", tc.repo)
			want := "sbot: fsck: " + tc.repo + ": repo has no store (" + filepath.Join(tc.repo, "store") +
				" does not exist); point --repo (or SSB_REPO) at the repo of a node that has run\n"
			checkCase(t, cliCase{code: 1, notStderr: []string{"not found", "no store there", "fsck store at"}}, r)
			if r.stderr != want {
				t.Errorf("stderr %q, want %q", r.stderr, want)
			}
			if _, err := os.Stat(filepath.Join(tc.repo, "store")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("fsck created %s: %v", filepath.Join(tc.repo, "store"), err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(base, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("fsck created the repo directory: %v", err)
	}
}
