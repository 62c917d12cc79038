package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"

	"github.com/spf13/cobra"

	"github.com/cask-ssb/cask/feeds"
)

type verifyIssue struct {
	File     string `json:"file,omitempty"`
	Line     int    `json:"line"`
	Key      string `json:"key,omitempty"`
	Author   string `json:"author,omitempty"`
	Sequence int64  `json:"sequence,omitempty"`
	Error    string `json:"error"`
}

type verifyID struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line"`
	ID   string `json:"id"`
}

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
of its feed in the same input. Prints one JSON line per invalid message
(with --ids, one line per message), then a summary line.
Exit status: 0 all valid, 1 some invalid, 2 bad usage or unreadable input.`,
		RunE: func(cmd *cobra.Command, files []string) error {
			if len(files) == 0 {
				return usageErr("verify: no input files (use - for stdin)")
			}
			return runVerify(cmd.Context(), files, ids)
		},
	}
	cmd.Flags().BoolVar(&ids, "ids", false, "print the id of every message")
	return cmd
}

func runVerify(ctx context.Context, files []string, ids bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	multi := len(files) > 1
	chunks := make(chan []inputLine, 2)
	errc := make(chan error, 1)
	go func() { errc <- readChunks(ctx, files, 4096, chunks) }()
	cc := newChainChecker(true, nil)
	var sum summary
	authors := map[feeds.FeedRef]bool{}
	for chunk := range chunks {
		if err := cc.check(ctx, chunk); err != nil {
			return err
		}
		for _, l := range chunk {
			sum.Messages++
			file := ""
			if multi {
				file = l.file
			}
			if l.err != nil {
				sum.Invalid++
				is := verifyIssue{File: file, Line: l.line, Error: l.err.Error()}
				if l.msg != nil {
					is.Key = l.msg.Key.String()
					is.Author = l.msg.Author.String()
					is.Sequence = l.msg.Sequence
					authors[l.msg.Author] = true
				}
				enc.Encode(is)
				continue
			}
			sum.Valid++
			authors[l.msg.Author] = true
			if ids {
				enc.Encode(verifyID{File: file, Line: l.line, ID: l.msg.Key.String()})
			}
		}
	}
	if err := <-errc; err != nil {
		out.Flush()
		return err
	}
	sum.Feeds = len(authors)
	enc.Encode(sum)
	if sum.Invalid > 0 {
		return &exitError{code: 1, err: nil}
	}
	return nil
}
