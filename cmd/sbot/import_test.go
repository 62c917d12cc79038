package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/sbot"
	"github.com/cask-ssb/cask/sbot/client"
)

func importSummaryOf(t *testing.T, lines []map[string]any) importSummary {
	t.Helper()
	if len(lines) == 0 {
		t.Fatal("no output")
	}
	b, _ := json.Marshal(lines[len(lines)-1])
	var s importSummary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// withStore opens the repo's store (no daemon may hold it) for fn.
func withStore(t *testing.T, repo string, fn func(st *store.Store)) {
	t.Helper()
	st, err := store.Open(filepath.Join(repo, "store"), store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	}()
	fn(st)
}

// checkStored asserts that every message of present is stored (by key,
// and by author and sequence with the same key) and none of absent is.
func checkStored(t *testing.T, st *store.Store, present []*classic.Message, absent []feeds.MessageRef) {
	t.Helper()
	for _, m := range present {
		rec, err := st.Get(m.Key)
		if err != nil {
			t.Errorf("%s (sequence %d) not stored: %v", m.Key, m.Sequence, err)
			continue
		}
		if !bytes.Equal(rec.Value, m.Compact) {
			t.Errorf("%s stored as %s, want %s", m.Key, rec.Value, m.Compact)
		}
		bySeq, err := st.GetBySequence(m.Author, m.Sequence)
		if err != nil || bySeq.Key != m.Key {
			t.Errorf("sequence %d of %s: %v, %v; want %s", m.Sequence, m.Author, bySeq.Key, err, m.Key)
		}
	}
	for _, k := range absent {
		if _, err := st.Get(k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s should not be stored (err %v)", k, err)
		}
	}
}

func keyOf(t *testing.T, line string) feeds.MessageRef {
	t.Helper()
	m, _, _, err := classic.ParseKVT([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return m.Key
}

func TestImportCLI(t *testing.T) {
	bin := buildSbot(t)
	fx := readFixture(t)
	gz, err := filepath.Abs(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	n := len(fx.lines)

	importRun := func(t *testing.T, stdin []byte, env []string, args ...string) (cliResult, []map[string]any) {
		t.Helper()
		res := runCLI(t, bin, bytes.NewReader(stdin), env, append([]string{"import"}, args...)...)
		if res.stdout == "" {
			return res, nil
		}
		return res, jsonLines(t, res.stdout)
	}

	t.Run("fixture twice", func(t *testing.T) {
		repo := filepath.Join(t.TempDir(), "repo")
		res, lines := importRun(t, nil, nil, "--repo", repo, gz)
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		want := importSummary{Messages: n, Imported: n, Feeds: len(fx.authors), Via: "store"}
		if got := importSummaryOf(t, lines); got != want || len(lines) != 1 {
			t.Fatalf("summary %+v (%d lines), want %+v", got, len(lines), want)
		}
		withStore(t, repo, func(st *store.Store) {
			msgs, nfeeds := st.Count()
			if msgs != int64(n) || nfeeds != int64(len(fx.authors)) {
				t.Errorf("store holds %d messages of %d feeds, want %d of %d", msgs, nfeeds, n, len(fx.authors))
			}
			for i, k := range fx.keys {
				ref, err := feeds.ParseMessageRef(k)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := st.Get(ref); err != nil {
					t.Fatalf("line %d %s not stored: %v", i+1, k, err)
				}
			}
			if err := st.Verify(context.Background()); err != nil {
				t.Errorf("store verify: %v", err)
			}
		})
		res, lines = importRun(t, nil, nil, "--repo", repo, gz)
		if res.code != 0 {
			t.Fatalf("second run: exit %d: %s", res.code, res.stderr)
		}
		want = importSummary{Messages: n, Duplicate: n, Feeds: len(fx.authors), Via: "store"}
		if got := importSummaryOf(t, lines); got != want {
			t.Errorf("second run: summary %+v, want %+v", got, want)
		}
		withStore(t, repo, func(st *store.Store) {
			if msgs, _ := st.Count(); msgs != int64(n) {
				t.Errorf("after the second run the store holds %d messages, want %d", msgs, n)
			}
		})
	})

	// The append of a chunk runs while the next one is checked: a chunk
	// that repeats messages of the one before must find them stored
	// (duplicates), not missing below their feed's head.
	t.Run("next chunk repeats the previous one", func(t *testing.T) {
		if n < 2*importChunk {
			t.Fatalf("the fixture has %d lines, want at least %d", n, 2*importChunk)
		}
		const rep = 20
		lines := append(append(append([]string{}, fx.lines[:importChunk]...), fx.lines[importChunk-rep:importChunk]...), fx.lines[importChunk:2*importChunk]...)
		in := writeLines(t, t.TempDir(), "repeat.jsonl", lines)
		repo := filepath.Join(t.TempDir(), "repo")
		res, out := importRun(t, nil, nil, "--repo", repo, in)
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		got := importSummaryOf(t, out)
		if got.Messages != 2*importChunk+rep || got.Imported != 2*importChunk || got.Duplicate != rep || got.Invalid != 0 {
			t.Errorf("summary %+v, want %d read, %d imported, %d duplicates", got, 2*importChunk+rep, 2*importChunk, rep)
		}
		withStore(t, repo, func(st *store.Store) {
			if msgs, _ := st.Count(); msgs != 2*importChunk {
				t.Errorf("store holds %d messages, want %d", msgs, 2*importChunk)
			}
		})
	})

	t.Run("SSB_REPO and stdin", func(t *testing.T) {
		repo := filepath.Join(t.TempDir(), "envrepo")
		f := newTestFeed(t, 20, 3)
		in := strings.Join([]string{record(f.seq(1)), bare(f.seq(2)), record(f.seq(3))}, "\n")
		res, lines := importRun(t, []byte(in), []string{"SSB_REPO=" + repo}, "-")
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		if got, want := importSummaryOf(t, lines), (importSummary{Messages: 3, Imported: 3, Feeds: 1, Via: "store"}); got != want {
			t.Errorf("summary %+v, want %+v", got, want)
		}
		withStore(t, repo, func(st *store.Store) { checkStored(t, st, f.msgs, nil) })
		// --repo wins over SSB_REPO.
		other := filepath.Join(t.TempDir(), "flagrepo")
		res, _ = importRun(t, []byte(in), []string{"SSB_REPO=" + repo}, "--repo", other, "-")
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		withStore(t, other, func(st *store.Store) { checkStored(t, st, f.msgs, nil) })
	})

	t.Run("invalid skipped, valid kept", func(t *testing.T) {
		repo := filepath.Join(t.TempDir(), "repo")
		a := newTestFeed(t, 21, 6)
		b := newTestFeed(t, 22, 2)
		fork := a.create(t, &classic.FeedState{Key: a.seq(1).Key, Sequence: 2, Timestamp: a.seq(2).Timestamp}, "forked")
		badSig := flipSig(t, a.seq(3))
		changed := changeText(t, a.seq(4), "message 4", "message X")
		in := writeLines(t, t.TempDir(), "mixed.jsonl", []string{
			record(a.seq(1)), record(a.seq(2)), badSig, record(a.seq(3)), record(fork), changed,
			record(a.seq(4)), record(a.seq(5)), record(b.seq(1)), `[1]`, record(a.seq(5)), bare(b.seq(2)),
		})
		res, lines := importRun(t, nil, nil, "--repo", repo, in)
		if res.code != 1 {
			t.Fatalf("exit %d, want 1: %s", res.code, res.stderr)
		}
		checkIssues(t, lines, []wantIssue{
			{line: 3, error: "signature"},
			{line: 5, error: "expected sequence 4 but got 3"},
			{line: 6, error: "signature"},
			{line: 10, error: "must be an object"},
		})
		if got, want := importSummaryOf(t, lines), (importSummary{Messages: 12, Imported: 7, Duplicate: 1, Invalid: 4, Feeds: 2, Via: "store"}); got != want {
			t.Errorf("summary %+v, want %+v", got, want)
		}
		valid := []*classic.Message{a.seq(1), a.seq(2), a.seq(3), a.seq(4), a.seq(5), b.seq(1), b.seq(2)}
		invalid := []feeds.MessageRef{keyOf(t, badSig), fork.Key, keyOf(t, changed), a.seq(6).Key}
		withStore(t, repo, func(st *store.Store) {
			checkStored(t, st, valid, invalid)
			if msgs, _ := st.Count(); msgs != int64(len(valid)) {
				t.Errorf("store holds %d messages, want %d", msgs, len(valid))
			}
		})

		// Again: the valid ones are duplicates now; the others conflict
		// with what is stored at their sequence.
		res, lines = importRun(t, nil, nil, "--repo", repo, in)
		if res.code != 1 {
			t.Fatalf("second run: exit %d, want 1: %s", res.code, res.stderr)
		}
		checkIssues(t, lines, []wantIssue{
			{line: 3, error: "already stored with id " + a.seq(3).Key.String()},
			{line: 5, error: "already stored with id " + a.seq(3).Key.String()},
			{line: 6, error: "already stored with id " + a.seq(4).Key.String()},
			{line: 10, error: "must be an object"},
		})
		if got, want := importSummaryOf(t, lines), (importSummary{Messages: 12, Duplicate: 8, Invalid: 4, Feeds: 2, Via: "store"}); got != want {
			t.Errorf("second run: summary %+v, want %+v", got, want)
		}
		withStore(t, repo, func(st *store.Store) { checkStored(t, st, valid, invalid) })
	})

	t.Run("feeds must start at 1 or continue the store", func(t *testing.T) {
		repo := filepath.Join(t.TempDir(), "repo")
		c := newTestFeed(t, 23, 5)
		d := newTestFeed(t, 24, 3)
		dir := t.TempDir()
		first := writeLines(t, dir, "first.jsonl", []string{record(c.seq(1)), record(c.seq(2))})
		rest := writeLines(t, dir, "rest.jsonl", []string{record(d.seq(2)), record(c.seq(3)), record(d.seq(3)), record(c.seq(4)), record(c.seq(5))})

		res, lines := importRun(t, nil, nil, "--repo", repo, first)
		if res.code != 0 || importSummaryOf(t, lines).Imported != 2 {
			t.Fatalf("first: exit %d, %v: %s", res.code, lines, res.stderr)
		}
		// c continues the stored feed; d starts at 2 and is not stored.
		res, lines = importRun(t, nil, nil, "--repo", repo, rest)
		if res.code != 1 {
			t.Fatalf("rest: exit %d, want 1: %s", res.code, res.stderr)
		}
		checkIssues(t, lines, []wantIssue{
			{line: 1, error: "not in the store"},
			{line: 3, error: "not in the store"},
		})
		if got, want := importSummaryOf(t, lines), (importSummary{Messages: 5, Imported: 3, Invalid: 2, Feeds: 2, Via: "store"}); got != want {
			t.Errorf("summary %+v, want %+v", got, want)
		}
		withStore(t, repo, func(st *store.Store) {
			checkStored(t, st, c.msgs, []feeds.MessageRef{d.seq(2).Key, d.seq(3).Key})
		})
		// Overlapping input: the stored part is duplicate, d from 1 works.
		res, lines = importRun(t, nil, nil, "--repo", repo, first, rest,
			writeLines(t, dir, "d.jsonl", []string{record(d.seq(1)), record(d.seq(2)), record(d.seq(3))}))
		if res.code != 1 { // rest still has d2, d3 before d1
			t.Fatalf("overlap: exit %d, want 1: %s", res.code, res.stderr)
		}
		checkIssues(t, lines, []wantIssue{
			{file: "rest.jsonl", line: 1, error: "not in the store"},
			{file: "rest.jsonl", line: 3, error: "not in the store"},
		})
		if got, want := importSummaryOf(t, lines), (importSummary{Messages: 10, Imported: 3, Duplicate: 5, Invalid: 2, Feeds: 2, Via: "store"}); got != want {
			t.Errorf("overlap: summary %+v, want %+v", got, want)
		}
		withStore(t, repo, func(st *store.Store) { checkStored(t, st, append(c.msgs, d.msgs...), nil) })
	})

	t.Run("malformed line stops the import", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			before int // fixture lines before the bad one
		}{
			{"in the first chunk", 3},
			{"after two chunks", 2*importChunk + 17},
		} {
			t.Run(tc.name, func(t *testing.T) {
				repo := filepath.Join(t.TempDir(), "repo")
				lines := append(append(append([]string{}, fx.lines[:tc.before]...), `{"key":"%x", "value": {"previous"`), fx.lines[tc.before:]...)
				in := writeLines(t, t.TempDir(), "broken.jsonl", lines)
				res, out := importRun(t, nil, nil, "--repo", repo, in)
				if res.code != 2 {
					t.Fatalf("exit %d, want 2: %s", res.code, res.stderr)
				}
				if want := "line " + itoa(tc.before+1) + ":"; !strings.Contains(res.stderr, want) {
					t.Errorf("stderr %q does not name %q", res.stderr, want)
				}
				if got := importSummaryOf(t, out); got.Imported != tc.before || got.Messages != tc.before {
					t.Errorf("summary %+v, want %d read and imported", got, tc.before)
				}
				withStore(t, repo, func(st *store.Store) {
					if msgs, _ := st.Count(); msgs != int64(tc.before) {
						t.Errorf("store holds %d messages, want the %d before the bad line", msgs, tc.before)
					}
					for _, k := range fx.keys[:tc.before] {
						ref, _ := feeds.ParseMessageRef(k)
						if _, err := st.Get(ref); err != nil {
							t.Fatalf("%s not stored: %v", k, err)
						}
					}
				})
			})
		}
	})

	t.Run("truncated gzip keeps what was read", func(t *testing.T) {
		data, err := os.ReadFile(gz)
		if err != nil {
			t.Fatal(err)
		}
		in := filepath.Join(t.TempDir(), "cut.jsonl.gz")
		if err := os.WriteFile(in, data[:len(data)*3/4], 0o600); err != nil {
			t.Fatal(err)
		}
		repo := filepath.Join(t.TempDir(), "repo")
		res, out := importRun(t, nil, nil, "--repo", repo, in)
		if res.code != 2 {
			t.Fatalf("exit %d, want 2: %s", res.code, res.stderr)
		}
		got := importSummaryOf(t, out)
		if got.Imported < importChunk || got.Imported >= n || got.Invalid != 0 {
			t.Fatalf("summary %+v: want the readable part imported", got)
		}
		withStore(t, repo, func(st *store.Store) {
			if msgs, _ := st.Count(); msgs != int64(got.Imported) {
				t.Errorf("store holds %d messages, summary says %d", msgs, got.Imported)
			}
			for _, k := range fx.keys[:got.Imported] {
				ref, _ := feeds.ParseMessageRef(k)
				if _, err := st.Get(ref); err != nil {
					t.Fatalf("%s not stored: %v", k, err)
				}
			}
		})
	})

	t.Run("progress", func(t *testing.T) {
		repo := filepath.Join(t.TempDir(), "repo")
		res, _ := importRun(t, nil, nil, "--repo", repo, "--progress", "1ns", gz)
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		if !strings.Contains(res.stderr, "messages read") || !strings.Contains(res.stderr, "finished: "+itoa(n)+" messages read, "+itoa(n)+" stored") {
			t.Errorf("no progress on stderr: %q", res.stderr)
		}
		// A run shorter than the interval prints nothing (an hour, so a
		// loaded CI machine cannot make this run "long").
		res, _ = importRun(t, nil, nil, "--repo", repo, "--progress", "1h", gz)
		if res.stderr != "" {
			t.Errorf("a run shorter than --progress printed progress: %q", res.stderr)
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			args   []string
			stderr string
		}{
			{"no arguments", nil, "no input files"},
			{"unknown flag", []string{"--bogus", gz}, "unknown flag"},
			{"missing file", []string{"/nonexistent/x.jsonl"}, "no such file"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				repo := filepath.Join(t.TempDir(), "repo")
				res, _ := importRun(t, nil, nil, append([]string{"--repo", repo}, tc.args...)...)
				if res.code != 2 || !strings.Contains(res.stderr, tc.stderr) {
					t.Errorf("exit %d stderr %q; want 2 and %q", res.code, res.stderr, tc.stderr)
				}
				if _, err := os.Stat(repo); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a failed run created the repo (%v)", err)
				}
			})
		}
	})

	t.Run("daemon", func(t *testing.T) {
		repo := filepath.Join(t.TempDir(), "r")
		node, stop := startDaemon(t, repo)
		part := fx.lines[:1500]
		in := writeLines(t, t.TempDir(), "part.jsonl", part)
		res, lines := importRun(t, nil, nil, "--repo", repo, in)
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		want := importSummary{Messages: len(part), Imported: len(part), Feeds: distinctAuthors(t, part), Via: "daemon"}
		if got := importSummaryOf(t, lines); got != want {
			t.Errorf("summary %+v, want %+v", got, want)
		}
		// Readable through the daemon and in its store.
		c, err := client.DialRepo(context.Background(), repo)
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range fx.keys[:len(part)] {
			if i%100 == 0 {
				v, err := c.Get(context.Background(), k, false)
				if err != nil || !json.Valid(v) {
					t.Fatalf("get %s: %v", k, err)
				}
			}
			ref, _ := feeds.ParseMessageRef(k)
			if _, err := node.Store().Get(ref); err != nil {
				t.Fatalf("%s not in the daemon's store: %v", k, err)
			}
		}
		c.Close()

		// The whole file: the first part is duplicate, the rest new; an
		// invalid message and a feed not starting at 1 are skipped.
		e := newTestFeed(t, 25, 3)
		full := append(append([]string{}, fx.lines...), flipSig(t, e.seq(1)), record(e.seq(2)))
		in = writeLines(t, t.TempDir(), "full.jsonl", full)
		res, lines = importRun(t, nil, nil, "--repo", repo, in)
		if res.code != 1 {
			t.Fatalf("second run: exit %d, want 1: %s", res.code, res.stderr)
		}
		checkIssues(t, lines, []wantIssue{{line: n + 1, error: "signature"}, {line: n + 2, error: "not in the store"}})
		want = importSummary{Messages: n + 2, Imported: n - len(part), Duplicate: len(part), Invalid: 2, Feeds: len(fx.authors) + 1, Via: "daemon"}
		if got := importSummaryOf(t, lines); got != want {
			t.Errorf("second run: summary %+v, want %+v", got, want)
		}
		stop()
		withStore(t, repo, func(st *store.Store) {
			msgs, _ := st.Count()
			if msgs != int64(n) {
				t.Errorf("store holds %d messages, want %d", msgs, n)
			}
			checkStored(t, st, nil, []feeds.MessageRef{e.seq(1).Key, e.seq(2).Key, keyOf(t, full[n])})
			for _, k := range fx.keys {
				ref, _ := feeds.ParseMessageRef(k)
				if _, err := st.Get(ref); err != nil {
					t.Fatalf("%s not stored: %v", k, err)
				}
			}
		})
	})
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// startDaemon runs a daemon for repo in this process (unix socket only)
// until stop is called or the test ends.
func startDaemon(t testing.TB, repo string) (*sbot.Node, func()) {
	t.Helper()
	cfg := sbot.Defaults(repo)
	cfg.Listen = "off"
	node, err := sbot.New(sbot.Options{Config: cfg})
	if err != nil {
		t.Fatalf("sbot.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- node.Serve(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := client.DialRepo(ctx, repo)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("daemon did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	}
	t.Cleanup(stop)
	return node, stop
}

// BenchmarkImport measures import of the fixture sample (5,000 messages,
// 50 feeds) into an empty repo: straight into the store, and through a
// daemon (concurrent adds, one feed per call chain).
func BenchmarkImport(b *testing.B) {
	fx := readFixture(b)
	path, err := filepath.Abs(fixturePath)
	if err != nil {
		b.Fatal(err)
	}
	for _, daemon := range []bool{false, true} {
		name := "store"
		if daemon {
			name = "daemon"
		}
		b.Run(name, func(b *testing.B) {
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				repo := filepath.Join(b.TempDir(), "r")
				stop := func() {}
				if daemon {
					_, stop = startDaemon(b, repo)
				}
				b.StartTimer()
				start := time.Now()
				err := runImport(context.Background(), importOptions{repo: repo, files: []string{path}, stdout: io.Discard, stderr: io.Discard, progress: time.Hour})
				elapsed += time.Since(start)
				b.StopTimer()
				stop()
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(fx.lines))*float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}
