package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
)

// inputLine is one line of newline-delimited JSON input: a
// {"key","value","timestamp"} record or a bare message value.
type inputLine struct {
	file    string
	line    int
	msg     *classic.Message
	claimed *feeds.MessageRef
	err     error
}

// maxLine bounds one input line (a message is at most 8192 UTF-16 units,
// so a few hundred KiB is plenty even with heavy escaping).
const maxLine = 4 << 20

// openInput opens a file ("-" = stdin), transparently gunzipping it when
// it starts with the gzip magic bytes.
func openInput(name string) (io.ReadCloser, error) {
	var f io.ReadCloser = os.Stdin
	if name != "-" {
		var err error
		f, err = os.Open(name)
		if err != nil {
			return nil, err
		}
	}
	br := bufio.NewReaderSize(f, 1<<16)
	magic, _ := br.Peek(2)
	if bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{zr, f}, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{br, f}, nil
}

// readChunks reads every file and sends chunks of parsed lines, in order.
// Parsing runs on all cores; the order of lines is kept.
func readChunks(ctx context.Context, files []string, chunkSize int, out chan<- []inputLine) error {
	defer close(out)
	workers := runtime.GOMAXPROCS(0)
	for _, name := range files {
		rc, err := openInput(name)
		if err != nil {
			return usageErr("read %s: %w", name, err)
		}
		sc := bufio.NewScanner(rc)
		sc.Buffer(make([]byte, 1<<16), maxLine)
		lineNo := 0
		var raw [][]byte
		var nums []int
		flush := func() {
			if len(raw) == 0 {
				return
			}
			chunk := make([]inputLine, len(raw))
			var wg sync.WaitGroup
			per := (len(raw) + workers - 1) / workers
			for w := 0; w < workers; w++ {
				lo, hi := w*per, min((w+1)*per, len(raw))
				if lo >= hi {
					break
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := lo; i < hi; i++ {
						l := inputLine{file: name, line: nums[i]}
						l.msg, _, l.claimed, l.err = classic.ParseKVT(raw[i])
						chunk[i] = l
					}
				}()
			}
			wg.Wait()
			raw, nums = raw[:0], nums[:0]
			select {
			case out <- chunk:
			case <-ctx.Done():
			}
		}
		for sc.Scan() {
			lineNo++
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			raw = append(raw, append([]byte(nil), b...))
			nums = append(nums, lineNo)
			if len(raw) == chunkSize {
				flush()
			}
		}
		err = sc.Err()
		flush()
		rc.Close()
		if err != nil {
			return usageErr("read %s at line %d: %w", name, lineNo+1, err)
		}
	}
	return nil
}

// chainChecker validates chunks: signatures in parallel batches, then the
// per-feed chain in input order. A feed whose first message in the input is
// not sequence 1 is checked from that message on.
type chainChecker struct {
	v      *classic.Verifier
	states map[feeds.FeedRef]*classic.FeedState
	seen   map[feeds.FeedRef]bool
	// start, when set, gives the state to check a feed's first message
	// against (import: the store's latest).
	start func(feeds.FeedRef) (*classic.FeedState, error)
	// partial allows a feed to start at any sequence (verify); import
	// needs every feed from sequence 1.
	partial bool
}

func newChainChecker(partial bool, start func(feeds.FeedRef) (*classic.FeedState, error)) *chainChecker {
	return &chainChecker{
		partial: partial,
		v:       classic.NewVerifier(nil),
		states:  map[feeds.FeedRef]*classic.FeedState{},
		seen:    map[feeds.FeedRef]bool{},
		start:   start,
	}
}

// check fills in l.err for every line of chunk.
func (c *chainChecker) check(ctx context.Context, chunk []inputLine) error {
	msgs := make([]*classic.Message, 0, len(chunk))
	idx := make([]int, 0, len(chunk))
	for i := range chunk {
		l := &chunk[i]
		if l.err != nil {
			continue
		}
		m := l.msg
		if l.claimed != nil && *l.claimed != m.Key {
			l.err = fmt.Errorf("key %s does not match the message (computed %s)", l.claimed, m.Key)
			continue
		}
		if !c.seen[m.Author] {
			c.seen[m.Author] = true
			if c.start != nil {
				s, err := c.start(m.Author)
				if err != nil {
					return err
				}
				if s != nil {
					c.states[m.Author] = s
				}
			}
			if c.partial && c.states[m.Author] == nil && m.Sequence > 1 && m.Previous != nil {
				// Checked from this message on: pretend we hold its predecessor.
				c.states[m.Author] = &classic.FeedState{Key: *m.Previous, Sequence: m.Sequence - 1}
			}
		}
		msgs = append(msgs, m)
		idx = append(idx, i)
	}
	errs := c.v.Verify(ctx, msgs, c.states)
	for j, err := range errs {
		chunk[idx[j]].err = err
	}
	return nil
}
