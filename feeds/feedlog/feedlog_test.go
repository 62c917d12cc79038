package feedlog

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/store"
)

func testKeys(t testing.TB, label string) feeds.KeyPair {
	t.Helper()
	seed := sha256.Sum256([]byte(label))
	kp, err := feeds.KeyPairFromSeed(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// feed makes n messages of kp's feed; stringTS makes every message after
// the first carry its timestamp as a JSON string (JS accepts that).
func feed(t testing.TB, kp feeds.KeyPair, n int, stringTS bool) []*classic.Message {
	t.Helper()
	var state *classic.FeedState
	var out []*classic.Message
	for i := 1; i <= n; i++ {
		m, err := classic.Create(kp.Private, state, float64(1700000000000+i), classic.RawJSON(fmt.Sprintf(`{"type":"post","text":"m%d"}`, i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if stringTS && i > 1 {
			m = resign(t, kp, strings.Replace(string(m.Compact), fmt.Sprintf(`"timestamp":%d`, 1700000000000+i), fmt.Sprintf(`"timestamp":"%d"`, 1700000000000+i), 1))
		}
		s := classic.StateAfter(m)
		state = &s
		out = append(out, m)
	}
	return out
}

// resign parses a message value with a stale signature and signs it again.
func resign(t testing.TB, kp feeds.KeyPair, value string) *classic.Message {
	t.Helper()
	m, err := classic.Parse([]byte(value))
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(kp.Private, m.SignedBytes()))
	var v struct {
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		t.Fatal(err)
	}
	m, err = classic.Parse([]byte(strings.Replace(value, v.Signature, sig+".sig.ed25519", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.VerifySignature(nil); err != nil {
		t.Fatal(err)
	}
	return m
}

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(dir, store.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newLog(t testing.TB, st Store, keys *feeds.KeyPair) *Log {
	t.Helper()
	l, err := New(Options{Store: st, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestStringTimestampSurvivesRestart: a feed whose messages carry string
// timestamps keeps accepting messages after the writer restarts (its state
// is rebuilt as classic.StateAfter does, not from the raw timestamp).
func TestStringTimestampSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	kp := testKeys(t, "string-ts")
	msgs := feed(t, kp, 6, true)
	ctx := context.Background()
	for i, part := range [][]*classic.Message{msgs[:3], msgs[3:5], msgs[5:]} {
		st := openStore(t, dir)
		l := newLog(t, st, nil)
		res := l.Add(ctx, part)
		l.Close()
		st.Close()
		if res.Err != nil || len(res.Records) != len(part) {
			t.Fatalf("run %d (after %d restarts): stored %d of %d: %v", i, i, len(res.Records), len(part), res.Err)
		}
	}
}

func TestPublishGroupCommit(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	kp := testKeys(t, "me")
	l := newLog(t, st, &kp)
	defer l.Close()
	var wg sync.WaitGroup
	const n = 200
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Publish(context.Background(), json.RawMessage(fmt.Sprintf(`{"type":"post","text":"%d"}`, i)))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if seq, _, _, _ := st.Latest(kp.ID); seq != n {
		t.Fatalf("latest = %d, want %d", seq, n)
	}
	if err := st.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A restarted writer continues the chain.
	l.Close()
	l = newLog(t, st, &kp)
	if _, err := l.Publish(context.Background(), json.RawMessage(`{"type":"post","text":"after"}`)); err != nil {
		t.Fatal(err)
	}
}

// TestAddRules: the first invalid message ends the call; what came before
// is stored, nothing after.
func TestAddRules(t *testing.T) {
	a := testKeys(t, "a")
	msgs := feed(t, a, 10, false)
	fork := func(i int) *classic.Message {
		other := feed(t, a, i, false)[i-1]
		if i > 1 {
			v := strings.Replace(string(other.Compact), `"text":"m`, `"text":"fork m`, 1)
			return resign(t, a, v)
		}
		return other
	}
	badSig, err := classic.Parse([]byte(strings.Replace(string(msgs[5].Compact), `"text":"m6"`, `"text":"m7"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	cat := func(parts ...[]*classic.Message) []*classic.Message {
		var out []*classic.Message
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	one := func(m *classic.Message) []*classic.Message { return []*classic.Message{m} }
	for _, tc := range []struct {
		name    string
		before  []*classic.Message // stored first
		add     []*classic.Message
		stored  int // latest sequence after
		held    int
		wantErr error
		anyErr  bool
	}{
		{"all valid", nil, msgs, 10, 0, nil, false},
		{"bad signature at 6", nil, cat(msgs[:5], one(badSig), msgs[6:]), 5, 0, ErrSignature, true},
		{"replay is held, not an error", msgs[:5], msgs, 10, 5, nil, false},
		{"replay within the call", nil, cat(msgs[:5], msgs[:5], msgs[5:]), 10, 5, nil, false},
		{"fork of a stored message", msgs[:5], cat(one(fork(3)), msgs[5:]), 5, 0, ErrFork, true},
		{"fork within the call", nil, cat(msgs[:5], one(fork(4)), msgs[5:]), 5, 0, ErrFork, true},
		{"gap", nil, cat(msgs[:3], msgs[4:]), 3, 0, nil, true},
		{"fork at 5 then 6..10", nil, cat(msgs[:4], one(fork(5)), msgs[5:]), 5, 0, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t, t.TempDir())
			defer st.Close()
			l := newLog(t, st, nil)
			defer l.Close()
			if tc.before != nil {
				if res := l.Add(context.Background(), tc.before); res.Err != nil {
					t.Fatal(res.Err)
				}
			}
			res := l.Add(context.Background(), tc.add)
			if (res.Err != nil) != tc.anyErr || (tc.wantErr != nil && !errors.Is(res.Err, tc.wantErr)) {
				t.Fatalf("err = %v, want %v (any: %v)", res.Err, tc.wantErr, tc.anyErr)
			}
			if seq, _, _, _ := st.Latest(a.ID); seq != int64(tc.stored) {
				t.Errorf("latest = %d, want %d", seq, tc.stored)
			}
			if res.Held != tc.held {
				t.Errorf("held = %d, want %d", res.Held, tc.held)
			}
			if res.Err != nil && res.Failed >= len(tc.add) {
				t.Errorf("failed index %d out of range", res.Failed)
			}
			if err := st.Verify(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}
