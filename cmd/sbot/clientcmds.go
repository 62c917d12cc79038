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
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/sbot"
	"github.com/cask-ssb/cask/sbot/client"
)

func addClientFlags(fs *pflag.FlagSet) {
	addRepoFlag(fs)
	fs.String("remote", "", "call a daemon over TCP at this multiserver address (net:HOST:PORT~shs:KEY) instead of REPO/socket (env SSB_REMOTE)")
	fs.String("key", "", "with --remote: secret file to authenticate with (env SSB_KEY, default REPO/secret)")
	fs.String("caps", "", "with --remote: network key, base64 (env SSB_CAPS, default main network)")
	fs.Duration("timeout", 0, "give up after this long (0: no limit; streams with --live run until interrupted)")
}

func flagOrEnv(cmd *cobra.Command, name, env string) string {
	if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
		return f.Value.String()
	}
	return os.Getenv(env)
}

// dial connects to the daemon: REPO/socket, or --remote over TCP.
func dial(ctx context.Context, cmd *cobra.Command) (*client.Client, error) {
	repo := repoFrom(cmd)
	remote := flagOrEnv(cmd, "remote", "SSB_REMOTE")
	if remote == "" {
		c, err := client.DialRepo(ctx, repo)
		if err != nil {
			return nil, fmt.Errorf("%w; start one with: sbot serve --repo %s", err, repo)
		}
		return c, nil
	}
	cfg := sbot.Defaults(repo)
	if k := flagOrEnv(cmd, "key", "SSB_KEY"); k != "" {
		cfg.Key = k
	}
	if c := flagOrEnv(cmd, "caps", "SSB_CAPS"); c != "" {
		cfg.Caps = c
	}
	caps, err := cfg.CapsKey()
	if err != nil {
		return nil, usageErr("%w", err)
	}
	keys, err := feeds.ReadSecret(cfg.KeyPath())
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	return client.DialTCP(ctx, remote, keys, caps)
}

