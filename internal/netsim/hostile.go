package netsim

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/ebt"
	"github.com/cask-ssb/cask/secretstream"
)

// hostile is a node that is not an sbot: it dials honest nodes through the
// simulated network, completes the secret handshake (it has a valid key)
// and then misbehaves in one of the Attack ways.
type hostile struct {
	keys feeds.KeyPair
	host *Host
	caps secretstream.AppKey
	// branches of its forked feed: a common prefix, then A (short) or B
	// (longer), both validly signed.
	branchA, branchB []*classic.Message
	rnd              *rand.Rand

	mu sync.Mutex
	// storedA: honest nodes whose ebt.clock showed all of branch A;
	// forkSent: those that were then sent branch B.
	storedA, forkSent map[int]bool
	done              map[Attack]int // attacks carried out (the handshake succeeded)
	forgedSent        int            // forged messages written to a target
}

func newHostile(keys feeds.KeyPair, host *Host, caps secretstream.AppKey, seed uint64) (*hostile, error) {
	h := &hostile{keys: keys, host: host, caps: caps, rnd: rand.New(rand.NewPCG(seed, 1)),
		storedA: map[int]bool{}, forkSent: map[int]bool{}, done: map[Attack]int{}}
	var prefix []*classic.Message
	var state *classic.FeedState
	mk := func(st *classic.FeedState, text string, seq int) (*classic.Message, *classic.FeedState, error) {
		m, err := classic.Create(keys.Private, st, float64(1700000000000+seq), map[string]any{"type": "post", "text": text}, nil)
		if err != nil {
			return nil, nil, err
		}
		s := classic.StateAfter(m)
		return m, &s, nil
	}
	for i := 1; i <= 2; i++ {
		m, s, err := mk(state, fmt.Sprint("common ", i), i)
		if err != nil {
			return nil, err
		}
		prefix, state = append(prefix, m), s
	}
	sa, sb := state, state
	h.branchA = append([]*classic.Message{}, prefix...)
	h.branchB = append([]*classic.Message{}, prefix...)
	for i := 3; i <= 8; i++ {
		if i <= 5 {
			m, s, err := mk(sa, fmt.Sprint("branch A ", i), i)
			if err != nil {
				return nil, err
			}
			h.branchA, sa = append(h.branchA, m), s
		}
		m, s, err := mk(sb, fmt.Sprint("branch B ", i), i)
		if err != nil {
			return nil, err
		}
		h.branchB, sb = append(h.branchB, m), s
	}
	return h, nil
}

// attack dials target (node index idx, address addr, key) and carries out a.
// It returns once the target dropped it or after a few seconds.
func (h *hostile) attack(ctx context.Context, a Attack, idx int, addr string, key feeds.FeedRef) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	raw, err := h.host.DialContext(ctx, addr)
	if err != nil {
		return err
	}
	sc, err := secretstream.Client(ctx, raw, h.caps, h.keys.Private, ed25519.PublicKey(key.PublicKey()))
	if err != nil {
		raw.Close()
		return fmt.Errorf("handshake: %w", err)
	}
	defer sc.Close()
	h.mu.Lock()
	h.done[a]++
	h.mu.Unlock()
	if a == AttackGarbage {
		junk := make([]byte, 4096)
		for i := range junk {
			junk[i] = byte(h.rnd.IntN(256))
		}
		junk[0] = 0x0a // a muxrpc header with a huge length and a bad flag
		if _, err := sc.Write(junk); err != nil {
			return nil
		}
		// The target must drop us: wait for the end of the stream.
		buf := make([]byte, 4096)
		_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, err := sc.Read(buf); err != nil {
				return nil
			}
		}
	}
	e := muxrpc.NewEndpoint(ctx, sc, muxrpc.HandlerFunc(func(ctx context.Context, req *muxrpc.Request) {
		_ = req.Fail(errors.New("no"))
	}), muxrpc.Options{RemoteKey: ed25519.PublicKey(key.PublicKey())})
	defer e.Close()
	switch a {
	case AttackFlood:
		// Open streams far beyond --max-streams, never reading them.
		for i := range 2000 {
			if _, err := e.Source(ctx, muxrpc.Method{"createHistoryStream"}, map[string]any{"id": key.String(), "live": true, "seq": i}); err != nil {
				break
			}
		}
		select {
		case <-e.Done():
		case <-time.After(2 * time.Second):
		}
		return nil
	case AttackForged:
		return h.forged(ctx, e, key)
	case AttackFork:
		return h.fork(ctx, e, idx)
	}
	return nil
}

