package sbot

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
)

func testRef(b byte) feeds.FeedRef {
	var r feeds.FeedRef
	r[0] = b
	return r
}

func testAddr(b byte, port int) feeds.Address {
	return feeds.Address{Host: "127.0.0.1", Port: port, Key: testRef(b), Transport: feeds.TransportNet}
}

func TestSchedBackoff(t *testing.T) {
	p := defaultSchedPolicy(8)
	tests := []struct {
		failures int
		r        float64
		want     time.Duration
	}{
		{1, 0.5, 2 * time.Second},
		{0, 0.5, 2 * time.Second}, // at least one failure's worth
		{2, 0.5, 4 * time.Second},
		{3, 0.5, 8 * time.Second},
		{10, 0.5, 1024 * time.Second},
		{11, 0.5, 30 * time.Minute}, // 2048 s: capped
		{1000, 0.5, 30 * time.Minute},
		{1, 0, 1500 * time.Millisecond}, // jitter: -25 %
		{3, 0, 6 * time.Second},
		{11, 0, 22*time.Minute + 30*time.Second},
		{1, 0.999999, 2499999 * time.Microsecond}, // just under +25 %
	}
	for _, tc := range tests {
		got := p.backoff(tc.failures, tc.r)
		if d := got - tc.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("backoff(%d, %v) = %v, want %v", tc.failures, tc.r, got, tc.want)
		}
	}
}

func TestSchedPlan(t *testing.T) {
	p := defaultSchedPolicy(2)
	now := time.Unix(1700000000, 0)
	cand := func(b byte, tier, hop, failures int, seen time.Duration, r uint64) schedCand {
		c := schedCand{Addr: testAddr(b, 8000+int(b)), Tier: tier, Hop: hop, Failures: failures, Rand: r}
		if seen > 0 {
			c.LastSeen = now.Add(-seen)
		}
		return c
	}
	conn := func(b byte, tier int, idle time.Duration) schedConn {
		return schedConn{Peer: testRef(b), Tier: tier, Idle: idle}
	}
	keys := func(cs []schedCand) []byte {
		var out []byte
		for _, c := range cs {
			out = append(out, c.Addr.Key[0])
		}
		return out
	}
	refs := func(rs []feeds.FeedRef) []byte {
		var out []byte
		for _, r := range rs {
			out = append(out, r[0])
		}
		return out
	}
	second := cand(1, 0, 1, 0, 0, 1)
	second.Addr.Port = 9999 // another address of peer 1
	tests := []struct {
		name      string
		cands     []schedCand
		conns     []schedConn
		free      int
		wantDial  []byte
		wantEvict []byte
	}{
		{"followed before others", []schedCand{cand(1, 1, noHop, 0, 0, 0), cand(2, 0, 1, 0, 0, 5), cand(3, 0, 1, 0, 0, 1)}, nil, 2, []byte{3, 2}, nil},
		{"hops, then failures, then seen", []schedCand{cand(1, 1, noHop, 0, 0, 0), cand(2, 1, 2, 3, 0, 0), cand(3, 1, 2, 0, 0, 0), cand(4, 1, 2, 0, time.Hour, 0), cand(5, 1, 2, 0, time.Minute, 0)}, nil, 4, []byte{5, 4, 3, 2}, nil},
		{"random tie-break", []schedCand{cand(1, 0, 1, 0, 0, 9), cand(2, 0, 1, 0, 0, 3), cand(3, 0, 1, 0, 0, 7)}, nil, 1, []byte{2}, nil},
		{"one address per peer", []schedCand{cand(1, 0, 1, 0, 0, 0), second, cand(2, 0, 1, 0, 0, 2)}, nil, 2, []byte{1, 2}, nil},
		{"no free slot, nobody idle", []schedCand{cand(1, 0, 1, 0, 0, 0)}, []schedConn{conn(8, 1, 10*time.Second), conn(9, 0, 2*time.Minute)}, 0, nil, nil},
		{"followed evicts idle other", []schedCand{cand(1, 0, 1, 0, 0, 0)}, []schedConn{conn(8, 1, 2*time.Minute), conn(9, 1, 3*time.Minute)}, 0, nil, []byte{9}},
		{"failed followed still evicts other", []schedCand{cand(1, 0, 1, 4, 0, 0)}, []schedConn{conn(8, 1, 2*time.Minute)}, 0, nil, []byte{8}},
		{"same tier rotates only after IdleAfter", []schedCand{cand(1, 1, noHop, 0, 0, 0)}, []schedConn{conn(8, 1, 4*time.Minute)}, 0, nil, nil},
		{"same tier rotation", []schedCand{cand(1, 1, noHop, 0, 0, 0), cand(2, 1, noHop, 0, 0, 1)}, []schedConn{conn(8, 1, 6*time.Minute), conn(9, 1, time.Hour)}, 0, nil, []byte{9, 8}},
		{"a failed candidate does not rotate its tier", []schedCand{cand(1, 1, noHop, 1, 0, 0)}, []schedConn{conn(8, 1, time.Hour)}, 0, nil, nil},
		{"other never evicts followed", []schedCand{cand(1, 1, noHop, 0, 0, 0)}, []schedConn{conn(8, 0, time.Hour)}, 0, nil, nil},
		{"dial into free slots, evict for the rest", []schedCand{cand(1, 0, 1, 0, 0, 0), cand(2, 0, 1, 0, 0, 1)}, []schedConn{conn(8, 1, time.Hour)}, 1, []byte{1}, []byte{8}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dial, evict := p.plan(tc.cands, tc.conns, tc.free)
			if got := keys(dial); string(got) != string(tc.wantDial) {
				t.Errorf("dial %v, want %v", got, tc.wantDial)
			}
			if got := refs(evict); string(got) != string(tc.wantEvict) {
				t.Errorf("evict %v, want %v", got, tc.wantEvict)
			}
		})
	}
}

