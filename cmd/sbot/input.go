package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
)

// inputLine is one non-blank line of newline-delimited JSON input: a
// {"key","value","timestamp"} record or a bare message value.
type inputLine struct {
	file string
	line int              // 1-based line number in file
	msg  *classic.Message // nil when the line is not a message
	err  error            // why the line is not a valid message (nil: valid so far)
}

// malformed reports whether the line is not JSON at all (as opposed to
// JSON that is not a valid message).
func (l *inputLine) malformed() bool {
	var se *classic.SyntaxError
	return l.msg == nil && errors.As(l.err, &se)
}

// maxLine bounds one input line (a message is at most 8192 UTF-16 units,
// so a few hundred KiB is plenty even with heavy escaping).
const maxLine = 4 << 20

// checkInputs rejects a bad file list before anything is read or written:
// missing or unreadable files, directories, and "-" given twice.
func checkInputs(files []string) error {
	stdin := false
	for _, name := range files {
		if name == "-" {
			if stdin {
				return usageErr(`"-" (stdin) given more than once`)
			}
			stdin = true
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			return usageErr("read %s: %w", name, err)
		}
		if fi.IsDir() {
			return usageErr("read %s: is a directory", name)
		}
	}
	return nil
}

// openInput opens a file ("-" = stdin), transparently gunzipping it when
// it starts with the gzip magic bytes.
func openInput(name string, stdin io.Reader) (io.ReadCloser, error) {
	var r io.Reader = stdin
	var c io.Closer = io.NopCloser(nil)
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		r, c = f, f
	}
	br := bufio.NewReaderSize(r, 1<<16)
	magic, _ := br.Peek(2)
	if bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return struct {
			io.Reader
			io.Closer
		}{zr, c}, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{br, c}, nil
}

// readChunks reads every file in order and sends chunks of parsed lines
// (at most chunkSize each, never spanning two files) on out, which it
// closes when done. Parsing runs on all cores; the order of lines is kept.
// A record whose "key" differs from the computed id is marked invalid
// here. Unreadable input is a usage error (exit status 2).
func readChunks(ctx context.Context, files []string, stdin io.Reader, chunkSize int, out chan<- []inputLine) error {
	defer close(out)
	workers := runtime.GOMAXPROCS(0)
	for _, name := range files {
		if err := readFile(ctx, name, stdin, chunkSize, workers, out); err != nil {
			return err
		}
	}
	return nil
}

func readFile(ctx context.Context, name string, stdin io.Reader, chunkSize, workers int, out chan<- []inputLine) error {
	rc, err := openInput(name, stdin)
	if err != nil {
		return usageErr("read %s: %w", name, err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 1<<16), maxLine)
	lineNo := 0
	var raw [][]byte
	var nums []int
	flush := func() error {
		if len(raw) == 0 {
			return nil
		}
		chunk := parseLines(name, raw, nums, workers)
		raw, nums = nil, nil
		select {
		case out <- chunk:
			return nil
		case <-ctx.Done():
			return ctx.Err()
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
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if err := sc.Err(); err != nil {
		return usageErr("read %s at line %d: %w", name, lineNo+1, err)
	}
	return nil
}

// parseLines parses raw (lines nums of file name) on up to workers cores.
func parseLines(name string, raw [][]byte, nums []int, workers int) []inputLine {
	chunk := make([]inputLine, len(raw))
	var wg sync.WaitGroup
	per := (len(raw) + workers - 1) / workers
	for lo := 0; lo < len(raw); lo += per {
		hi := min(lo+per, len(raw))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				l := inputLine{file: name, line: nums[i]}
				var claimed *feeds.MessageRef
				l.msg, _, claimed, l.err = classic.ParseKVT(raw[i])
				if l.err == nil && claimed != nil && *claimed != l.msg.Key {
					l.err = fmt.Errorf("record key %s does not match the message (computed %s)", claimed, l.msg.Key)
				}
				chunk[i] = l
			}
		}()
	}
	wg.Wait()
	return chunk
}

// chainChecker validates chunks: signatures in parallel batches, then the
// per-feed chain in input order, each message against the latest valid
// message of its feed.
type chainChecker struct {
	v      *classic.Verifier
	states map[feeds.FeedRef]*classic.FeedState
	seen   map[feeds.FeedRef]bool
	// start, when set, gives the state to check a feed's first message
	// against (import: the store's latest; nil = not stored).
	start func(context.Context, feeds.FeedRef) (*classic.FeedState, error)
	// partial lets a feed start at any sequence (verify): a feed whose
	// first message in the input is not sequence 1 is checked from that
	// message on. Without it (import) such a feed is rejected unless the
	// store continues it.
	partial bool
}

func newChainChecker(partial bool, start func(context.Context, feeds.FeedRef) (*classic.FeedState, error)) *chainChecker {
	return &chainChecker{
		partial: partial,
		v:       classic.NewVerifier(nil),
		states:  map[feeds.FeedRef]*classic.FeedState{},
		seen:    map[feeds.FeedRef]bool{},
		start:   start,
	}
}

// state returns the current state of feed f (nil: no valid message known),
// loading it with start on first sight.
func (c *chainChecker) state(ctx context.Context, f feeds.FeedRef) (*classic.FeedState, error) {
	if !c.seen[f] {
		if c.start != nil {
			s, err := c.start(ctx, f)
			if err != nil {
				return nil, err
			}
			if s != nil {
				c.states[f] = s
			}
		}
		c.seen[f] = true
	}
	return c.states[f], nil
}

// errNotContinued is the import error for a message of a feed that is not
// in the store and has no valid sequence 1 earlier in the input.
var errNotContinued = errors.New("feed is not in the store and the input has no valid message 1 of it")

// check sets l.err for every line of chunk that is not a valid next
// message of its feed, and advances the feed states past the valid ones.
func (c *chainChecker) check(ctx context.Context, chunk []inputLine) error {
	msgs := make([]*classic.Message, 0, len(chunk))
	idx := make([]int, 0, len(chunk))
	unknown := map[feeds.FeedRef]bool{} // feeds without state at the start of the chunk
	for i := range chunk {
		l := &chunk[i]
		if l.err != nil {
			continue
		}
		m := l.msg
		first := !c.seen[m.Author]
		st, err := c.state(ctx, m.Author)
		if err != nil {
			return err
		}
		if st == nil {
			unknown[m.Author] = true
			if c.partial && first && m.Sequence > 1 && m.Previous != nil {
				// Checked from this message on: pretend we hold its
				// predecessor (whose timestamp we do not know).
				c.states[m.Author] = &classic.FeedState{Key: *m.Previous, Sequence: m.Sequence - 1}
			}
		}
		msgs = append(msgs, m)
		idx = append(idx, i)
	}
	errs := c.v.Verify(ctx, msgs, c.states)
	if err := ctx.Err(); err != nil {
		return err
	}
	if !c.partial {
		// A message that fails because its feed has no valid message yet
		// (neither stored nor earlier in the input) gets a clear reason.
		started := map[feeds.FeedRef]bool{}
		for j, m := range msgs {
			switch {
			case errs[j] == nil:
				started[m.Author] = true
			case unknown[m.Author] && !started[m.Author] && m.Sequence > 1:
				errs[j] = fmt.Errorf("%w: %s sequence %d; import the feed from sequence 1 first", errNotContinued, m.Author, m.Sequence)
			}
		}
	}
	for j, err := range errs {
		chunk[idx[j]].err = err
	}
	return nil
}