// openEBT opens an EBT session and returns the target's notes.
func openEBT(ctx context.Context, e *muxrpc.Endpoint) (*muxrpc.Source, *muxrpc.Sink, map[feeds.FeedRef]ebt.Decoded, error) {
	in, out, err := e.Duplex(ctx, muxrpc.Method{"ebt", "replicate"}, ebt.Args{Version: 3, Format: "classic"})
	if err != nil {
		return nil, nil, nil, err
	}
	body, err := in.Next(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	notes, err := ebt.ParseNotes(body)
	return in, out, notes, err
}

// forged sends the next message of the target's own feed, signed with our
// key: a forgery the target must refuse.
func (h *hostile) forged(ctx context.Context, e *muxrpc.Endpoint, target feeds.FeedRef) error {
	_, out, notes, err := openEBT(ctx, e)
	if err != nil {
		return err
	}
	if err := out.Write(map[string]int64{}); err != nil {
		return nil
	}
	seq := max(notes[target].Sequence, 0)
	m, err := classic.Create(h.keys.Private, nil, 1700000000000, map[string]any{"type": "post", "text": "forged"}, nil)
	if err != nil {
		return err
	}
	v := strings.Replace(string(m.Compact), h.keys.ID.String(), target.String(), 1)
	v = strings.Replace(v, `"sequence":1`, fmt.Sprintf(`"sequence":%d`, seq+1), 1)
	if err := out.Write(json.RawMessage(v)); err != nil {
		return nil
	}
	h.mu.Lock()
	h.forgedSent++
	h.mu.Unlock()
	select {
	case <-e.Done():
	case <-time.After(3 * time.Second):
	}
	return nil
}

// fork sends branch A of our feed to a target that does not hold it yet,
// and branch B to one whose clock showed all of A: the target must record
// the fork and drop us.
func (h *hostile) fork(ctx context.Context, e *muxrpc.Endpoint, idx int) error {
	h.mu.Lock()
	sendB := h.storedA[idx]
	h.mu.Unlock()
	_, out, _, err := openEBT(ctx, e)
	if err != nil {
		return err
	}
	if err := out.Write(map[string]int64{h.keys.ID.String(): ebt.Note(int64(len(h.branchB)), false)}); err != nil {
		return nil
	}
	branch := h.branchA
	if sendB {
		branch = h.branchB
		h.mu.Lock()
		h.forkSent[idx] = true
		h.mu.Unlock()
	}
	for _, m := range branch {
		if err := out.Write(json.RawMessage(m.Compact)); err != nil {
			return nil
		}
	}
	if sendB {
		select {
		case <-e.Done():
		case <-time.After(3 * time.Second):
		}
		return nil
	}
	// Did the target store all of A? Ask its clock.
	for range 20 {
		var clock map[string]int64
		if err := e.Async(ctx, &clock, muxrpc.Method{"ebt", "clock"}); err != nil {
			return nil
		}
		if clock[h.keys.ID.String()] == int64(len(h.branchA)) {
			h.mu.Lock()
			h.storedA[idx] = true
			h.mu.Unlock()
			return nil
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// forkVictims returns the honest nodes that held branch A and were then
// sent branch B: each must report the fork.
func (h *hostile) forkVictims() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int
	for i := range h.forkSent {
		if h.storedA[i] {
			out = append(out, i)
		}
	}
	return out
}
