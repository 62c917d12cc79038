package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/feedlog"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/plugins/publish"
	"github.com/cask-ssb/cask/sbot"
	"github.com/cask-ssb/cask/sbot/client"
)

// importSummary is the last output line of import.
type importSummary struct {
	Messages  int    `json:"messages"`
	Imported  int    `json:"imported"`
	Duplicate int    `json:"duplicate"`
	Invalid   int    `json:"invalid"`
	Feeds     int    `json:"feeds"`
	Via       string `json:"via"` // "daemon" or "store"
}

// importChunk is how many lines are checked and stored together (one
// fsync for the store; one addBatch call for a daemon).
const importChunk = 1000

// addBatchSize is the most messages of one addBatch call to a daemon.
const addBatchSize = 2000

func newImportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import [--repo DIR] FILE...",
		Short: "Validate newline-delimited messages and add them to the store",
		Long: `Validate newline-delimited JSON messages (plain or gzip; "-" for stdin) and
append the valid ones to the repo's store. Invalid messages are reported
(one JSON line each, like verify) and skipped; messages already stored are
counted as duplicates and skipped, so importing the same input twice adds
nothing twice. Every feed must start at sequence 1 in the input or continue
the feed already stored. A line that is not JSON stops the import (exit
status 2); what was imported before it stays stored.

When a daemon runs for the repo, messages go through it over REPO/socket
(muxrpc "add", feeds in parallel, each feed in order); otherwise the store
is opened directly. Progress goes to stderr; a summary line ends the output.
Exit status: 0 all stored or duplicate, 1 some invalid, 2 bad usage or
unreadable input.`,
		RunE: func(cmd *cobra.Command, files []string) error {
			if len(files) == 0 {
				return usageErr("import: no input files (use - for stdin)")
			}
			every, _ := cmd.Flags().GetDuration("progress")
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runImport(ctx, importOptions{
				repo:     repoFrom(cmd),
				files:    files,
				stdin:    cmd.InOrStdin(),
				stdout:   cmd.OutOrStdout(),
				stderr:   cmd.ErrOrStderr(),
				progress: every,
			})
		},
	}
	addRepoFlag(cmd.Flags())
	cmd.Flags().Duration("progress", 2*time.Second, "print a progress line to stderr at most this often on long inputs")
	return cmd
}

type importOptions struct {
	repo           string
	files          []string
	stdin          io.Reader
	stdout, stderr io.Writer
	progress       time.Duration
}

// appender is where import puts valid messages: the store, or a daemon.
type appender interface {
	// latest returns the feed's latest stored message (nil: none).
	latest(ctx context.Context, f feeds.FeedRef) (*classic.FeedState, error)
	// storedKeys returns the ids of f's stored messages with sequence in
	// [from, to].
	storedKeys(ctx context.Context, f feeds.FeedRef, from, to int64) (map[int64]feeds.MessageRef, error)
	// append stores msgs (in order per feed) durably.
	append(ctx context.Context, msgs []*classic.Message) error
}

var errDuplicate = errors.New("already stored")

type feedSeq struct {
	author feeds.FeedRef
	seq    int64
}

