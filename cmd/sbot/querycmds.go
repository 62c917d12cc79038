package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/sbot"
	"github.com/cask-ssb/cask/sbot/client"
)

// addQueryCmds adds the client subcommands of the query indexes (type,
// links, about, thread, query, private) and the offline reindex.
func addQueryCmds(root *cobra.Command) {
	mk := func(use, short string, nargs int, run func(cmd *cobra.Command, a []string, ctx context.Context, c *client.Client, enc *jsonOut) error) *cobra.Command {
		cmd := &cobra.Command{Use: use, Short: short, Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(nargs)(cmd, args); err != nil {
				return usageErr("%w", err)
			}
			return nil
		}}
		cmd.RunE = func(cmd *cobra.Command, a []string) error {
			return clientRun(cmd, func(ctx context.Context, c *client.Client, enc *jsonOut) error {
				return run(cmd, a, ctx, c, enc)
			})
		}
		addClientFlags(cmd.Flags())
		root.AddCommand(cmd)
		return cmd
	}
	streamFlags := func(cmd *cobra.Command) {
		cmd.Flags().Int("limit", 0, "print at most this many results")
		cmd.Flags().Bool("reverse", false, "newest first")
		cmd.Flags().Bool("live", false, "keep printing new results as they arrive")
	}
	streamOpts := func(cmd *cobra.Command, opts map[string]any) bool {
		if n, _ := cmd.Flags().GetInt("limit"); n > 0 {
			opts["limit"] = n
		}
		if r, _ := cmd.Flags().GetBool("reverse"); r {
			opts["reverse"] = true
		}
		live, _ := cmd.Flags().GetBool("live")
		if live {
			opts["live"] = true
		}
		return live
	}

	typ := mk("type TYPE", "Print the messages of a content type in receive order (messagesByType)", 1, func(cmd *cobra.Command, args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		opts := map[string]any{"type": args[0]}
		live := streamOpts(cmd, opts)
		return printStream(ctx, c.MessagesByType(ctx, opts), enc, live)
	})
	streamFlags(typ)

	lk := mk("links", "Print links between messages, feeds and blobs (links: --source and/or --dest, --rel)", 0, func(cmd *cobra.Command, _ []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		opts := map[string]any{}
		for _, f := range []string{"source", "dest", "rel"} {
			if v, _ := cmd.Flags().GetString(f); v != "" {
				opts[f] = v
			}
		}
		if v, _ := cmd.Flags().GetBool("values"); v {
			opts["values"] = true
		}
		live := streamOpts(cmd, opts)
		return printStream(ctx, c.Links(ctx, opts), enc, live)
	})
	lk.PreRunE = func(cmd *cobra.Command, _ []string) error {
		src, _ := cmd.Flags().GetString("source")
		dst, _ := cmd.Flags().GetString("dest")
		if src == "" && dst == "" {
			return usageErr("links: give --source or --dest (an id, or @ %% & for every feed, message or blob)")
		}
		return nil
	}
	lk.Flags().String("source", "", "links from this feed (or @ for any)")
	lk.Flags().String("dest", "", "links to this id (or @, %, & for any feed, message, blob)")
	lk.Flags().String("rel", "", "only links of this rel (the content key, e.g. root, mentions, contact)")
	lk.Flags().Bool("values", false, "include each linking message's value")
	streamFlags(lk)

	about := mk("about ID", "Print what is said about a feed or message: name, image, description (about.socialValue)", 1, func(cmd *cobra.Command, args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		keys, _ := cmd.Flags().GetStringSlice("field")
		latest, _ := cmd.Flags().GetBool("latest")
		out := map[string]json.RawMessage{"id": mustJSON(args[0])}
		for _, k := range keys {
			var v json.RawMessage
			var err error
			if latest {
				v, err = c.AboutLatestValue(ctx, k, args[0])
			} else {
				v, err = c.AboutSocialValue(ctx, k, args[0])
			}
			if err != nil {
				return err
			}
			out[k] = v
		}
		return enc.Encode(out)
	})
	about.Flags().StringSlice("field", []string{"name", "image", "description"}, "properties to print")
	about.Flags().Bool("latest", false, "the latest value anyone set (about.latestValue) instead of the social value")

	thread := mk("thread ID", "Print a message and its replies (threads.thread)", 1, func(cmd *cobra.Command, args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		v, err := c.Thread(ctx, args[0])
		if err != nil {
			return err
		}
		return enc.Encode(v)
	})
	thread.PreRunE = func(cmd *cobra.Command, args []string) error {
		if _, err := feeds.ParseMessageRef(args[0]); err != nil {
			return usageErr("thread: %q is not a message id (%%….sha256)", args[0])
		}
		return nil
	}

	var query json.RawMessage
	q := mk("query QUERY-JSON", "Run a map-filter-reduce query (query.read), e.g. '[{\"$filter\":{\"value\":{\"content\":{\"type\":\"post\"}}}}]'", 1, func(cmd *cobra.Command, _ []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		opts := map[string]any{"query": query}
		live := streamOpts(cmd, opts)
		if ex, _ := cmd.Flags().GetBool("explain"); ex {
			v, err := c.Explain(ctx, opts)
			if err != nil {
				return err
			}
			return enc.Encode(v)
		}
		return printStream(ctx, c.Query(ctx, opts), enc, live)
	})
	q.PreRunE = func(cmd *cobra.Command, args []string) error {
		query = json.RawMessage(strings.TrimSpace(args[0]))
		if !json.Valid(query) {
			return usageErr("query: not valid JSON: %s", humanMessage(jsonSyntaxError(query)))
		}
		return nil
	}
	q.Flags().Bool("explain", false, "print which index the query would use (query.explain) instead of running it")
	streamFlags(q)

	priv := mk("private", "Print our decrypted private messages (private.read)", 0, func(cmd *cobra.Command, _ []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		opts := map[string]any{}
		streamOpts(cmd, opts)
		return printStream(ctx, c.PrivateRead(ctx, opts), enc, false)
	})
	priv.Flags().Int("limit", 0, "print at most this many messages")
	priv.Flags().Bool("reverse", false, "newest first")

	root.AddCommand(newReindexCmd())
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// reindexSummary is what reindex prints.
type reindexSummary struct {
	Indexes  []string `json:"indexes"`
	Messages int64    `json:"messages"`
	Seconds  float64  `json:"seconds"`
}

func newReindexCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reindex [NAME...]",
		Short: "Rebuild indexes from the log, offline (all of them without NAME)",
		Long: "Rebuild the named indexes (" + strings.Join(sbot.IndexNames(), ", ") + `; all when none is
named) from the repo's log. The daemon must be stopped: reindex takes the
repo lock. Progress goes to stderr (a bar on a terminal); a summary line
{"indexes","messages","seconds"} ends the output.`,
		RunE: func(cmd *cobra.Command, names []string) error {
			for _, n := range names {
				if !contains(sbot.IndexNames(), n) {
					return usageErr("reindex: no index named %q (indexes: %s)", n, strings.Join(sbot.IndexNames(), ", "))
				}
			}
			repo := repoFrom(cmd)
			bar := newBar(cmd.ErrOrStderr(), "reindex")
			start := time.Now()
			st, err := sbot.OpenOfflineReindex(repo, names, bar.update)
			if err != nil {
				if errors.Is(err, sbot.ErrRepoLocked) {
					return fmt.Errorf("reindex: %w (stop the daemon first)", err)
				}
				return fmt.Errorf("reindex: %w", err)
			}
			msgs, _ := st.Count()
			if err := st.Close(); err != nil {
				return fmt.Errorf("reindex: %w", err)
			}
			bar.finish()
			if len(names) == 0 {
				names = sbot.IndexNames()
			}
			return newJSONOutFlush(cmd.OutOrStdout(), reindexSummary{Indexes: names, Messages: msgs, Seconds: time.Since(start).Seconds()})
		},
	}
	addRepoFlag(cmd.Flags())
	return cmd
}

func newJSONOutFlush(w io.Writer, v any) error {
	o := newJSONOut(w)
	if err := o.Encode(v); err != nil {
		return err
	}
	return o.Flush()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// bar shows progress: a redrawn bar on a terminal, a line every 2 s
// otherwise.
type bar struct {
	w        io.Writer
	what     string
	terminal bool
	last     time.Time
	start    time.Time
	drawn    bool
}

func newBar(w io.Writer, what string) *bar {
	b := &bar{w: w, what: what, start: time.Now(), last: time.Now()}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			b.terminal = true
		}
	}
	return b
}

func (b *bar) update(done, total int64) {
	every := 2 * time.Second
	if b.terminal {
		every = 100 * time.Millisecond
	}
	if time.Since(b.last) < every && done != total {
		return
	}
	b.last = time.Now()
	pct := 100 * float64(done) / float64(max(total, 1))
	if b.terminal {
		const width = 30
		n := int(pct / 100 * width)
		fmt.Fprintf(b.w, "\r%s [%s%s] %5.1f%% %d/%d", b.what, strings.Repeat("#", n), strings.Repeat(" ", width-n), pct, done, total)
	} else {
		fmt.Fprintf(b.w, "%s: %d of %d messages (%.1f%%)\n", b.what, done, total, pct)
	}
	b.drawn = true
}

func (b *bar) finish() {
	if b.terminal && b.drawn {
		fmt.Fprintln(b.w)
	}
}