// clientRun wraps a client subcommand: context with signals and --timeout,
// connect, run, close.
func clientRun(cmd *cobra.Command, run func(ctx context.Context, c *client.Client, out *jsonOut) error) error {
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx := sigCtx
	if d, _ := cmd.Flags().GetDuration("timeout"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	c, err := dial(ctx, cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	out := newJSONOut(os.Stdout)
	defer out.Flush()
	err = run(ctx, c, out)
	switch {
	case err == nil:
		return nil
	case sigCtx.Err() != nil:
		return nil // interrupted (Ctrl-C on a live stream): a clean end
	case ctx.Err() != nil:
		return fmt.Errorf("%s: timed out: %w", cmd.Name(), ctx.Err())
	}
	var ce *muxrpc.CallError
	if errors.As(err, &ce) {
		// The daemon's own message, without the transport's wrapping.
		return fmt.Errorf("%s: %s", cmd.Name(), ce.Message)
	}
	return err
}

// jsonOut prints one JSON value per line to a buffered stdout.
type jsonOut struct {
	w   *bufio.Writer
	enc *json.Encoder
}

func newJSONOut(w io.Writer) *jsonOut {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &jsonOut{w: bw, enc: enc}
}

// Encode writes v and a newline.
func (o *jsonOut) Encode(v any) error { return o.enc.Encode(v) }

// Flush writes out what is buffered.
func (o *jsonOut) Flush() error { return o.w.Flush() }

// printStream prints one JSON value per line, flushing as they come for
// live streams.
func printStream(ctx context.Context, it func(func(json.RawMessage, error) bool), enc *jsonOut, flush bool) error {
	var ferr error
	it(func(v json.RawMessage, err error) bool {
		if err != nil {
			ferr = err
			return false
		}
		if err := enc.Encode(v); err != nil {
			ferr = err
			return false
		}
		if flush {
			if err := enc.Flush(); err != nil {
				ferr = err
				return false
			}
		}
		return true
	})
	return ferr
}

func addClientCmds(root *cobra.Command) {
	mk := func(use, short string, args cobra.PositionalArgs, run func(cmd *cobra.Command, a []string, ctx context.Context, c *client.Client, enc *jsonOut) error) *cobra.Command {
		cmd := &cobra.Command{Use: use, Short: short, Args: args}
		cmd.RunE = func(cmd *cobra.Command, a []string) error {
			return clientRun(cmd, func(ctx context.Context, c *client.Client, enc *jsonOut) error {
				return run(cmd, a, ctx, c, enc)
			})
		}
		addClientFlags(cmd.Flags())
		root.AddCommand(cmd)
		return cmd
	}
	wrapArgs := func(n int) cobra.PositionalArgs {
		return func(cmd *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(n)(cmd, args); err != nil {
				return usageErr("%w", err)
			}
			return nil
		}
	}

	mk("whoami", "Print the daemon's feed id", wrapArgs(0), func(_ *cobra.Command, _ []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		id, err := c.Whoami(ctx)
		if err != nil {
			return err
		}
		return enc.Encode(map[string]string{"id": id.String()})
	})

	pub := mk("publish [CONTENT-JSON]", "Publish a message (--type T --text S, or a JSON content object as argument or on stdin)", func(cmd *cobra.Command, args []string) error {
		if len(args) > 1 {
			return usageErr("publish takes at most one JSON argument")
		}
		return nil
	}, func(cmd *cobra.Command, args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		content, err := publishContent(cmd, args)
		if err != nil {
			return err
		}
		out, err := c.Publish(ctx, content)
		if err != nil {
			return err
		}
		return enc.Encode(out)
	})
	pub.Flags().String("type", "", "content type (with --text: a post-like message {type, text})")
	pub.Flags().String("text", "", "text of the message")

	mk("get ID", "Print a message by id", wrapArgs(1), func(cmd *cobra.Command, args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		meta, _ := cmd.Flags().GetBool("meta")
		out, err := c.Get(ctx, args[0], meta)
		if err != nil {
			return err
		}
		return enc.Encode(out)
	}).Flags().Bool("meta", false, "print the {key,value,timestamp} record instead of the value")

	logCmd := mk("log", "Print the log in receive order, one {key,value,timestamp} per line", wrapArgs(0), func(cmd *cobra.Command, _ []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		opts := map[string]any{}
		if n, _ := cmd.Flags().GetInt("limit"); n > 0 {
			opts["limit"] = n
		}
		live, _ := cmd.Flags().GetBool("live")
		if live {
			opts["live"] = true
		}
		if r, _ := cmd.Flags().GetBool("reverse"); r {
			opts["reverse"] = true
		}
		if n, _ := cmd.Flags().GetInt64("gt"); n > 0 {
			opts["gt"] = n
		}
		return printStream(ctx, c.Log(ctx, opts), enc, live)
	})
	logCmd.Flags().Int("limit", 0, "print at most this many messages")
	logCmd.Flags().Bool("live", false, "keep printing new messages as they arrive")
	logCmd.Flags().Bool("reverse", false, "newest first")
	logCmd.Flags().Int64("gt", 0, "only messages after this receive sequence")

	hist := mk("hist FEED", "Print one feed in sequence order, one {key,value,timestamp} per line", wrapArgs(1), func(cmd *cobra.Command, args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		if _, err := feeds.ParseFeedRef(args[0]); err != nil {
			return usageErr("hist: %w", err)
		}
		opts := map[string]any{"id": args[0], "keys": true}
		if n, _ := cmd.Flags().GetInt64("seq"); n > 0 {
			opts["seq"] = n
		}
		if n, _ := cmd.Flags().GetInt("limit"); n > 0 {
			opts["limit"] = n
		}
		live, _ := cmd.Flags().GetBool("live")
		if live {
			opts["live"] = true
		}
		return printStream(ctx, c.History(ctx, opts), enc, live)
	})
	hist.Flags().Int64("seq", 0, "first sequence to print (inclusive)")
	hist.Flags().Int("limit", 0, "print at most this many messages")
	hist.Flags().Bool("live", false, "keep printing new messages as they arrive")

	mk("connect ADDR", "Connect the daemon to a peer (net:HOST:PORT~shs:KEY) and replicate its feed", wrapArgs(1), func(_ *cobra.Command, args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		var ok bool
		if err := c.Endpoint().Async(ctx, &ok, []string{"gossip", "connect"}, args[0]); err != nil {
			return err
		}
		return enc.Encode(map[string]any{"connected": ok, "address": args[0]})
	})

	for _, fc := range []struct {
		use, short, field string
		value             bool
	}{
		{"follow FEED", "Publish a contact message following FEED (it is then replicated)", "following", true},
		{"unfollow FEED", "Publish a contact message no longer following FEED", "following", false},
		{"block FEED", "Publish a contact message blocking FEED (not replicated; its connections refused)", "blocking", true},
		{"unblock FEED", "Publish a contact message unblocking FEED", "blocking", false},
	} {
		mk(fc.use, fc.short, wrapArgs(1), func(_ *cobra.Command, args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
			feed, err := feeds.ParseFeedRef(args[0])
			if err != nil {
				return usageErr("%w", err)
			}
			content, _ := json.Marshal(struct {
				Type    string `json:"type"`
				Contact string `json:"contact"`
				Value   *bool  `json:"following,omitempty"`
				Block   *bool  `json:"blocking,omitempty"`
			}{Type: "contact", Contact: feed.String(), Value: ptrIf(fc.field == "following", fc.value), Block: ptrIf(fc.field == "blocking", fc.value)})
			out, err := c.Publish(ctx, json.RawMessage(content))
			if err != nil {
				return err
			}
			return enc.Encode(out)
		})
	}

	mk("status", "Print the daemon's status", wrapArgs(0), func(_ *cobra.Command, _ []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		out, err := c.Status(ctx)
		if err != nil {
			return err
		}
		return enc.Encode(out)
	})

	call := &cobra.Command{
		Use:   "call METHOD [JSON-ARG...]",
		Short: "Call any async, sync or source method of the daemon's manifest",
		Long: `Call any method in the daemon's manifest. Arguments are JSON values
(a bare word that is not JSON is sent as a string). An async method prints
one JSON value; a source method prints one JSON value per line.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usageErr("call: missing METHOD")
			}
			return nil
		},
	}
	call.RunE = func(cmd *cobra.Command, args []string) error {
		jargs := make([]json.RawMessage, 0, len(args)-1)
		for _, a := range args[1:] {
			if json.Valid([]byte(a)) {
				jargs = append(jargs, json.RawMessage(a))
			} else {
				b, _ := json.Marshal(a)
				jargs = append(jargs, b)
			}
		}
		return clientRun(cmd, func(ctx context.Context, c *client.Client, enc *jsonOut) error {
			return printStream(ctx, c.Call(ctx, args[0], jargs), enc, true)
		})
	}
	addClientFlags(call.Flags())
	root.AddCommand(call)
	addPeerCmds(root)
	addRoomCmds(root)
}

func publishContent(cmd *cobra.Command, args []string) (json.RawMessage, error) {
	typ, _ := cmd.Flags().GetString("type")
	text, _ := cmd.Flags().GetString("text")
	if typ != "" || cmd.Flags().Changed("text") {
		if len(args) > 0 {
			return nil, usageErr("publish: give either --type/--text or a JSON content object, not both")
		}
		if typ == "" {
			typ = "post"
		}
		b, _ := json.Marshal(struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}{typ, text})
		return b, nil
	}
	var data []byte
	if len(args) == 1 && args[0] != "-" {
		data = []byte(args[0])
	} else {
		var err error
		data, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		if err != nil {
			return nil, usageErr("publish: read stdin: %w", err)
		}
	}
	data = []byte(strings.TrimSpace(string(data)))
	var obj map[string]any
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, usageErr("publish: content must be a JSON object: %w", err)
	}
	if t, _ := obj["type"].(string); t == "" {
		return nil, usageErr(`publish: content needs a "type" string`)
	}
	return data, nil
}

func ptrIf(ok, v bool) *bool {
	if !ok {
		return nil
	}
	return &v
}
