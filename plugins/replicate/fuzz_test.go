package replicate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/feedlog"
	"github.com/cask-ssb/cask/feeds/store"
)

// FuzzIngest feeds what a peer could send (newline-separated message
// values, as EBT batches or as a history stream of one feed) through the
// whole ingest path into a real store. Invariants: the store passes
// store.Verify; every stored message is a valid, signed chain of a
// requested feed (a history stream stores only its feed); the outcome accounts for every message; a batch that
// stored less than it held or kept is refused with ErrInvalid.
func FuzzIngest(f *testing.F) {
	a, b := keys(f, "a"), keys(f, "b")
	A := chain(f, a, 6, "a")
	B := chain(f, b, 3, "b")
	join := func(ms ...[]json.RawMessage) []byte { return bytes.Join(toBytes(cat(ms...)), []byte("\n")) }
	f.Add(join(A), false)
	f.Add(join(A), true)
	f.Add(join(A[:3], B, A[3:]), false)
	f.Add(join(A[:3], B, A[3:]), true)
	f.Add(join(A[:2], one(badSig(A[2])), A[3:]), false)
	f.Add(join(A[:4], one(fork(f, a, A, 3)), A[4:]), false)
	f.Add(join(A[:3], A[:3], A[4:]), true)
	peer := keys(f, "peer").ID
	// One store and writer per fuzzing process (opening Pebble per input
	// would make the fuzzer crawl): inputs accumulate, and the invariants
	// hold for the union of everything ingested.
	st, err := store.Open(f.TempDir(), store.Options{CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	w, err := feedlog.New(feedlog.Options{Store: st})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(w.Close)
	f.Fuzz(func(t *testing.T, data []byte, legacy bool) {
		var raw []json.RawMessage
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(line) > 0 {
				raw = append(raw, json.RawMessage(line))
			}
		}
		if len(raw) > 64 {
			raw = raw[:64]
		}
		g := &Ingester{W: w, Policy: policy{map[feeds.FeedRef]bool{a.ID: true, b.ID: true}}}
		var only *feeds.FeedRef
		if legacy {
			only = &a.ID
		}
		ctx := context.Background()
		var before int64
		if legacy {
			before, _, _, _ = st.Latest(b.ID)
		}
		// Twice: the second pass sees everything as held or refused.
		for pass := range 2 {
			out, err := g.IngestBatch(ctx, peer, only, raw)
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("pass %d: error not ErrInvalid: %v", pass, err)
			}
			if err == nil && (out.Refused != 0 || out.Kept+out.Held != len(raw)) {
				t.Fatalf("pass %d: accepted batch of %d, outcome %+v", pass, len(raw), out)
			}
			if err != nil && out.Kept+out.Held+out.Refused != len(raw) {
				t.Fatalf("pass %d: outcome %+v does not account for %d messages", pass, out, len(raw))
			}
			if pass == 1 && out.Kept != 0 {
				t.Fatalf("second pass stored %d messages again", out.Kept)
			}
		}
		if after, _, _, _ := st.Latest(b.ID); legacy && after != before {
			t.Fatalf("the history stream of %s stored messages of %s", a.ID, b.ID)
		}
		if err := st.Verify(ctx); err != nil {
			t.Fatal(err)
		}
		for fl, err := range st.Feeds() {
			if err != nil {
				t.Fatal(err)
			}
			if fl.Author != a.ID && fl.Author != b.ID {
				t.Fatalf("stored feed %s that was not requested", fl.Author)
			}
			var state *classic.FeedState
			for rec, err := range st.History(ctx, store.HistoryQuery{Author: fl.Author, Old: true}) {
				if err != nil {
					t.Fatal(err)
				}
				m, err := classic.Parse(rec.Value)
				if err != nil {
					t.Fatalf("stored message does not parse: %v", err)
				}
				if err := m.VerifySignature(nil); err != nil {
					t.Fatalf("stored message: %v", err)
				}
				if err := classic.ValidateNext(state, m); err != nil {
					t.Fatalf("stored chain: %v", err)
				}
				s := classic.StateAfter(m)
				state = &s
			}
		}
	})
}

func toBytes(ms []json.RawMessage) [][]byte {
	out := make([][]byte, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}
