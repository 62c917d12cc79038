package contacts

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/store"
)

// feedWriter appends records of made-up feeds whose values carry content.
type feedWriter struct {
	seqs map[feeds.FeedRef]int64
}

func (w *feedWriter) rec(author feeds.FeedRef, content []byte) store.Record {
	if w.seqs == nil {
		w.seqs = map[feeds.FeedRef]int64{}
	}
	w.seqs[author]++
	v := fmt.Sprintf(`{"previous":null,"author":%q,"sequence":%d,"timestamp":1,"hash":"sha256","content":%s,"signature":"x"}`,
		author.String(), w.seqs[author], content)
	return store.Record{Key: feeds.MessageRef(sha256.Sum256([]byte(v))), Author: author, Sequence: w.seqs[author], Value: []byte(v)}
}

func openWith(t *testing.T, dir string, g *Graph) *store.Store {
	t.Helper()
	st, err := store.Open(dir, store.Options{Indexers: []store.Indexer{g}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// rebuilt is the graph built by scanning the whole log.
func rebuilt(t *testing.T, st *store.Store) *Graph {
	t.Helper()
	g, _, err := Build(func(yield func([]byte, error) bool) {
		for rec, err := range st.Log(context.Background(), store.LogQuery{Old: true}) {
			if !yield(rec.Value, err) {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestPersistedGraph: the graph written in the append batches and loaded
// at open equals the graph rebuilt from the log, with random follows,
// unfollows, blocks and unblocks, several in one batch.
func TestPersistedGraph(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	g := New()
	st := openWith(t, dir, g)
	rng := rand.New(rand.NewPCG(1, 2))
	var w feedWriter
	fields := []string{`,"following":true`, `,"following":false`, `,"blocking":true`, `,"blocking":false`, `,"following":true,"blocking":false`}
	for range 50 {
		var batch []store.Record
		for range 1 + rng.IntN(8) {
			a, b := ref(byte(rng.IntN(6))), ref(byte(rng.IntN(6)))
			if rng.IntN(4) == 0 {
				batch = append(batch, w.rec(a, []byte(`{"type":"post","text":"contact"}`)))
				continue
			}
			batch = append(batch, w.rec(a, contact(b, fields[rng.IntN(len(fields))])))
		}
		if _, err := st.Append(batch); err != nil {
			t.Fatal(err)
		}
	}
	want := rebuilt(t, st)
	if want.Edges() == 0 {
		t.Fatal("test wrote no edges")
	}
	if !g.Equal(want) {
		t.Fatal("live graph differs from the graph rebuilt from the log")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	loaded := New()
	st = openWith(t, dir, loaded)
	defer st.Close()
	if !loaded.Equal(want) {
		t.Fatal("graph loaded at open differs from the graph rebuilt from the log")
	}
}

// TestPersistedGraphRebuild: a store written without the index gets it
// built at open, and changes notify OnChange after commit only.
func TestPersistedGraphRebuild(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var w feedWriter
	me, a := ref(1), ref(2)
	if _, err := st.Append([]store.Record{w.rec(me, contact(a, `,"following":true`))}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	g := New()
	var changed []feeds.FeedRef
	g.OnChange(func(f feeds.FeedRef) { changed = append(changed, f) })
	st = openWith(t, dir, g)
	defer st.Close()
	if !g.Follows(me, a) {
		t.Fatal("rebuilt graph lacks the follow")
	}
	changed = nil
	// A failed append changes nothing.
	bad := w.rec(me, contact(a, `,"blocking":true`))
	bad.Sequence = 7
	if _, err := st.Append([]store.Record{bad}); err == nil {
		t.Fatal("out-of-order append succeeded")
	}
	if g.Blocks(me, a) || len(changed) != 0 {
		t.Fatalf("failed append changed the graph (blocks %v, changed %v)", g.Blocks(me, a), changed)
	}
	w.seqs[me]--
	if _, err := st.Append([]store.Record{w.rec(me, contact(a, `,"blocking":true`))}); err != nil {
		t.Fatal(err)
	}
	if !g.Blocks(me, a) || g.Follows(me, a) || len(changed) != 1 || changed[0] != me {
		t.Fatalf("after block: blocks %v follows %v changed %v", g.Blocks(me, a), g.Follows(me, a), changed)
	}
}
