package sbot_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cask-ssb/cask/bench/fill"
	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/contacts"
	"github.com/cask-ssb/cask/sbot"
)

// contactContent is a contact message of author about one of targets,
// varied so that follows, unfollows, blocks and unblocks all occur.
func contactContent(targets []feeds.KeyPair) func(author int, seq int64) []byte {
	return func(author int, seq int64) []byte {
		if seq%5 == 0 {
			return fill.Post(author, seq)
		}
		to := targets[(int(seq)*7+author)%len(targets)].ID
		field := []string{`"following":true`, `"following":false`, `"blocking":true`, `"blocking":false`}[(int(seq)/3+author)%4]
		return []byte(fmt.Sprintf(`{"type":"contact","contact":%q,%s}`, to.String(), field))
	}
}

// checkGraph opens repo's store offline and compares the persisted contact
// graph (loaded at open) with one rebuilt from the log; it returns the
// number of messages.
func checkGraph(t *testing.T, repo string) int64 {
	t.Helper()
	g := contacts.New()
	st, err := store.Open(filepath.Join(repo, "store"), sbot.StoreOptions(nil, g))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	want, _, err := contacts.Build(func(yield func([]byte, error) bool) {
		for rec, err := range st.Log(context.Background(), store.LogQuery{Old: true}) {
			if !yield(rec.Value, err) {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !g.Equal(want) {
		t.Fatalf("persisted contact graph (%d edges) differs from the graph rebuilt from the log (%d edges)", g.Edges(), want.Edges())
	}
	msgs, _ := st.Count()
	t.Logf("%d messages, %d edges: persisted graph equals the rebuilt one", msgs, want.Edges())
	return msgs
}

// waitStored polls a running daemon's status until it holds at least n
// messages.
func waitStored(t *testing.T, repo string, n int64, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, err := exec.Command(sbotBinary(t), "status", "--repo", repo).Output()
		if err == nil {
			var st struct {
				Messages int64 `json:"messages"`
			}
			if json.Unmarshal(out, &st) == nil && st.Messages >= n {
				return
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("process exited early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s never held %d messages", repo, n)
}

// writeContactInput writes n signed messages over authors (mostly contact
// messages) as newline-delimited message values for sbot import.
func writeContactInput(t *testing.T, path string, authors, targets []feeds.KeyPair, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	content := contactContent(targets)
	states := make([]*classic.FeedState, len(authors))
	for i := range n {
		a := i % len(authors)
		seq := int64(i/len(authors) + 1)
		m, err := classic.Create(authors[a].Private, states[a], float64(1700000000000+seq), classic.RawJSON(content(a, seq)), nil)
		if err != nil {
			t.Fatal(err)
		}
		s := classic.StateAfter(m)
		states[a] = &s
		w.Write(m.Compact)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestSIGKILLGraph: kill -9 during a large import (offline, and through a
// daemon with addBatch) and during replication; afterwards the persisted
// contact graph equals the graph rebuilt from the log.
func TestSIGKILLGraph(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: spawns processes")
	}
	authors, err := fill.Keys("crash-authors", 20)
	if err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(t.TempDir(), "in.jsonl")
	const n = 10000
	writeContactInput(t, input, authors, authors, n)

	t.Run("offline import", func(t *testing.T) {
		repo := t.TempDir()
		cmd := exec.Command(sbotBinary(t), "import", "--repo", repo, input)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		// Kill once some messages are stored: the store is locked by the
		// import, so poll the store's size on disk instead of opening it.
		deadline := time.Now().Add(60 * time.Second)
		for dirSize(filepath.Join(repo, "store")) < 1<<20 && time.Now().Before(deadline) {
			select {
			case err := <-exited:
				t.Fatalf("import finished before the kill (%v): make the input larger", err)
			case <-time.After(10 * time.Millisecond):
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		if got := checkGraph(t, repo); got == 0 || got >= n {
			t.Fatalf("%d messages stored: the kill was not during the import", got)
		}
	})

	t.Run("import through a daemon", func(t *testing.T) {
		repo := t.TempDir()
		d := startDaemon(t, repo)
		cmd := exec.Command(sbotBinary(t), "import", "--repo", repo, input)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		imp := make(chan error, 1)
		go func() { imp <- cmd.Wait() }()
		waitStored(t, repo, 1000, imp)
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.exited
		<-imp
		if got := checkGraph(t, repo); got == 0 || got >= n {
			t.Fatalf("%d messages stored: the kill was not during the import", got)
		}
	})

	t.Run("replication", func(t *testing.T) {
		src, dst := t.TempDir(), t.TempDir()
		kp, _, err := feeds.LoadOrCreateSecret(filepath.Join(src, "secret"))
		if err != nil {
			t.Fatal(err)
		}
		if err := fill.Repo(context.Background(), src, fill.Options{Authors: []feeds.KeyPair{kp}, Messages: 6000, Content: contactContent(authors)}); err != nil {
			t.Fatal(err)
		}
		a := startDaemon(t, src)
		b := startDaemon(t, dst)
		run(t, "", "connect", "--repo", dst, a.tcp)
		waitStored(t, dst, 300, b.exited)
		b.cmd.Process.Signal(syscall.SIGKILL)
		<-b.exited
		a.stop(t)
		if got := checkGraph(t, dst); got == 0 || got >= 6000 {
			t.Fatalf("%d messages stored: the kill was not during replication", got)
		}
	})
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
