package sbot_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
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
	"github.com/cask-ssb/cask/feeds/privatebox"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/contacts"
	"github.com/cask-ssb/cask/sbot"
)

// viewContent varies contents so every view gets entries: posts with
// root, branch and mentions, votes, abouts, contacts, and private
// messages to reader (every seventh).
func viewContent(authors []feeds.KeyPair, reader feeds.FeedRef) func(author int, seq int64) []byte {
	msgID := func(i int64) string {
		var b [32]byte
		b[0], b[1] = byte(i), byte(i>>8)
		return "%" + base64.StdEncoding.EncodeToString(b[:]) + ".sha256"
	}
	return func(author int, seq int64) []byte {
		other := authors[(author+int(seq))%len(authors)].ID.String()
		switch seq % 7 {
		case 0:
			ct, err := privatebox.Seal([]byte(fmt.Sprintf(`{"type":"post","text":"secret %d","root":%q}`, seq, msgID(seq%50))), []feeds.FeedRef{reader}, nil)
			if err != nil {
				panic(err)
			}
			s, _ := json.Marshal(privatebox.BoxContent(ct))
			return s
		case 1:
			return []byte(fmt.Sprintf(`{"type":"post","text":"reply %d","root":%q,"branch":[%q],"mentions":[{"link":%q}]}`, seq, msgID(seq%50), msgID(seq%30), other))
		case 2:
			return []byte(fmt.Sprintf(`{"type":"vote","vote":{"link":%q,"value":1}}`, msgID(seq%40)))
		case 3:
			return []byte(fmt.Sprintf(`{"type":"about","about":%q,"name":"n%d","description":"d%d"}`, other, seq, author))
		case 4:
			return []byte(fmt.Sprintf(`{"type":"contact","contact":%q,"following":%v}`, other, seq%2 == 0))
		}
		return fill.Post(author, seq)
	}
}

// dumpViews reads every key of every view of a store opened with opts.
func dumpViews(t *testing.T, repo string, rebuild bool) map[string]string {
	t.Helper()
	kp, err := feeds.ReadSecret(filepath.Join(repo, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	views := sbot.NewViews(&kp)
	opts := sbot.StoreOptions(nil, contacts.New(), views.Indexers()...)
	if rebuild {
		opts.Rebuild = sbot.IndexNames()
	}
	st, err := store.Open(filepath.Join(repo, "store"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := map[string]string{}
	for _, ix := range views.Indexers() {
		for e, err := range st.IndexScan(context.Background(), store.IndexRange{Index: ix.Name()}) {
			if err != nil {
				t.Fatal(err)
			}
			out[ix.Name()+"/"+string(e.Key)] = string(e.Value)
		}
	}
	return out
}

// checkViews compares every view as persisted with the same view rebuilt
// from the log; it returns the number of messages indexed.
func checkViews(t *testing.T, repo string) int {
	t.Helper()
	persisted := dumpViews(t, repo, false)
	rebuilt := dumpViews(t, repo, true)
	for k, v := range rebuilt {
		if pv, ok := persisted[k]; !ok || pv != v {
			t.Fatalf("entry %q: persisted %q (present %v), rebuilt %q", k, pv, ok, v)
		}
	}
	for k := range persisted {
		if _, ok := rebuilt[k]; !ok {
			t.Fatalf("persisted entry %q is not in the rebuilt views", k)
		}
	}
	n := map[string]int{}
	for k := range rebuilt {
		n[k[:bytes.IndexByte([]byte(k), '/')]]++
	}
	for _, name := range []string{"bytype", "links", "about", "threads", "private"} {
		if n[name] == 0 {
			t.Fatalf("view %s is empty: the input does not exercise it", name)
		}
	}
	msgs := 0
	for k := range rebuilt {
		if len(k) > 8 && k[:8] == "bytype/a" {
			msgs++
		}
	}
	t.Logf("%d messages; views equal to their rebuild: %v", msgs, n)
	return msgs
}

func writeViewInput(t *testing.T, path string, authors []feeds.KeyPair, reader feeds.FeedRef, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	content := viewContent(authors, reader)
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

// TestSIGKILLViews: kill -9 during a large import (offline, and through a
// daemon); afterwards every view (by type, links, about, threads,
// private) equals the same view rebuilt from the log.
func TestSIGKILLViews(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: spawns processes")
	}
	authors, err := fill.Keys("views-crash-authors", 20)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := feeds.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	newRepo := func(t *testing.T) string {
		repo := t.TempDir()
		if err := feeds.WriteSecret(filepath.Join(repo, "secret"), reader); err != nil {
			t.Fatal(err)
		}
		return repo
	}
	input := filepath.Join(t.TempDir(), "in.jsonl")
	const n = 10000
	writeViewInput(t, input, authors, reader.ID, n)

	t.Run("offline import", func(t *testing.T) {
		repo := newRepo(t)
		cmd := exec.Command(sbotBinary(t), "import", "--repo", repo, input)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
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
		if got := checkViews(t, repo); got == 0 || got >= n {
			t.Fatalf("%d messages stored: the kill was not during the import", got)
		}
	})

	t.Run("import through a daemon", func(t *testing.T) {
		repo := newRepo(t)
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
		if got := checkViews(t, repo); got == 0 || got >= n {
			t.Fatalf("%d messages stored: the kill was not during the import", got)
		}
	})
}
