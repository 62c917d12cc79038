package classic

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cask-ssb/cask/feeds"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// DefaultBatchSize is the number of signatures checked in one batch
// equation. Below curve25519-voi's Pippenger threshold (94) batches use
// precomputed tables of the (cached) author keys, which is fastest for
// feeds that have many messages per author.
const DefaultBatchSize = 64

// maxKeyCache bounds the cache of expanded author keys.
const maxKeyCache = 1 << 16

// Verifier checks signatures of many messages in parallel with batch
// verification and then applies the per-feed chain rules in input order.
// It is safe for concurrent use.
type Verifier struct {
	hmacKey   *[32]byte
	workers   int
	batchSize int

	mu   sync.RWMutex
	keys map[feeds.FeedRef]*voi.ExpandedPublicKey
}

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier)

// WithWorkers sets the number of parallel workers (default GOMAXPROCS).
func WithWorkers(n int) VerifierOption {
	return func(v *Verifier) {
		if n > 0 {
			v.workers = n
		}
	}
}

// WithBatchSize sets the signatures per batch equation (default
// DefaultBatchSize; 1 disables batching).
func WithBatchSize(n int) VerifierOption {
	return func(v *Verifier) {
		if n > 0 {
			v.batchSize = n
		}
	}
}

// NewVerifier returns a Verifier for a network with sign cap hmacKey (nil on
// the main network).
func NewVerifier(hmacKey *[32]byte, opts ...VerifierOption) *Verifier {
	v := &Verifier{
		hmacKey:   hmacKey,
		workers:   runtime.GOMAXPROCS(0),
		batchSize: DefaultBatchSize,
		keys:      make(map[feeds.FeedRef]*voi.ExpandedPublicKey),
	}
	for _, o := range opts {
		o(v)
	}
	return v
}

// expandedKey returns the cached precomputed form of an author key, or nil
// if the key is not a valid (canonical, not small-order) point.
func (v *Verifier) expandedKey(author feeds.FeedRef) *voi.ExpandedPublicKey {
	v.mu.RLock()
	k, ok := v.keys[author]
	v.mu.RUnlock()
	if ok {
		return k
	}
	k, err := voi.NewExpandedPublicKey(voi.PublicKey(author[:]))
	if err != nil {
		k = nil
	}
	v.mu.Lock()
	if len(v.keys) >= maxKeyCache {
		clear(v.keys)
	}
	v.keys[author] = k
	v.mu.Unlock()
	return k
}

// VerifySignatures checks the signature of every message in parallel and
// returns ok[i] for msgs[i]. A batch that fails is re-checked one signature
// at a time, so one bad signature never rejects its neighbours. Nil messages
// and messages not reached before ctx is done are reported false.
func (v *Verifier) VerifySignatures(ctx context.Context, msgs []*Message) []bool {
	ok, _ := v.verifySignatures(ctx, msgs)
	return ok
}

// verifySignatures is VerifySignatures that also reports which messages were
// checked before ctx was done.
func (v *Verifier) verifySignatures(ctx context.Context, msgs []*Message) (ok, checked []bool) {
	ok = make([]bool, len(msgs))
	checked = make([]bool, len(msgs))
	v.inChunks(ctx, len(msgs), func(bv *voi.BatchVerifier, scratch *[]byte, lo, hi int) {
		v.verifyChunk(bv, scratch, msgs[lo:hi], ok[lo:hi])
		for i := lo; i < hi; i++ {
			checked[i] = true
		}
	})
	return ok, checked
}

// inChunks runs fn over [0, n) in chunks of the batch size on up to
// v.workers goroutines, each with its own batch verifier and scratch
// buffer. It stops handing out chunks once ctx is done.
func (v *Verifier) inChunks(ctx context.Context, n int, fn func(bv *voi.BatchVerifier, scratch *[]byte, lo, hi int)) {
	if n == 0 {
		return
	}
	bs := v.batchSize
	chunks := (n + bs - 1) / bs
	workers := min(v.workers, chunks)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bv := voi.NewBatchVerifierWithCapacity(bs)
			var scratch []byte
			for {
				c := int(next.Add(1) - 1)
				if c >= chunks || ctx.Err() != nil {
					return
				}
				fn(bv, &scratch, c*bs, min((c+1)*bs, n))
			}
		}()
	}
	wg.Wait()
}

