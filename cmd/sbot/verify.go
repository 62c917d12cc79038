package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cask-ssb/cask/feeds"
)

// verifyIssue is the output line for an invalid message (verify and import).
type verifyIssue struct {
	File     string `json:"file,omitempty"`
	Line     int    `json:"line"`
	Key      string `json:"key,omitempty"`
	Author   string `json:"author,omitempty"`
	Sequence int64  `json:"sequence,omitempty"`
	Error    string `json:"error"`
}

func issueOf(l *inputLine, multi bool) verifyIssue {
	is := verifyIssue{Line: l.line, Error: l.err.Error()}
	if multi {
		is.File = l.file
	}
	if l.msg != nil {
		is.Key, is.Author, is.Sequence = l.msg.Key.String(), l.msg.Author.String(), l.msg.Sequence
	}
	return is
}

// verifyID is the --ids output line for a valid message.
type verifyID struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line"`
	ID   string `json:"id"`
}

// summary is the last output line of verify.
type summary struct {
	Messages int `json:"messages"`
	Valid    int `json:"valid"`
	Invalid  int `json:"invalid"`
	Feeds    int `json:"feeds"`
}

func newVerifyCmd() *cobra.Command {
	var ids bool
	cmd := &cobra.Command{
		Use:   "verify [--ids] FILE...",
		Short: "Validate newline-delimited messages offline",
		Long: `Validate newline-delimited JSON messages (plain or gzip; "-" for stdin).
Each line is a {"key","value","timestamp"} record or a bare message value.
Every message is checked in file order against the previous valid message
of its feed in the same input; a feed whose first message in the input is
not sequence 1 is checked from that message on. Prints one JSON line per
invalid message (with --ids, one line per message), then a summary line.
Line numbers count from 1 in each file.
Exit status: 0 all valid, 1 some invalid, 2 bad usage or unreadable input.`,
		RunE: func(cmd *cobra.Command, files []string) error {
			if len(files) == 0 {
				return usageErr("verify: no input files (use - for stdin)")
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runVerify(ctx, cmd.OutOrStdout(), cmd.InOrStdin(), files, ids)
		},
	}
	cmd.Flags().BoolVar(&ids, "ids", false, "print the id of every message")
	return cmd
}

// runVerify validates files (read from stdin for "-") and writes the
// report to w. It returns an *exitError with code 1 when some message is
// invalid and code 2 when the input cannot be read.
func runVerify(ctx context.Context, w io.Writer, stdin io.Reader, files []string, ids bool) error {
	if err := checkInputs(files); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := bufio.NewWriterSize(w, 1<<16)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	multi := len(files) > 1
	chunks := make(chan []inputLine, 2)
	errc := make(chan error, 1)
	go func() { errc <- readChunks(ctx, files, stdin, 4096, chunks) }()
	fail := func(err error) error {
		cancel()
		for range chunks { // let the reader finish
		}
		<-errc
		out.Flush()
		return err
	}
	cc := newChainChecker(true, nil)
	var sum summary
	authors := map[feeds.FeedRef]struct{}{}
	for chunk := range chunks {
		if err := cc.check(ctx, chunk); err != nil {
			return fail(fmt.Errorf("verify: %w", err))
		}
		for i := range chunk {
			l := &chunk[i]
			sum.Messages++
			if l.msg != nil {
				authors[l.msg.Author] = struct{}{}
			}
			var err error
			switch {
			case l.err != nil:
				sum.Invalid++
				err = enc.Encode(issueOf(l, multi))
			default:
				sum.Valid++
				if ids {
					id := verifyID{Line: l.line, ID: l.msg.Key.String()}
					if multi {
						id.File = l.file
					}
					err = enc.Encode(id)
				}
			}
			if err != nil {
				return fail(fmt.Errorf("verify: write output: %w", err))
			}
		}
	}
	if err := <-errc; err != nil {
		out.Flush()
		return err
	}
	sum.Feeds = len(authors)
	if err := enc.Encode(sum); err != nil {
		return fmt.Errorf("verify: write output: %w", err)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("verify: write output: %w", err)
	}
	if sum.Invalid > 0 {
		return &exitError{code: 1}
	}
	return nil
}
