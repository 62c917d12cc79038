package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// fsckFixture is a closed store of fsckFeeds feeds with fsckPerFeed
// messages each, appended interleaved (seq 1 is feed 0 sequence 1, seq 2
// feed 1 sequence 1, …), with the count indexer at version 1.
const (
	fsckFeeds   = 4
	fsckPerFeed = 10
	fsckRecords = fsckFeeds * fsckPerFeed
)

func fsckFixture(t *testing.T) (dir string, recs []Record) {
	t.Helper()
	dir = t.TempDir()
	s, err := Open(dir, Options{Indexers: []Indexer{newCountIndex(1)}})
	if err != nil {
		t.Fatal(err)
	}
	for sq := int64(1); sq <= fsckPerFeed; sq++ {
		for f := range fsckFeeds {
			r := testMsg(testFeed(f), sq, "")
			seqs := mustAppend(t, s, []Record{r})
			r.Seq = seqs[0]
			recs = append(recs, r)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, recs
}

// withRawDB runs fn on the Pebble database of the closed store in dir.
func withRawDB(t *testing.T, dir string, fn func(db *pebble.DB)) {
	t.Helper()
	db := rawDB(t, dir)
	fn(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func rawGet(t *testing.T, db *pebble.DB, key []byte) []byte {
	t.Helper()
	v, c, err := db.Get(key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	defer c.Close()
	return bytes.Clone(v)
}

func rawSet(t *testing.T, db *pebble.DB, key, v []byte) {
	t.Helper()
	if err := db.Set(key, v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

func rawDeleteRange(t *testing.T, db *pebble.DB, prefix []byte) {
	t.Helper()
	if err := db.DeleteRange(prefix, prefixEnd(prefix), pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// quarantinedBytes returns the values under x/corrupt/<seq>.
func quarantinedBytes(t *testing.T, dir string, seq int64) [][]byte {
	t.Helper()
	var out [][]byte
	withRawDB(t, dir, func(db *pebble.DB) {
		p := binary.BigEndian.AppendUint64(append([]byte{}, prefixCorrupt...), uint64(seq))
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			out = append(out, bytes.Clone(it.Value()))
		}
	})
	return out
}

func kindsOf(ps []Problem) []ProblemKind {
	var out []ProblemKind
	for _, p := range ps {
		if !slices.Contains(out, p.Kind) {
			out = append(out, p.Kind)
		}
	}
	slices.Sort(out)
	return out
}

func sortedKinds(ks ...ProblemKind) []ProblemKind {
	slices.Sort(ks)
	return ks
}

func TestFsck(t *testing.T) {
	torn := func(seq int64) func(*testing.T, *pebble.DB) []byte {
		return func(t *testing.T, db *pebble.DB) []byte {
			v := rawGet(t, db, logKey(nil, seq))
			cut := v[:recordHeaderSize-7] // a write cut short
			rawSet(t, db, logKey(nil, seq), cut)
			return cut
		}
	}
	flip := func(seq int64) func(*testing.T, *pebble.DB) []byte {
		return func(t *testing.T, db *pebble.DB) []byte {
			v := rawGet(t, db, logKey(nil, seq))
			v[len(v)-3] ^= 0x40
			rawSet(t, db, logKey(nil, seq), v)
			return v
		}
	}
	tests := []struct {
		name   string
		damage func(*testing.T, *pebble.DB) []byte // returns the damaged record's bytes, if any
		// lost is the receive seqs whose records are gone after the repair.
		lost []int64
		// openFails: the damage keeps Open from working before the repair.
		openFails bool
		kinds     []ProblemKind
		left      []ProblemKind // after the repair
	}{
		{name: "clean", damage: func(*testing.T, *pebble.DB) []byte { return nil }},
		{
			name: "torn tail", damage: torn(fsckRecords), lost: []int64{fsckRecords}, openFails: true,
			kinds: []ProblemKind{ProblemTornTail},
		},
		{
			name: "torn tail of two records",
			damage: func(t *testing.T, db *pebble.DB) []byte {
				torn(fsckRecords-1)(t, db)
				return torn(fsckRecords)(t, db)
			},
			lost: []int64{fsckRecords - 1, fsckRecords}, openFails: true,
			kinds: []ProblemKind{ProblemTornTail},
		},
		{
			name: "corrupted middle record", damage: flip(fsckRecords / 2), lost: []int64{fsckRecords / 2},
			kinds: []ProblemKind{ProblemCorruptRecord},
		},
		{
			name: "derived keyspaces deleted",
			damage: func(t *testing.T, db *pebble.DB) []byte {
				rawDeleteRange(t, db, prefixKey)
				rawDeleteRange(t, db, prefixFeed)
				rawDeleteRange(t, db, prefixHead)
				if err := db.Delete(keyMetaLast, pebble.Sync); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			kinds: sortedKinds(ProblemIndex, ProblemHead, ProblemMeta),
		},
		{
			name: "index entries point elsewhere, head and meta wrong",
			damage: func(t *testing.T, db *pebble.DB) []byte {
				r := testMsg(testFeed(1), 3, "")
				rawSet(t, db, byKeyKey(nil, r.Key), u64(1))
				rawSet(t, db, byFeedKey(nil, r.Author, 3), u64(2))
				rawSet(t, db, byFeedKey(nil, r.Author, 99), u64(2)) // extra
				h := FeedLatest{Author: r.Author, Sequence: 3, Key: r.Key, Seq: 10}
				rawSet(t, db, headKey(nil, r.Author), encodeHead(h))
				rawSet(t, db, keyMetaLast, u64(fsckRecords-5))
				return nil
			},
			kinds: sortedKinds(ProblemIndex, ProblemHead, ProblemMeta),
		},
		{
			name: "stale indexer version",
			damage: func(t *testing.T, db *pebble.DB) []byte {
				rawSet(t, db, indexVersionKey("count"), u64(7))
				return nil
			},
			kinds: []ProblemKind{ProblemStaleIndex},
		},
		{
			name: "record lost without quarantine",
			damage: func(t *testing.T, db *pebble.DB) []byte {
				if err := db.Delete(logKey(nil, 6), pebble.Sync); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			lost:  []int64{6},
			kinds: sortedKinds(ProblemLogGap, ProblemFeedSequence, ProblemIndex),
			left:  sortedKinds(ProblemLogGap, ProblemFeedSequence),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir, recs := fsckFixture(t)
			var damaged []byte
			withRawDB(t, dir, func(db *pebble.DB) { damaged = tc.damage(t, db) })
			if tc.openFails {
				if s, err := Open(dir, Options{}); err == nil {
					s.Close()
					t.Fatal("Open of the damaged store succeeded")
				} else if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Open: %v, want ErrCorrupt", err)
				}
			}

			// Check only: report, change nothing.
			opts := FsckOptions{Indexers: []Indexer{newCountIndex(1)}}
			rep, err := Fsck(ctx, dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := kindsOf(rep.Problems); !slices.Equal(got, tc.kinds) {
				t.Fatalf("problems %v, want kinds %v", rep.Problems, tc.kinds)
			}
			if rep.Found != len(rep.Problems) || rep.Left != rep.Found || rep.Repaired {
				t.Fatalf("report %+v: want every problem listed and left", rep)
			}
			if again, err := Fsck(ctx, dir, opts); err != nil || again.Found != rep.Found {
				t.Fatalf("second check found %d (%v), first %d: the check changed the store", again.Found, err, rep.Found)
			}
			if len(tc.kinds) == 0 {
				if rep.Records != fsckRecords || rep.Feeds != fsckFeeds || rep.Tail != fsckRecords {
					t.Fatalf("clean report %+v", rep)
				}
				return
			}

			opts.Repair = true
			rep, err = Fsck(ctx, dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Repaired || !slices.Equal(kindsOf(rep.Remaining), tc.left) || rep.Left != len(rep.Remaining) {
				t.Fatalf("after repair: remaining %v, want kinds %v", rep.Remaining, tc.left)
			}
			for _, p := range rep.Problems {
				if p.Repaired != p.Kind.repairable() {
					t.Errorf("problem %+v: repaired flag wrong", p)
				}
			}
			if !slices.Equal(rep.IndexesToRebuild, []string{"count"}) {
				t.Errorf("indexes to rebuild %v, want [count]", rep.IndexesToRebuild)
			}
			if want := fsckRecords - int64(len(tc.lost)); rep.Records != want {
				t.Errorf("records after repair %d, want %d", rep.Records, want)
			}
			if damaged != nil {
				for _, seq := range tc.lost {
					q := quarantinedBytes(t, dir, seq)
					if len(q) != 1 {
						t.Fatalf("seq %d: %d quarantined values, want 1", seq, len(q))
					}
					if seq == tc.lost[len(tc.lost)-1] && !bytes.Equal(q[0], damaged) {
						t.Errorf("seq %d: quarantined bytes differ from the damaged record", seq)
					}
				}
				if rep.Quarantined != int64(len(tc.lost)) {
					t.Errorf("quarantined %d, want %d", rep.Quarantined, len(tc.lost))
				}
			}

			// The store opens, rebuilds the indexer, and holds every other record.
			ix := newCountIndex(1)
			s, err := Open(dir, Options{Indexers: []Indexer{ix}})
			if err != nil {
				t.Fatalf("Open after repair: %v", err)
			}
			defer s.Close()
			if ix.staged != int(rep.Records) {
				t.Errorf("indexer staged %d records at Open, want a rebuild of %d", ix.staged, rep.Records)
			}
			got, err := collect(s.Log(ctx, LogQuery{}))
			if err != nil {
				t.Fatal(err)
			}
			var want []Record
			for _, r := range recs {
				if !slices.Contains(tc.lost, r.Seq) {
					want = append(want, r)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("log has %d records, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].Seq != want[i].Seq || !sameRecord(got[i], want[i], true) {
					t.Fatalf("record %d: got seq %d %s, want seq %d %s", i, got[i].Seq, got[i].Key, want[i].Seq, want[i].Key)
				}
				if _, err := s.Get(want[i].Key); err != nil {
					t.Fatalf("Get %s: %v", want[i].Key, err)
				}
			}
			counts := ix.snapshot()
			for f := range fsckFeeds {
				n := int64(0)
				for _, r := range want {
					if r.Author == testFeed(f) {
						n++
					}
				}
				if counts[testFeed(f)] != n {
					t.Errorf("count index of feed %d: %d, want %d", f, counts[testFeed(f)], n)
				}
			}
			for _, seq := range tc.lost {
				if _, err := s.Get(recs[seq-1].Key); !errors.Is(err, ErrNotFound) {
					t.Errorf("Get of the lost record %d: %v, want ErrNotFound", seq, err)
				}
			}
			verr := s.Verify(ctx)
			if len(tc.left) == 0 && verr != nil {
				t.Errorf("Verify after repair: %v", verr)
			}
			if len(tc.left) > 0 && !errors.Is(verr, ErrCorrupt) {
				t.Errorf("Verify after a repair that left %v: %v, want ErrCorrupt", tc.left, verr)
			}
			if len(tc.left) > 0 {
				return
			}
			// A lost message can be appended again (a peer sends it back).
			for _, seq := range tc.lost {
				r := recs[seq-1]
				if latest, _, _, _ := s.Latest(r.Author); latest != r.Sequence-1 {
					continue // a later message of the feed is held: it fills a gap
				}
				r.Seq = 0
				mustAppend(t, s, []Record{r})
			}
			if err := s.Verify(ctx); err != nil {
				t.Errorf("Verify after appending again: %v", err)
			}
		})
	}
}

func TestFsckLocked(t *testing.T) {
	dir, _ := fsckFixture(t)
	s := openTest(t, dir)
	_, err := Fsck(context.Background(), dir, FsckOptions{Repair: true})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Fsck of an open store: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Fsck(context.Background(), dir, FsckOptions{}); err != nil {
		t.Fatalf("Fsck after Close: %v", err)
	}
}

func TestFsckNoStore(t *testing.T) {
	_, err := Fsck(context.Background(), t.TempDir(), FsckOptions{})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Fsck of an empty directory: %v, want ErrNotFound", err)
	}
}

func TestFsckMaxProblemsAndProgress(t *testing.T) {
	dir, _ := fsckFixture(t)
	withRawDB(t, dir, func(db *pebble.DB) { rawDeleteRange(t, db, prefixHead) })
	var calls int
	var last, total int64
	rep, err := Fsck(context.Background(), dir, FsckOptions{
		MaxProblems: 2,
		Progress: func(d, tot int64) {
			calls++
			if d < last {
				t.Errorf("progress went back from %d to %d", last, d)
			}
			last, total = d, tot
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Found != fsckFeeds || rep.Counts[ProblemHead] != fsckFeeds || len(rep.Problems) != 2 {
		t.Fatalf("found %d, counts %v, listed %d: want %d found, 2 listed", rep.Found, rep.Counts, len(rep.Problems), fsckFeeds)
	}
	if calls == 0 || last != fsckRecords || total != fsckRecords {
		t.Fatalf("progress: %d calls, last %d/%d, want %d/%d", calls, last, total, fsckRecords, fsckRecords)
	}
}

// TestVerifyToleratesQuarantine: a gap left by a quarantined record passes
// Verify; the same gap without quarantine does not.
func TestVerifyToleratesQuarantine(t *testing.T) {
	dir, _ := fsckFixture(t)
	withRawDB(t, dir, func(db *pebble.DB) {
		if err := db.Delete(logKey(nil, 7), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := Fsck(context.Background(), dir, FsckOptions{Repair: true}); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, dir)
	if err := s.Verify(context.Background()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify with an unexplained gap: %v, want ErrCorrupt", err)
	}
	s.Close()
	withRawDB(t, dir, func(db *pebble.DB) {
		k := binary.BigEndian.AppendUint64(append([]byte{}, prefixCorrupt...), 7)
		rawSet(t, db, binary.BigEndian.AppendUint64(k, 1), []byte("lost"))
	})
	s = openTest(t, dir)
	if err := s.Verify(context.Background()); err != nil {
		t.Fatalf("Verify with a quarantined gap: %v", err)
	}
}