// VerifyRaw parses bare message values (or KVT records, see ParseKVT) and
// verifies them like Verify, doing the parsing in the parallel workers too.
// msgs[i] is nil when raw[i] did not parse; errs[i] then holds the parse
// error. A KVT record whose claimed key differs from the computed id is
// rejected (non-fatal).
func (v *Verifier) VerifyRaw(ctx context.Context, raw [][]byte, states map[feeds.FeedRef]*FeedState) (msgs []*Message, errs []error) {
	msgs = make([]*Message, len(raw))
	parseErrs := make([]error, len(raw))
	ok := make([]bool, len(raw))
	checked := make([]bool, len(raw))
	v.inChunks(ctx, len(raw), func(bv *voi.BatchVerifier, scratch *[]byte, lo, hi int) {
		for i := lo; i < hi; i++ {
			m, _, claimed, err := ParseKVT(raw[i])
			if err == nil && claimed != nil && *claimed != m.Key {
				err = invalid(false, "record key %s does not match computed id %s", claimed, m.Key)
				m = nil
			}
			msgs[i], parseErrs[i] = m, err
		}
		v.verifyChunk(bv, scratch, msgs[lo:hi], ok[lo:hi])
		for i := lo; i < hi; i++ {
			checked[i] = true
		}
	})
	errs = v.applyChain(ctx, msgs, ok, checked, states)
	for i, err := range parseErrs {
		if err != nil {
			errs[i] = err
		}
	}
	return msgs, errs
}

// verifyChunk checks one batch. scratch holds the signed bytes while an
// entry is added (the batch verifier hashes them at once and keeps no
// reference), so no per-message copy is allocated.
func (v *Verifier) verifyChunk(bv *voi.BatchVerifier, scratch *[]byte, msgs []*Message, ok []bool) {
	bv.Reset()
	n := 0
	for _, m := range msgs {
		if m == nil {
			continue
		}
		in := v.input(scratch, m)
		if k := v.expandedKey(m.Author); k != nil {
			bv.AddExpandedWithOptions(k, in, m.Signature[:], verifyOptions)
		} else {
			bv.AddWithOptions(voi.PublicKey(m.Author[:]), in, m.Signature[:], verifyOptions)
		}
		n++
	}
	if n == 0 {
		return
	}
	if n > 1 && bv.VerifyBatchOnly(nil) {
		for i, m := range msgs {
			ok[i] = m != nil
		}
		return
	}
	for i, m := range msgs {
		if m == nil {
			continue
		}
		if k := v.expandedKey(m.Author); k != nil {
			ok[i] = voi.VerifyExpandedWithOptions(k, v.input(scratch, m), m.Signature[:], verifyOptions)
		} else {
			ok[i] = false // not a valid public key
		}
	}
}

// input returns the signing input of m, built in *scratch.
func (v *Verifier) input(scratch *[]byte, m *Message) []byte {
	*scratch = m.appendSignedBytes((*scratch)[:0])
	return signingInput(*scratch, v.hmacKey)
}

// Verify validates msgs in order, as ssb-validate would append them one by
// one: messages of many feeds may be interleaved. states maps each feed to
// its latest valid message (absent = no message yet) and is updated in place
// for every accepted message. The result has one entry per message: nil for
// valid, else a *ValidationError (or ctx's error if cancelled). Chain rules
// are checked before the signature, as in ssb-validate, so a duplicate with
// a bad signature is reported as a (non-fatal) duplicate.
func (v *Verifier) Verify(ctx context.Context, msgs []*Message, states map[feeds.FeedRef]*FeedState) []error {
	sigOK, checked := v.verifySignatures(ctx, msgs)
	return v.applyChain(ctx, msgs, sigOK, checked, states)
}

// applyChain runs the per-feed chain checks in input order.
func (v *Verifier) applyChain(ctx context.Context, msgs []*Message, sigOK, checked []bool, states map[feeds.FeedRef]*FeedState) []error {
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		if !checked[i] {
			// Not reached before cancellation: nothing after this can be
			// applied in order either.
			for j := i; j < len(msgs); j++ {
				errs[j] = ctx.Err()
			}
			return errs
		}
		if m == nil {
			errs[i] = invalid(false, "nil message")
			continue
		}
		st := states[m.Author]
		if err := ValidateNext(st, m); err != nil {
			errs[i] = err
			continue
		}
		if !sigOK[i] {
			errs[i] = invalid(true, "signature does not verify for %s seq %d", m.Author, m.Sequence)
			continue
		}
		ns := StateAfter(m)
		if st != nil {
			*st = ns
		} else {
			states[m.Author] = &ns
		}
	}
	return errs
}