func runImport(ctx context.Context, o importOptions) error {
	if err := checkInputs(o.files); err != nil {
		return err
	}
	var app appender
	var via string
	if c, err := client.DialRepo(ctx, o.repo); err == nil {
		defer c.Close()
		app, via = &daemonAppender{c: c}, "daemon"
	} else {
		st, err := sbot.OpenOffline(o.repo)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer st.Close()
		app, via = &storeAppender{st: st.Store, w: st.Writer}, "store"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := bufio.NewWriter(o.stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	multi := len(o.files) > 1
	chunks := make(chan []inputLine, 2)
	errc := make(chan error, 1)
	go func() { errc <- readChunks(ctx, o.files, o.stdin, importChunk, chunks) }()
	stopReader := func() error {
		cancel()
		for range chunks {
		}
		return <-errc
	}
	cc := newChainChecker(false, app.latest)
	sum := importSummary{Via: via}
	authors := map[feeds.FeedRef]struct{}{}
	prog := newProgress(o.stderr, "import", o.progress)
	// The append of one chunk runs while the next is read and checked
	// (signatures on every core): at most one is in flight, so chunks are
	// stored in input order. waitAppend waits for it; every way out of
	// the loop waits, so nothing acknowledged is left behind.
	var inflight chan error
	waitAppend := func() error {
		if inflight == nil {
			return nil
		}
		err := <-inflight
		inflight = nil
		return err
	}
	fail := func(err error) error {
		stopReader()
		return fmt.Errorf("import: %w (messages acknowledged before this are stored; run import again to continue)", err)
	}
	for chunk := range chunks {
		// A line that is not JSON ends the import; what precedes it is
		// still checked and stored.
		var bad *inputLine
		for i := range chunk {
			if chunk[i].malformed() {
				bad = &chunk[i]
				chunk = chunk[:i]
				break
			}
		}
		valid, err := importChunkLines(ctx, app, cc, chunk, waitAppend)
		if err != nil {
			_ = waitAppend() // the error above is the first one
			return fail(err)
		}
		if err := waitAppend(); err != nil {
			return fail(err)
		}
		if len(valid) > 0 {
			inflight = make(chan error, 1)
			go func(ch chan<- error) { ch <- app.append(ctx, valid) }(inflight)
		}
		for i := range chunk {
			l := &chunk[i]
			sum.Messages++
			if l.msg != nil {
				authors[l.msg.Author] = struct{}{}
			}
			switch {
			case l.err == nil:
				sum.Imported++
			case errors.Is(l.err, errDuplicate):
				sum.Duplicate++
			default:
				sum.Invalid++
				if err := enc.Encode(issueOf(l, multi)); err != nil {
					stopReader()
					return fmt.Errorf("import: write output: %w", err)
				}
			}
		}
		prog.update(sum.Messages, sum.Imported)
		if bad != nil {
			if err := waitAppend(); err != nil {
				return fail(err)
			}
			stopReader()
			sum.Feeds = len(authors)
			enc.Encode(sum)
			name := bad.file
			if name == "-" {
				name = "stdin"
			}
			return usageErr("import: %s line %d: %w; import stopped there, the %d messages before it were stored", name, bad.line, bad.err, sum.Imported)
		}
	}
	if err := waitAppend(); err != nil {
		return fail(err)
	}
	prog.done(sum.Messages, sum.Imported)
	sum.Feeds = len(authors)
	if err := <-errc; err != nil {
		// Unreadable input: what was read before it is stored.
		enc.Encode(sum)
		return err
	}
	if err := enc.Encode(sum); err != nil {
		return fmt.Errorf("import: write output: %w", err)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("import: write output: %w", err)
	}
	if sum.Invalid > 0 {
		return &exitError{code: 1}
	}
	return nil
}

// importChunkLines classifies every line of chunk (err nil = to be stored
// now, errDuplicate, or why it is invalid) and returns the valid ones,
// for the caller to append.
//
// Invariant: at the start of a chunk, every feed state of cc equals the
// head of that feed once the previous chunk's append (if one is in
// flight) is done, since everything accepted before was handed to it.
// waitAppend waits for that append; it is called before the store is
// read for messages at or below a feed's head, which may be in it.
func importChunkLines(ctx context.Context, app appender, cc *chainChecker, chunk []inputLine, waitAppend func() error) ([]*classic.Message, error) {
	// 1. Messages at or below a feed's stored head: the same id is a
	// duplicate, another id a fork.
	type span struct{ lo, hi int64 }
	spans := map[feeds.FeedRef]*span{}
	var order []feeds.FeedRef
	for i := range chunk {
		l := &chunk[i]
		if l.err != nil {
			continue
		}
		st, err := cc.state(ctx, l.msg.Author)
		if err != nil {
			return nil, err
		}
		if st == nil || l.msg.Sequence > st.Sequence {
			continue
		}
		s := spans[l.msg.Author]
		if s == nil {
			s = &span{l.msg.Sequence, l.msg.Sequence}
			spans[l.msg.Author] = s
			order = append(order, l.msg.Author)
		}
		s.lo, s.hi = min(s.lo, l.msg.Sequence), max(s.hi, l.msg.Sequence)
	}
	stored := map[feedSeq]feeds.MessageRef{}
	if len(order) > 0 {
		if err := waitAppend(); err != nil {
			return nil, err
		}
	}
	for _, a := range order {
		keys, err := app.storedKeys(ctx, a, spans[a].lo, spans[a].hi)
		if err != nil {
			return nil, fmt.Errorf("read stored messages of %s: %w", a, err)
		}
		for seq, k := range keys {
			stored[feedSeq{a, seq}] = k
		}
	}
	for i := range chunk {
		l := &chunk[i]
		if l.err != nil || spans[l.msg.Author] == nil {
			continue
		}
		if st := cc.states[l.msg.Author]; l.msg.Sequence > st.Sequence {
			continue
		}
		switch k, ok := stored[feedSeq{l.msg.Author, l.msg.Sequence}]; {
		case !ok:
			return nil, fmt.Errorf("sequence %d of %s is missing from the store below its head", l.msg.Sequence, l.msg.Author)
		case k == l.msg.Key:
			l.err = errDuplicate
		default:
			l.err = fmt.Errorf("sequence %d of %s is already stored with id %s (a fork or an altered message)", l.msg.Sequence, l.msg.Author, k)
		}
	}

	// 2. Everything else: signature and chain, in input order.
	checked := make([]bool, len(chunk))
	for i := range chunk {
		checked[i] = chunk[i].err == nil
	}
	if err := cc.check(ctx, chunk); err != nil {
		return nil, err
	}

	// 3. A message repeated in the input is a duplicate, not an error.
	accepted := map[feedSeq]feeds.MessageRef{}
	var valid []*classic.Message
	for i := range chunk {
		l := &chunk[i]
		if !checked[i] {
			continue
		}
		fs := feedSeq{l.msg.Author, l.msg.Sequence}
		if l.err == nil {
			accepted[fs] = l.msg.Key
			valid = append(valid, l.msg)
		} else if k, ok := accepted[fs]; ok && k == l.msg.Key {
			l.err = errDuplicate
		}
	}
	return valid, nil
}

// storeAppender writes to a store opened offline.
type storeAppender struct {
	st *store.Store
	w  *feedlog.Log
}

func (a *storeAppender) latest(_ context.Context, f feeds.FeedRef) (*classic.FeedState, error) {
	seq, key, ok, err := a.st.Latest(f)
	if err != nil {
		return nil, fmt.Errorf("latest of %s: %w", f, err)
	}
	if !ok {
		return nil, nil
	}
	rec, err := a.st.GetBySequence(f, seq)
	if err != nil {
		return nil, fmt.Errorf("read %s sequence %d: %w", f, seq, err)
	}
	return stateOf(key, seq, rec.Value), nil
}

// stateOf is the feed state after the stored message value (key, seq).
// The timestamp comes from the value, as the daemon's writer reads it.
func stateOf(key feeds.MessageRef, seq int64, value []byte) *classic.FeedState {
	fs := &classic.FeedState{Key: key, Sequence: seq}
	if m, err := classic.Parse(value); err == nil {
		fs.Timestamp = classic.StateAfter(m).Timestamp
	}
	return fs
}

func (a *storeAppender) storedKeys(_ context.Context, f feeds.FeedRef, from, to int64) (map[int64]feeds.MessageRef, error) {
	keys := make(map[int64]feeds.MessageRef, to-from+1)
	for seq := from; seq <= to; seq++ {
		rec, err := a.st.GetBySequence(f, seq)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		keys[seq] = rec.Key
	}
	return keys, nil
}

func (a *storeAppender) append(ctx context.Context, msgs []*classic.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	// The signatures and chains were checked already: the feed writer
	// validates the chain again and commits the chunk with one fsync.
	if res := a.w.AddVerified(ctx, msgs); res.Err != nil {
		return fmt.Errorf("append %d messages: stored %d, then: %w", len(msgs), len(res.Records), res.Err)
	}
	return nil
}

// daemonAppender sends messages to a running daemon with "add", which
// validates them again. Feeds go in parallel, each feed's messages one
// after the other (the daemon serves concurrent calls in any order).
type daemonAppender struct{ c *client.Client }

// historyRecord is the part of a createHistoryStream item import reads.
type historyRecord struct {
	Key   feeds.MessageRef `json:"key"`
	Value struct {
		Sequence int64 `json:"sequence"`
	} `json:"value"`
}

func (a *daemonAppender) latest(ctx context.Context, f feeds.FeedRef) (*classic.FeedState, error) {
	raw, err := a.c.Call1(ctx, "createHistoryStream", map[string]any{"id": f.String(), "reverse": true, "limit": 1, "keys": true})
	if err != nil {
		return nil, fmt.Errorf("latest of %s: %w", f, err)
	}
	if raw == nil {
		return nil, nil
	}
	var rec historyRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("latest of %s: %w", f, err)
	}
	var kvt struct {
		Value json.RawMessage `json:"value"`
	}
	_ = json.Unmarshal(raw, &kvt)
	return stateOf(rec.Key, rec.Value.Sequence, kvt.Value), nil
}

func (a *daemonAppender) storedKeys(ctx context.Context, f feeds.FeedRef, from, to int64) (map[int64]feeds.MessageRef, error) {
	keys := make(map[int64]feeds.MessageRef, to-from+1)
	for raw, err := range a.c.History(ctx, map[string]any{"id": f.String(), "seq": from, "limit": to - from + 1, "keys": true}) {
		if err != nil {
			return nil, err
		}
		var rec historyRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, err
		}
		if rec.Value.Sequence >= from && rec.Value.Sequence <= to {
			keys[rec.Value.Sequence] = rec.Key
		}
	}
	return keys, nil
}

// append sends msgs with addBatch (owner only), in input order, in calls
// of at most addBatchSize messages: the daemon verifies and commits each
// call as one batch.
func (a *daemonAppender) append(ctx context.Context, msgs []*classic.Message) error {
	for len(msgs) > 0 {
		part := msgs[:min(len(msgs), addBatchSize)]
		msgs = msgs[len(part):]
		arg := make([]json.RawMessage, len(part))
		for i, m := range part {
			arg[i] = m.Compact
		}
		var res publish.BatchResult
		if err := a.c.Endpoint().Async(ctx, &res, []string{"addBatch"}, arg); err != nil {
			return fmt.Errorf("addBatch of %d messages (from sequence %d of %s): %w", len(part), part[0].Sequence, part[0].Author, err)
		}
		if res.Stored+res.Held != len(part) {
			return fmt.Errorf("addBatch of %d messages: the daemon stored %d and held %d", len(part), res.Stored, res.Held)
		}
	}
	return nil
}
