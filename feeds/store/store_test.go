package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cockroachdb/pebble/v2"
)

func TestAppendRules(t *testing.T) {
	a, b := testFeed(1), testFeed(2)
	stored := chain(a, 1, 3)
	fork := testMsg(a, 4, "fork")
	tests := []struct {
		name    string
		batch   []Record
		wantErr error
		wantSeq []int64
	}{
		{"empty batch", nil, nil, nil},
		{"next of stored feed", chain(a, 4, 5), nil, []int64{4, 5}},
		{"new feed starts at 1", chain(b, 1, 2), nil, []int64{4, 5}},
		{"interleaved feeds", []Record{testMsg(a, 4, ""), testMsg(b, 1, ""), testMsg(a, 5, ""), testMsg(b, 2, "")}, nil, []int64{4, 5, 6, 7}},
		{"new feed at 2", chain(b, 2, 2), ErrOutOfOrder, nil},
		{"sequence 0", []Record{testMsg(b, 0, "")}, ErrOutOfOrder, nil},
		{"negative sequence", []Record{testMsg(b, -1, "")}, ErrOutOfOrder, nil},
		{"gap after stored", chain(a, 5, 5), ErrOutOfOrder, nil},
		{"rewind", chain(a, 3, 3)[:1:1], ErrDuplicate, nil},
		{"fork of stored sequence", []Record{testMsg(a, 3, "fork")}, ErrOutOfOrder, nil},
		{"gap inside batch", []Record{testMsg(a, 4, ""), testMsg(a, 6, "")}, ErrOutOfOrder, nil},
		{"repeat inside batch", []Record{testMsg(a, 4, ""), testMsg(a, 4, "other")}, ErrOutOfOrder, nil},
		{"valid then invalid", []Record{testMsg(b, 1, ""), testMsg(a, 4, ""), testMsg(b, 3, "")}, ErrOutOfOrder, nil},
		{"key already stored", []Record{testMsg(b, 1, ""), stored[0]}, ErrDuplicate, nil},
		{"key twice in batch", []Record{fork, {Key: fork.Key, Author: b, Sequence: 1, Value: []byte("{}")}}, ErrDuplicate, nil},
		{"empty value", []Record{{Key: fork.Key, Author: a, Sequence: 4}}, ErrInvalidRecord, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, t.TempDir())
			mustAppend(t, s, stored)
			seqs, err := s.Append(tt.batch)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Append error = %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(seqs, tt.wantSeq) {
				t.Fatalf("seqs = %v, want %v", seqs, tt.wantSeq)
			}
			wantLast := int64(3 + len(tt.wantSeq))
			if s.LastSeq() != wantLast {
				t.Fatalf("LastSeq = %d, want %d", s.LastSeq(), wantLast)
			}
			all, err := collect(s.Log(context.Background(), LogQuery{}))
			if err != nil || len(all) != int(wantLast) {
				t.Fatalf("log has %d records (%v), want %d", len(all), err, wantLast)
			}
			if err != nil {
				return
			}
			if err := s.Verify(context.Background()); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tt.wantErr != nil {
				if seq, key, _, _ := s.Latest(a); seq != 3 || key != stored[2].Key {
					t.Errorf("failed batch moved head of a to %d", seq)
				}
				if _, _, ok, _ := s.Latest(b); ok {
					t.Errorf("failed batch created feed b")
				}
			}
		})
	}
}

