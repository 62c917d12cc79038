// Package replicate is the receiving side of replication: the one ingest
// path that both EBT (plugins/ebt) and legacy replication (Legacy, a
// createHistoryStream client, in this package) hand what a peer sent to.
//
// The rules of a batch a peer sent, in order:
//   - every valid message before the first invalid one is kept;
//   - the first invalid message (does not parse, oversize, bad signature,
//     broken chain, out of order, fork, another author inside a feed's
//     history stream, a feed we did not ask for or that we block) ends the
//     batch: nothing after it is stored, and the caller drops the peer;
//   - messages we hold already are skipped (another peer sent them first);
//   - the log says how many were kept, skipped and refused;
//   - a fork is reported as a fork (errors.Is(err, feedlog.ErrFork)) and
//     recorded with the Forks recorder, if any.
//
// It never writes to the store by itself: messages go to the feed writer.
package replicate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/feedlog"
)

// Writer validates and stores messages (feeds/feedlog.Log).
type Writer interface {
	Add(ctx context.Context, msgs []*classic.Message) feedlog.Result
}

// Policy says which feeds we accept from a peer: the feeds we asked it for,
// never one we block.
type Policy interface {
	Replicates(peer, feed feeds.FeedRef) bool
}

// ForkRecorder keeps evidence of a fork (so status can show it).
type ForkRecorder interface {
	RecordFork(author feeds.FeedRef, sequence int64, peer feeds.FeedRef, reason string)
}

// Errors of Ingest; the first one wraps every refusal that is the peer's
// fault (the caller drops the peer).
var (
	ErrInvalid     = errors.New("invalid message from peer")
	ErrOtherAuthor = errors.New("message of another author in a feed's history stream")
	ErrUnrequested = errors.New("message of a feed not requested from this peer")
)

// Ingester is the shared ingest path.
type Ingester struct {
	W      Writer
	Policy Policy
	Forks  ForkRecorder // optional
	Log    *slog.Logger
	// Kept, if set, is told how many messages of a batch from peer were
	// stored (only when some were).
	Kept func(peer feeds.FeedRef, n int)
	// Observe, if set, sees the outcome of every batch (metrics). It must
	// not block.
	Observe func(Outcome)

	kept, held, refused atomic.Int64
}

// Stats count the messages every batch so far brought: stored, held
// already (duplicates: another peer sent them first) and refused.
type Stats struct {
	Kept, Held, Refused int64
}

// Stats returns the counts since the Ingester was made.
func (g *Ingester) Stats() Stats {
	return Stats{Kept: g.kept.Load(), Held: g.held.Load(), Refused: g.refused.Load()}
}

// Outcome counts what happened to one batch.
type Outcome struct {
	Kept    int // stored now
	Held    int // held already, skipped
	Refused int // the first invalid message and everything after it
	// Heads is the latest sequence per feed of the messages held now
	// (kept or held already), for EBT's bookkeeping.
	Heads map[feeds.FeedRef]int64
}

// Ingest handles a batch an EBT peer sent (any requested feed). The error
// wraps ErrInvalid when the peer must be dropped.
func (g *Ingester) Ingest(ctx context.Context, peer feeds.FeedRef, raw []json.RawMessage) (map[feeds.FeedRef]int64, error) {
	out, err := g.IngestBatch(ctx, peer, nil, raw)
	return out.Heads, err
}

// IngestBatch handles a batch of raw message values from peer; with only
// set, every message must be of that feed (a history stream).
func (g *Ingester) IngestBatch(ctx context.Context, peer feeds.FeedRef, only *feeds.FeedRef, raw []json.RawMessage) (Outcome, error) {
	out, err := g.ingestBatch(ctx, peer, only, raw)
	if g.Observe != nil {
		g.Observe(out)
	}
	return out, err
}

func (g *Ingester) ingestBatch(ctx context.Context, peer feeds.FeedRef, only *feeds.FeedRef, raw []json.RawMessage) (Outcome, error) {
	msgs := make([]*classic.Message, 0, len(raw))
	var bad error
	allowed := map[feeds.FeedRef]bool{}
	for _, b := range raw {
		m, err := classic.Parse(b)
		if err != nil {
			bad = fmt.Errorf("message %d of the batch: %w", len(msgs)+1, err)
			break
		}
		if only != nil && m.Author != *only {
			bad = fmt.Errorf("%w: %s sequence %d in the stream of %s", ErrOtherAuthor, m.Author, m.Sequence, *only)
			break
		}
		ok, seen := allowed[m.Author]
		if !seen {
			ok = g.Policy.Replicates(peer, m.Author)
			allowed[m.Author] = ok
		}
		if !ok {
			bad = fmt.Errorf("%w: %s sequence %d", ErrUnrequested, m.Author, m.Sequence)
			break
		}
		msgs = append(msgs, m)
	}
	res := g.W.Add(ctx, msgs)
	out := Outcome{Kept: len(res.Records), Held: res.Held, Heads: map[feeds.FeedRef]int64{}}
	if out.Kept > 0 && g.Kept != nil {
		g.Kept(peer, out.Kept)
	}
	held := len(msgs)
	if res.Err != nil {
		held = res.Failed
	}
	for _, m := range msgs[:held] {
		if m.Sequence > out.Heads[m.Author] {
			out.Heads[m.Author] = m.Sequence
		}
	}
	if res.Err != nil {
		if ctx.Err() != nil || errors.Is(res.Err, feedlog.ErrClosing) {
			return out, fmt.Errorf("ingest: %w", context.Canceled)
		}
		bad = res.Err
		if errors.Is(bad, feedlog.ErrFork) && g.Forks != nil && res.Failed < len(msgs) {
			m := msgs[res.Failed]
			g.Forks.RecordFork(m.Author, m.Sequence, peer, bad.Error())
		}
	}
	g.kept.Add(int64(out.Kept))
	g.held.Add(int64(out.Held))
	if bad == nil {
		return out, nil
	}
	out.Refused = len(raw) - out.Kept - out.Held
	g.refused.Add(int64(out.Refused))
	if g.Log != nil {
		g.Log.Warn("refused a message from peer; kept the valid messages before it, dropped the rest and the peer",
			"peer", peer.String(), "kept", out.Kept, "held", out.Held, "refused", out.Refused, "fork", errors.Is(bad, feedlog.ErrFork), "err", bad)
	}
	return out, fmt.Errorf("%w: %w", ErrInvalid, bad)
}
