package replicate

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/feedlog"
	"github.com/cask-ssb/cask/feeds/store"
)

func keys(t testing.TB, label string) feeds.KeyPair {
	t.Helper()
	seed := sha256.Sum256([]byte(label))
	kp, err := feeds.KeyPairFromSeed(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// chain is n signed messages of kp's feed; text tags the content, so two
// chains with different tags fork at every sequence.
func chain(t testing.TB, kp feeds.KeyPair, n int, tag string) []json.RawMessage {
	t.Helper()
	var state *classic.FeedState
	var out []json.RawMessage
	for i := 1; i <= n; i++ {
		m, err := classic.Create(kp.Private, state, float64(1700000000000+i), classic.RawJSON(fmt.Sprintf(`{"type":"post","text":"%s%d"}`, tag, i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		s := classic.StateAfter(m)
		state = &s
		out = append(out, json.RawMessage(m.Compact))
	}
	return out
}

// fork is the message at sequence i (1-based) of a chain that equals base
// up to i-1 and then differs.
func fork(t testing.TB, kp feeds.KeyPair, base []json.RawMessage, i int) json.RawMessage {
	t.Helper()
	var state *classic.FeedState
	if i > 1 {
		prev, err := classic.Parse(base[i-2])
		if err != nil {
			t.Fatal(err)
		}
		s := classic.StateAfter(prev)
		state = &s
	}
	m, err := classic.Create(kp.Private, state, float64(1700000000000+i), classic.RawJSON(`{"type":"post","text":"fork"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m.Compact
}

// badSig changes the text of a message without signing it again.
func badSig(m json.RawMessage) json.RawMessage {
	return json.RawMessage(strings.Replace(string(m), `"text":"`, `"text":"X`, 1))
}

// oversize resigns a message with content beyond the 8192-unit limit.
func oversize(t testing.TB, kp feeds.KeyPair, m json.RawMessage) json.RawMessage {
	t.Helper()
	v := strings.Replace(string(m), `"text":"`, `"text":"`+strings.Repeat("x", 9000), 1)
	// Sign the oversized value so that only its size is wrong.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &fields); err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(kp.Private, []byte(v)))
	return json.RawMessage(strings.Replace(v, string(fields["signature"][1:len(fields["signature"])-1]), sig+".sig.ed25519", 1))
}

type policy struct{ allowed map[feeds.FeedRef]bool }

func (p policy) Replicates(_, feed feeds.FeedRef) bool { return p.allowed[feed] }

type forks struct {
	mu  sync.Mutex
	got []string
}

func (f *forks) RecordFork(author feeds.FeedRef, seq int64, peer feeds.FeedRef, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, fmt.Sprintf("%s:%d", author, seq))
}

func cat(parts ...[]json.RawMessage) []json.RawMessage {
	var out []json.RawMessage
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func one(m json.RawMessage) []json.RawMessage { return []json.RawMessage{m} }

// TestIngestRules is the batch rules of issue 9, for EBT (any requested
// feed in a batch) and legacy replication (one feed's history stream):
// what is stored, whether the peer is dropped, what the log says.
func TestIngestRules(t *testing.T) {
	a, b, c, blocked := keys(t, "a"), keys(t, "b"), keys(t, "c"), keys(t, "blocked")
	peer := keys(t, "peer").ID
	A := chain(t, a, 10, "a")
	B := chain(t, b, 3, "b")
	C := chain(t, c, 3, "c")
	X := chain(t, blocked, 3, "x")
	type want struct {
		a, b    int64 // latest stored of a and b afterwards
		drop    error // nil: peer kept; else errors.Is target
		log     string
		forkRec bool
	}
	for _, tc := range []struct {
		name   string
		legacy bool // a history stream of a (only = a)
		before []json.RawMessage
		batch  []json.RawMessage
		want   want
	}{
		{"valid", false, nil, A, want{a: 10}},
		{"valid, legacy", true, nil, A, want{a: 10}},
		{"bad signature at 6", false, nil, cat(A[:5], one(badSig(A[5])), A[6:]), want{a: 5, drop: feedlog.ErrSignature, log: "kept=5 held=0 refused=5"}},
		{"bad signature at 6, legacy", true, nil, cat(A[:5], one(badSig(A[5])), A[6:]), want{a: 5, drop: feedlog.ErrSignature, log: "kept=5 held=0 refused=5"}},
		{"oversize at 6", false, nil, cat(A[:5], one(oversize(t, a, A[5])), A[6:]), want{a: 5, drop: ErrInvalid, log: "kept=5 held=0 refused=5"}},
		{"other author inside a history stream", true, nil, cat(A[:5], B, A[5:]), want{a: 5, drop: ErrOtherAuthor, log: "kept=5 held=0 refused=8"}},
		{"other requested author in an EBT batch", false, nil, cat(A[:5], B, A[5:]), want{a: 10, b: 3}},
		{"fork of a stored message", false, A[:5], cat(one(fork(t, a, A, 3)), A[5:]), want{a: 5, drop: feedlog.ErrFork, log: "kept=0 held=0 refused=6", forkRec: true}},
		{"fork at 5 then 6..10", false, nil, cat(A[:4], one(fork(t, a, A, 5)), A[5:]), want{a: 5, drop: feedlog.ErrFork, log: "kept=5 held=0 refused=5", forkRec: true}},
		{"fork at 5 then 6..10, legacy", true, nil, cat(A[:4], one(fork(t, a, A, 5)), A[5:]), want{a: 5, drop: feedlog.ErrFork, log: "kept=5 held=0 refused=5", forkRec: true}},
		{"replay of stored messages", false, A[:5], A, want{a: 10}},
		{"replay within the batch", false, nil, cat(A[:5], A[:5], A[5:]), want{a: 10}},
		{"replay then fork within the batch", false, nil, cat(A[:5], one(fork(t, a, A, 3)), A[5:]), want{a: 5, drop: feedlog.ErrFork, log: "kept=5 held=0 refused=6", forkRec: true}},
		{"out of order", false, nil, cat(A[:3], A[4:]), want{a: 3, drop: ErrInvalid, log: "kept=3 held=0 refused=6"}},
		{"out of order, legacy", true, nil, cat(A[:3], A[4:]), want{a: 3, drop: ErrInvalid, log: "kept=3 held=0 refused=6"}},
		{"unrequested feed", false, nil, cat(A[:5], C, A[5:]), want{a: 5, drop: ErrUnrequested, log: "kept=5 held=0 refused=8"}},
		{"blocked feed", false, nil, cat(A[:5], X, A[5:]), want{a: 5, drop: ErrUnrequested, log: "kept=5 held=0 refused=8"}},
		{"not JSON", false, nil, cat(A[:2], one(json.RawMessage(`{"author":`)), A[2:]), want{a: 2, drop: ErrInvalid, log: "kept=2 held=0 refused=9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.Open(t.TempDir(), store.Options{CacheSize: 4 << 20, MemTableSize: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			w, err := feedlog.New(feedlog.Options{Store: st})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			var logBuf bytes.Buffer
			fr := &forks{}
			g := &Ingester{W: w, Policy: policy{map[feeds.FeedRef]bool{a.ID: true, b.ID: true}}, Forks: fr,
				Log: slog.New(slog.NewTextHandler(&logBuf, nil))}
			ctx := context.Background()
			var only *feeds.FeedRef
			if tc.legacy {
				only = &a.ID
			}
			var first Outcome
			if tc.before != nil {
				if first, err = g.IngestBatch(ctx, peer, only, tc.before); err != nil {
					t.Fatal(err)
				}
			}
			out, err := g.IngestBatch(ctx, peer, only, tc.batch)
			wantStats := Stats{Kept: int64(first.Kept + out.Kept), Held: int64(first.Held + out.Held), Refused: int64(first.Refused + out.Refused)}
			if got := g.Stats(); got != wantStats {
				t.Errorf("stats %+v, want the sum of the outcomes %+v", got, wantStats)
			}
			switch {
			case tc.want.drop == nil && err != nil:
				t.Fatalf("peer dropped: %v", err)
			case tc.want.drop != nil && (!errors.Is(err, ErrInvalid) || !errors.Is(err, tc.want.drop)):
				t.Fatalf("err = %v, want %v wrapped in ErrInvalid", err, tc.want.drop)
			}
			for _, f := range []struct {
				id   feeds.FeedRef
				want int64
			}{{a.ID, tc.want.a}, {b.ID, tc.want.b}, {c.ID, 0}, {blocked.ID, 0}} {
				if seq, _, _, _ := st.Latest(f.id); seq != f.want {
					t.Errorf("latest of %s = %d, want %d", f.id, seq, f.want)
				}
			}
			if tc.want.log != "" && !strings.Contains(logBuf.String(), tc.want.log) {
				t.Errorf("log lacks %q:\n%s", tc.want.log, logBuf.String())
			}
			if tc.want.log == "" && logBuf.Len() > 0 {
				t.Errorf("unexpected log:\n%s", logBuf.String())
			}
			if tc.want.drop != nil && out.Kept+out.Held+out.Refused != len(tc.batch) {
				t.Errorf("outcome %+v does not account for %d messages", out, len(tc.batch))
			}
			if (len(fr.got) > 0) != tc.want.forkRec {
				t.Errorf("forks recorded: %v, want any: %v", fr.got, tc.want.forkRec)
			}
			if err := st.Verify(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