func TestAppendErrorNamesFeedAndSequences(t *testing.T) {
	s := openTest(t, t.TempDir())
	a := testFeed(1)
	mustAppend(t, s, chain(a, 1, 2))
	_, err := s.Append(chain(a, 7, 7))
	if !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{a.String(), "sequence 7", "want 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestAppendCopiesAndFillsTimestamp(t *testing.T) {
	s := openTest(t, t.TempDir())
	a := testFeed(1)
	recs := chain(a, 1, 2)
	recs[0].Timestamp = 0
	recs[1].Seq = 99 // ignored
	before := float64(time.Now().UnixMilli())
	seqs := mustAppend(t, s, recs)
	after := float64(time.Now().UnixMilli())
	if !slices.Equal(seqs, []int64{1, 2}) {
		t.Fatalf("seqs = %v", seqs)
	}
	if recs[0].Timestamp != 0 || recs[1].Seq != 99 {
		t.Errorf("Append modified the caller's records")
	}
	want := chain(a, 1, 2)
	recs[1].Value[0] = 'X' // the store must hold its own copy
	r0, err := s.Get(want[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	if r0.Timestamp < before || r0.Timestamp > after {
		t.Errorf("filled timestamp %v not in [%v, %v]", r0.Timestamp, before, after)
	}
	r1, err := s.At(2)
	if err != nil {
		t.Fatal(err)
	}
	if !sameRecord(r1, want[1], true) || r1.Seq != 2 {
		t.Errorf("At(2) = %+v, want %+v", r1, want[1])
	}
}

func TestReads(t *testing.T) {
	s := openTest(t, t.TempDir())
	a, b, c := testFeed(1), testFeed(2), testFeed(3)
	recs := []Record{testMsg(a, 1, ""), testMsg(b, 1, ""), testMsg(a, 2, ""), testMsg(b, 2, ""), testMsg(a, 3, "")}
	mustAppend(t, s, recs[:2])
	mustAppend(t, s, recs[2:])
	for i, want := range recs {
		t.Run(fmt.Sprintf("record%d", i), func(t *testing.T) {
			for name, get := range map[string]func() (Record, error){
				"Get":           func() (Record, error) { return s.Get(want.Key) },
				"GetBySequence": func() (Record, error) { return s.GetBySequence(want.Author, want.Sequence) },
				"At":            func() (Record, error) { return s.At(int64(i + 1)) },
			} {
				got, err := get()
				if err != nil || !sameRecord(got, want, true) || got.Seq != int64(i+1) {
					t.Errorf("%s = %+v, %v; want seq %d %+v", name, got, err, i+1, want)
				}
			}
		})
	}
	notFound := []struct {
		name string
		get  func() (Record, error)
	}{
		{"Get unknown key", func() (Record, error) { return s.Get(feeds.MessageRef{1}) }},
		{"GetBySequence unknown feed", func() (Record, error) { return s.GetBySequence(c, 1) }},
		{"GetBySequence beyond head", func() (Record, error) { return s.GetBySequence(a, 4) }},
		{"GetBySequence 0", func() (Record, error) { return s.GetBySequence(a, 0) }},
		{"At 0", func() (Record, error) { return s.At(0) }},
		{"At beyond tail", func() (Record, error) { return s.At(6) }},
	}
	for _, tt := range notFound {
		if _, err := tt.get(); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", tt.name, err)
		}
	}
	heads := []struct {
		feed feeds.FeedRef
		seq  int64
		key  feeds.MessageRef
		ok   bool
	}{
		{a, 3, recs[4].Key, true},
		{b, 2, recs[3].Key, true},
		{c, 0, feeds.MessageRef{}, false},
	}
	for _, h := range heads {
		seq, key, ok, err := s.Latest(h.feed)
		if err != nil || seq != h.seq || key != h.key || ok != h.ok {
			t.Errorf("Latest(%s) = %d %s %v %v; want %d %s %v", h.feed, seq, key, ok, err, h.seq, h.key, h.ok)
		}
	}
	var got []FeedLatest
	for f, err := range s.Feeds() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f)
	}
	want := []FeedLatest{{a, 3, recs[4].Key, 5}, {b, 2, recs[3].Key, 4}}
	slices.SortFunc(want, func(x, y FeedLatest) int { return strings.Compare(string(x.Author[:]), string(y.Author[:])) })
	if !slices.Equal(got, want) {
		t.Errorf("Feeds = %+v, want %+v", got, want)
	}
	if m, f := s.Count(); m != 5 || f != 2 {
		t.Errorf("Count = %d, %d; want 5, 2", m, f)
	}
	if s.LastSeq() != 5 {
		t.Errorf("LastSeq = %d", s.LastSeq())
	}
}

