package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/sbot"
	"github.com/cask-ssb/cask/sbot/client"
)

type importSummary struct {
	Messages  int    `json:"messages"`
	Imported  int    `json:"imported"`
	Duplicate int    `json:"duplicate"`
	Invalid   int    `json:"invalid"`
	Feeds     int    `json:"feeds"`
	Via       string `json:"via"`
}

func newImportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import [--repo DIR] FILE...",
		Short: "Validate newline-delimited messages and add them to the store",
		Long: `Validate newline-delimited JSON messages (plain or gzip; "-" for stdin) and
append the valid ones to the repo's store. Invalid messages are reported
(one JSON line each) and skipped; messages already stored are skipped, so
importing the same input twice adds nothing twice. Every feed must start at
sequence 1 or continue the feed already stored. When a daemon runs for the
repo, messages go through it (muxrpc "add"); otherwise the store is opened
directly. Progress goes to stderr; a summary line ends the output.`,
		RunE: func(cmd *cobra.Command, files []string) error {
			if len(files) == 0 {
				return usageErr("import: no input files (use - for stdin)")
			}
			return runImport(cmd.Context(), repoFrom(cmd), files)
		},
	}
	addRepoFlag(cmd.Flags())
	return cmd
}

// appender is where import puts valid messages.
type appender interface {
	latest(feeds.FeedRef) (*classic.FeedState, error)
	stored(author feeds.FeedRef, seq int64) (feeds.MessageRef, bool, error)
	append(ctx context.Context, msgs []*classic.Message) error
}

func runImport(ctx context.Context, repo string, files []string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	var app appender
	var via string
	if c, err := client.DialRepo(ctx, repo); err == nil {
		defer c.Close()
		app, via = &daemonAppender{c: c}, "daemon"
	} else {
		st, err := sbot.OpenOffline(repo)
		if err != nil {
			return err
		}
		defer st.Close()
		app, via = &storeAppender{st: st.Store}, "store"
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	multi := len(files) > 1
	chunks := make(chan []inputLine, 2)
	errc := make(chan error, 1)
	go func() { errc <- readChunks(ctx, files, 1000, chunks) }()
	cc := newChainChecker(false, app.latest)
	sum := importSummary{Via: via}
	authors := map[feeds.FeedRef]bool{}
	prog := newProgress("import")
	for chunk := range chunks {
		// Skip what is stored already (same id); a different message at a
		// stored sequence is a fork and invalid.
		for i := range chunk {
			l := &chunk[i]
			if l.err != nil || l.msg == nil {
				continue
			}
			key, ok, err := app.stored(l.msg.Author, l.msg.Sequence)
			if err != nil {
				return err
			}
			if ok {
				if key == l.msg.Key {
					l.err = errDuplicate
				} else {
					l.err = fmt.Errorf("fork: sequence %d of %s is stored with id %s", l.msg.Sequence, l.msg.Author, key)
				}
			}
		}
		pending := make([]inputLine, 0, len(chunk))
		for _, l := range chunk {
			if l.err == nil {
				pending = append(pending, l)
			}
		}
		if err := cc.check(ctx, pending); err != nil {
			return err
		}
		j := 0
		var valid []*classic.Message
		for i := range chunk {
			if chunk[i].err == nil {
				chunk[i].err = pending[j].err
				j++
				if chunk[i].err == nil {
					valid = append(valid, chunk[i].msg)
				}
			}
		}
		if err := app.append(ctx, valid); err != nil {
			return fmt.Errorf("import: %w (messages before this chunk are stored)", err)
		}
		for _, l := range chunk {
			sum.Messages++
			if l.msg != nil {
				authors[l.msg.Author] = true
			}
			switch {
			case l.err == nil:
				sum.Imported++
			case errors.Is(l.err, errDuplicate):
				sum.Duplicate++
			default:
				sum.Invalid++
				is := verifyIssue{Line: l.line, Error: l.err.Error()}
				if multi {
					is.File = l.file
				}
				if l.msg != nil {
					is.Key, is.Author, is.Sequence = l.msg.Key.String(), l.msg.Author.String(), l.msg.Sequence
				}
				enc.Encode(is)
			}
		}
		prog.update(sum.Messages, sum.Imported)
	}
	prog.done(sum.Messages, sum.Imported)
	if err := <-errc; err != nil {
		return err
	}
	sum.Feeds = len(authors)
	enc.Encode(sum)
	if sum.Invalid > 0 {
		return &exitError{code: 1}
	}
	return nil
}

var errDuplicate = errors.New("already stored")

type storeAppender struct{ st *store.Store }

func (a *storeAppender) latest(f feeds.FeedRef) (*classic.FeedState, error) {
	seq, key, ok, err := a.st.Latest(f)
	if err != nil || !ok {
		return nil, err
	}
	return &classic.FeedState{Key: key, Sequence: seq}, nil
}

func (a *storeAppender) stored(f feeds.FeedRef, seq int64) (feeds.MessageRef, bool, error) {
	rec, err := a.st.GetBySequence(f, seq)
	if errors.Is(err, store.ErrNotFound) {
		return feeds.MessageRef{}, false, nil
	}
	if err != nil {
		return feeds.MessageRef{}, false, err
	}
	return rec.Key, true, nil
}

func (a *storeAppender) append(_ context.Context, msgs []*classic.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	now := float64(time.Now().UnixMilli())
	recs := make([]store.Record, len(msgs))
	for i, m := range msgs {
		recs[i] = store.Record{Key: m.Key, Author: m.Author, Sequence: m.Sequence, Timestamp: now, Value: m.Compact}
	}
	_, err := a.st.Append(recs)
	return err
}

// daemonAppender sends messages to a running daemon with "add". The
// daemon validates again; adds of one feed go in order.
type daemonAppender struct{ c *client.Client }

func (a *daemonAppender) latest(f feeds.FeedRef) (*classic.FeedState, error) {
	var seq int64
	err := a.c.Endpoint().Async(context.Background(), &seq, []string{"latestSequence"}, f.String())
	if err != nil {
		return nil, nil // unknown feed
	}
	var kvt struct {
		Key feeds.MessageRef `json:"key"`
	}
	raw, err := a.c.Call1(context.Background(), "createHistoryStream", map[string]any{"id": f.String(), "seq": seq, "limit": 1})
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &kvt); err != nil {
		return nil, fmt.Errorf("read latest of %s: %w", f, err)
	}
	return &classic.FeedState{Key: kvt.Key, Sequence: seq}, nil
}

func (a *daemonAppender) stored(f feeds.FeedRef, seq int64) (feeds.MessageRef, bool, error) {
	raw, err := a.c.Call1(context.Background(), "createHistoryStream", map[string]any{"id": f.String(), "seq": seq, "limit": 1})
	if err != nil || raw == nil {
		return feeds.MessageRef{}, false, err
	}
	var kvt struct {
		Key   feeds.MessageRef         `json:"key"`
		Value struct{ Sequence int64 } `json:"value"`
	}
	if err := json.Unmarshal(raw, &kvt); err != nil {
		return feeds.MessageRef{}, false, err
	}
	if kvt.Value.Sequence != seq {
		return feeds.MessageRef{}, false, nil
	}
	return kvt.Key, true, nil
}

func (a *daemonAppender) append(ctx context.Context, msgs []*classic.Message) error {
	for _, m := range msgs {
		var out json.RawMessage
		if err := a.c.Endpoint().Async(ctx, &out, []string{"add"}, json.RawMessage(m.Compact)); err != nil {
			return fmt.Errorf("add %s: %w", m.Key, err)
		}
	}
	return nil
}