// TestAddrBookFile: version 1 of peers.json is read as remembered peers
// and rewritten as version 2; the book round-trips through the file
// (tunnel addresses and config-only ones are not kept); a newer version
// and a broken file are refused without touching the file.
func TestAddrBookFile(t *testing.T) {
	now := time.UnixMilli(1700000000000)
	me := testRef(0)
	a1, a2 := testAddr(1, 8001), testAddr(2, 8002)
	backoff := func(int) time.Duration { return time.Minute }

	t.Run("migrate v1", func(t *testing.T) {
		repo := t.TempDir()
		v1 := `{"peers":[{"address":"` + a1.String() + `"},{"address":"` + a2.String() + `"}]}`
		if err := os.WriteFile(peersFilePath(repo), []byte(v1), 0o600); err != nil {
			t.Fatal(err)
		}
		b := newAddrBook(repo, me)
		if err := b.load(); err != nil {
			t.Fatal(err)
		}
		if got := b.withSource(SourceRemembered); len(got) != 2 || got[0] != a1 || got[1] != a2 {
			t.Fatalf("remembered = %v", got)
		}
		if err := b.save(now); err != nil {
			t.Fatal(err)
		}
		f, err := readPeersFile(repo)
		if err != nil || f.Version != 2 || len(f.Peers) != 2 || f.Peers[0].Sources[0] != SourceRemembered {
			t.Fatalf("rewritten = %+v, %v", f, err)
		}
	})

	t.Run("round trip", func(t *testing.T) {
		repo := t.TempDir()
		b := newAddrBook(repo, me)
		b.AddKnown(a1, SourcePub)
		b.AddKnown(a2, SourceConfig)
		b.AddKnown(feeds.Address{Key: testRef(3), Portal: testRef(4), Transport: feeds.TransportTunnel}, SourceRoom)
		b.AddKnown(testAddr(0, 9), SourcePub) // our own: ignored
		b.dialled(a1, errors.New("refused"), now, backoff)
		b.dialled(a1, errors.New("refused again"), now.Add(time.Second), backoff)
		if err := b.save(now); err != nil {
			t.Fatal(err)
		}
		c := newAddrBook(repo, me)
		if err := c.load(); err != nil {
			t.Fatal(err)
		}
		got := c.snapshot()
		if len(got) != 1 || got[0].addr != a1 || got[0].failures != 2 || got[0].lastError != "refused again" ||
			!got[0].lastFailure.Equal(now.Add(time.Second)) || strings.Join(got[0].sources, ",") != SourcePub {
			t.Fatalf("reloaded = %+v", got)
		}
		// A successful dial makes it a seen address and resets failures.
		c.dialled(a1, nil, now.Add(time.Hour), backoff)
		if v := c.snapshot()[0]; v.failures != 0 || !v.lastSeen.Equal(now.Add(time.Hour)) || strings.Join(v.sources, ",") != "pub,seen" {
			t.Fatalf("after a dial = %+v", v)
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, content := range []string{`{"version":3,"peers":[]}`, `{"peers":[{"address":"nonsense"}]}`, `{"peers":`} {
			repo := t.TempDir()
			if err := os.WriteFile(peersFilePath(repo), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			b := newAddrBook(repo, me)
			if err := b.load(); err == nil || !strings.Contains(err.Error(), "peers.json") {
				t.Errorf("%s: load = %v, want an error naming the file", content, err)
			}
			if data, _ := os.ReadFile(peersFilePath(repo)); string(data) != content {
				t.Errorf("%s: file changed to %s", content, data)
			}
		}
	})

	t.Run("bounded", func(t *testing.T) {
		b := newAddrBook(t.TempDir(), me)
		b.AddKnown(a1, SourceRemembered)
		for i := range maxKnown + 50 {
			k := feeds.FeedRef{1, byte(i), byte(i >> 8)}
			b.AddKnown(feeds.Address{Host: "h", Port: i + 1, Key: k, Transport: feeds.TransportNet}, SourcePub)
		}
		got := b.snapshot()
		if len(got) != maxKnown {
			t.Fatalf("%d entries, want %d", len(got), maxKnown)
		}
		if b.withSource(SourceRemembered)[0] != a1 {
			t.Fatal("the remembered peer was evicted")
		}
	})
}

// FuzzPeersFile: whatever REPO/peers.json holds, loading it either fails
// with an error (leaving the file alone) or gives a book that saves and
// loads back to the same addresses.
func FuzzPeersFile(f *testing.F) {
	f.Add([]byte(`{"peers":[{"address":"net:127.0.0.1:8008~shs:AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]}`))
	f.Add([]byte(`{"version":2,"peers":[{"address":"net:h:1~shs:AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","sources":["pub","seen"],"lastSeen":1,"failures":3}]}`))
	f.Add([]byte(`{"version":9}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		repo := t.TempDir()
		if err := os.WriteFile(peersFilePath(repo), data, 0o600); err != nil {
			t.Fatal(err)
		}
		b := newAddrBook(repo, testRef(0))
		if err := b.load(); err != nil {
			if got, _ := os.ReadFile(peersFilePath(repo)); string(got) != string(data) {
				t.Fatal("a refused file was changed")
			}
			return
		}
		var want []string
		for _, k := range b.snapshot() {
			kept := &knownAddr{addr: k.addr, sources: map[string]bool{}, lastSeen: k.lastSeen}
			for _, s := range k.sources {
				kept.sources[s] = true
			}
			if kept.persisted() {
				want = append(want, k.addr.String())
			}
		}
		if err := b.save(time.Now()); err != nil {
			t.Fatal(err)
		}
		c := newAddrBook(repo, testRef(0))
		if err := c.load(); err != nil {
			t.Fatalf("reload: %v", err)
		}
		var got []string
		for _, k := range c.snapshot() {
			got = append(got, k.addr.String())
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("reloaded %v, want %v", got, want)
		}
	})
}

// BenchmarkSchedPlan: one scheduling decision over a full address book
// (maxKnown candidates, a third of them followed) and max-outgoing
// connections.
func BenchmarkSchedPlan(b *testing.B) {
	p := defaultSchedPolicy(8)
	cands := make([]schedCand, maxKnown)
	for i := range cands {
		k := feeds.FeedRef{1, byte(i), byte(i >> 8)}
		cands[i] = schedCand{Addr: feeds.Address{Host: "h", Port: i + 1, Key: k, Transport: feeds.TransportNet}, Tier: min(i%3, 1), Hop: i % 4, Failures: i % 5, Rand: uint64(i * 7919)}
	}
	conns := make([]schedConn, 8)
	for i := range conns {
		conns[i] = schedConn{Peer: feeds.FeedRef{2, byte(i)}, Tier: i % 2, Idle: time.Duration(i) * time.Minute}
	}
	b.ReportAllocs()
	for b.Loop() {
		p.plan(cands, conns, 0)
	}
}