func TestFeedsManyChunks(t *testing.T) {
	s := openTest(t, t.TempDir())
	const n = feedsChunk*2 + 7
	var batch []Record
	for i := range n {
		batch = append(batch, testMsg(testFeed(i), 1, ""))
	}
	mustAppend(t, s, batch)
	seen := map[feeds.FeedRef]bool{}
	var prev []byte
	for f, err := range s.Feeds() {
		if err != nil {
			t.Fatal(err)
		}
		if prev != nil && string(prev) >= string(f.Author[:]) {
			t.Fatalf("Feeds not in author order")
		}
		prev = append(prev[:0], f.Author[:]...)
		seen[f.Author] = true
	}
	if len(seen) != n {
		t.Errorf("Feeds yielded %d feeds, want %d", len(seen), n)
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: err = %v, want ErrLocked", err)
	}
	for _, want := range []string{dir, "pid " + strconv.Itoa(os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	a, b := testFeed(1), testFeed(2)
	mustAppend(t, s, append(chain(a, 1, 10), chain(b, 1, 5)...))
	before, _ := collect(s.Log(context.Background(), LogQuery{}))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	after, err := collect(s.Log(context.Background(), LogQuery{}))
	if err != nil || len(after) != 15 {
		t.Fatalf("reopened log: %d records, %v", len(after), err)
	}
	for i := range before {
		if !sameRecord(before[i], after[i], true) || before[i].Seq != after[i].Seq {
			t.Errorf("record %d changed across reopen", i)
		}
	}
	if seq, _, _, _ := s.Latest(a); seq != 10 {
		t.Errorf("Latest(a) = %d after reopen", seq)
	}
	if m, f := s.Count(); m != 15 || f != 2 {
		t.Errorf("Count = %d, %d after reopen", m, f)
	}
	if seqs := mustAppend(t, s, chain(b, 6, 6)); seqs[0] != 16 {
		t.Errorf("append after reopen got seq %d, want 16", seqs[0])
	}
}

func TestClosed(t *testing.T) {
	s := openTest(t, t.TempDir())
	a := testFeed(1)
	mustAppend(t, s, chain(a, 1, 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := map[string]func() error{
		"Close":         s.Close,
		"Append":        func() error { _, err := s.Append(chain(a, 2, 2)); return err },
		"Get":           func() error { _, err := s.Get(testMsg(a, 1, "").Key); return err },
		"GetBySequence": func() error { _, err := s.GetBySequence(a, 1); return err },
		"At":            func() error { _, err := s.At(1); return err },
		"Log":           func() error { _, err := collect(s.Log(ctx, LogQuery{})); return err },
		"History":       func() error { _, err := collect(s.History(ctx, HistoryQuery{Author: a})); return err },
		"Verify":        func() error { return s.Verify(ctx) },
		"Feeds": func() error {
			for _, err := range s.Feeds() {
				return err
			}
			return nil
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}

// rawDB opens the Pebble database of a closed store directly.
func rawDB(t *testing.T, dir string) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(filepath.Join(dir, "pebble"), &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{slog.New(slog.DiscardHandler)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestCorruptionDetected(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, db *pebble.DB)
		check  func(s *Store) error
	}{
		{"flipped value byte", func(t *testing.T, db *pebble.DB) {
			v, c, err := db.Get(logKey(nil, 2))
			if err != nil {
				t.Fatal(err)
			}
			b := append([]byte(nil), v...)
			c.Close()
			b[len(b)-3] ^= 1
			if err := db.Set(logKey(nil, 2), b, pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}, func(s *Store) error { _, err := s.At(2); return err }},
		{"record moved to another seq", func(t *testing.T, db *pebble.DB) {
			v, c, err := db.Get(logKey(nil, 1))
			if err != nil {
				t.Fatal(err)
			}
			b := append([]byte(nil), v...)
			c.Close()
			if err := db.Set(logKey(nil, 2), b, pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}, func(s *Store) error { _, err := collect(s.Log(context.Background(), LogQuery{})); return err }},
		{"truncated record", func(t *testing.T, db *pebble.DB) {
			if err := db.Set(logKey(nil, 2), []byte{1, 2, 3}, pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}, func(s *Store) error {
			_, err := collect(s.History(context.Background(), HistoryQuery{Author: testFeed(1)}))
			return err
		}},
		{"by-key index points elsewhere", func(t *testing.T, db *pebble.DB) {
			if err := db.Set(byKeyKey(nil, testMsg(testFeed(1), 1, "").Key), u64(2), pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}, func(s *Store) error { _, err := s.Get(testMsg(testFeed(1), 1, "").Key); return err }},
		{"dangling by-feed entry", func(t *testing.T, db *pebble.DB) {
			if err := db.Set(byFeedKey(nil, testFeed(1), 4), u64(9), pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}, func(s *Store) error { _, err := s.GetBySequence(testFeed(1), 4); return err }},
		{"missing by-key entry", func(t *testing.T, db *pebble.DB) {
			if err := db.Delete(byKeyKey(nil, testMsg(testFeed(1), 2, "").Key), pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"extra by-key entry", func(t *testing.T, db *pebble.DB) {
			if err := db.Set(byKeyKey(nil, feeds.MessageRef{7}), u64(2), pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"by-feed entry swapped", func(t *testing.T, db *pebble.DB) {
			b := db.NewBatch()
			_ = b.Set(byFeedKey(nil, testFeed(1), 1), u64(2), nil)
			_ = b.Set(byFeedKey(nil, testFeed(1), 2), u64(1), nil)
			if err := db.Apply(b, pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}, func(s *Store) error { _, err := s.GetBySequence(testFeed(1), 1); return err }},
		{"stale head", func(t *testing.T, db *pebble.DB) {
			h := FeedLatest{Sequence: 2, Key: testMsg(testFeed(1), 2, "").Key, Seq: 2}
			if err := db.Set(headKey(nil, testFeed(1)), encodeHead(h), pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir)
			mustAppend(t, s, chain(testFeed(1), 1, 3))
			s.Close()
			db := rawDB(t, dir)
			tt.damage(t, db)
			db.Close()
			s = openTest(t, dir)
			if tt.check == nil {
				// only Verify can see it
			} else if err := tt.check(s); !errors.Is(err, ErrCorrupt) {
				t.Errorf("read after damage: err = %v, want ErrCorrupt", err)
			}
			if err := s.Verify(context.Background()); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Verify after damage: err = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestOpenRepairsMeta(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	mustAppend(t, s, chain(testFeed(1), 1, 3))
	s.Close()
	db := rawDB(t, dir)
	if err := db.Set(keyMetaLast, u64(1), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s = openTest(t, dir)
	if s.LastSeq() != 3 {
		t.Errorf("LastSeq = %d, want the log tail 3", s.LastSeq())
	}
	if err := s.Verify(context.Background()); err != nil {
		t.Errorf("Verify after repair: %v", err)
	}
}
