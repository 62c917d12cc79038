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
	"time"
	"unicode/utf16"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
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

// offlineOK marks the subcommands that read a stopped daemon's store
// directly when no daemon is running (log, hist, get).
const offlineOK = "offline"

// dial connects to the daemon: REPO/socket, or --remote over TCP. For the
// subcommands marked offlineOK it opens the store of a stopped daemon
// instead; the returned closer then closes it.
func dial(ctx context.Context, cmd *cobra.Command) (*client.Client, func(), error) {
	repo := repoFrom(cmd)
	remote := flagOrEnv(cmd, "remote", "SSB_REMOTE")
	if remote == "" {
		c, err := client.DialRepo(ctx, repo)
		if errors.Is(err, client.ErrNoDaemon) && cmd.Annotations[offlineOK] != "" {
			return dialOffline(ctx, cmd, repo)
		}
		if errors.Is(err, client.ErrNoDaemon) {
			return nil, nil, &humanErr{fmt.Sprintf("no sbot daemon is running for %s (nothing listens on %s); start one with: sbot serve --repo %s", repo, sbot.SocketPath(repo), repo), err}
		}
		if err != nil {
			return nil, nil, err
		}
		return c, func() { c.Close() }, nil
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
		return nil, nil, usageErr("--caps: %w", err)
	}
	keys, err := feeds.ReadSecret(cfg.KeyPath())
	if err != nil {
		return nil, nil, fmt.Errorf("read key: %w", err)
	}
	c, err := client.DialTCP(ctx, remote, keys, caps)
	if err != nil {
		if _, perr := feeds.ParseAddress(remote); perr != nil {
			return nil, nil, usageErr("--remote %q: %w", remote, perr)
		}
		return nil, nil, humanDialError(remote, err)
	}
	return c, func() { c.Close() }, nil
}

// dialOffline reads the store of a stopped daemon: the daemon's own read
// handlers run in this process over an in-memory connection.
func dialOffline(ctx context.Context, cmd *cobra.Command, repo string) (*client.Client, func(), error) {
	if live, _ := cmd.Flags().GetBool("live"); live {
		return nil, nil, fmt.Errorf("no sbot daemon is running for %s, and --live needs one; start it with: sbot serve --repo %s", repo, repo)
	}
	st, err := sbot.OpenOfflineRead(repo)
	if errors.Is(err, sbot.ErrNoStore) {
		return nil, nil, fmt.Errorf("no sbot daemon is running for %s and it has no store yet; start one with: sbot serve --repo %s", repo, repo)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("no sbot daemon is running for %s, and its store cannot be read: %w", repo, err)
	}
	conn, stop := st.ReadConn(ctx)
	c := client.New(ctx, conn, nil)
	return c, func() {
		c.Close()
		stop()
		st.Close()
	}, nil
}

// clientRun wraps a client subcommand: context with signals and --timeout,
// connect, run, close, and error texts for people.
func clientRun(cmd *cobra.Command, run func(ctx context.Context, c *client.Client, out *jsonOut) error) error {
	return clientRunTimeout(cmd, 0, run)
}

// commandName is the subcommand's path without "sbot " ("blobs get").
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// clientRunTimeout is clientRun with a default --timeout (0: none).
func clientRunTimeout(cmd *cobra.Command, defaultTimeout time.Duration, run func(ctx context.Context, c *client.Client, out *jsonOut) error) error {
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx := sigCtx
	d, _ := cmd.Flags().GetDuration("timeout")
	if !cmd.Flags().Changed("timeout") && defaultTimeout > 0 {
		d = defaultTimeout
	}
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	name := commandName(cmd)
	timedOut := func() bool {
		if ctx.Err() != nil && sigCtx.Err() == nil {
			return true
		}
		dl, ok := ctx.Deadline()
		return ok && !time.Now().Before(dl)
	}
	c, closeClient, err := dial(ctx, cmd)
	if err != nil {
		if sigCtx.Err() != nil {
			return &exitError{code: exitFailed}
		}
		if timedOut() {
			return fmt.Errorf("%s: timed out after %s while connecting to the daemon", name, d)
		}
		return prefixed(name, err)
	}
	defer closeClient()
	out := newJSONOut(cmd.OutOrStdout())
	defer out.Flush()
	err = run(ctx, c, out)
	switch {
	case err == nil:
		return nil
	case sigCtx.Err() != nil:
		return nil // interrupted (Ctrl-C on a live stream): a clean end
	case timedOut() && !errors.As(err, new(*humanErr)):
		return fmt.Errorf("%s: timed out after %s", name, d)
	}
	var ce *muxrpc.CallError
	if errors.As(err, &ce) {
		// The daemon's own message, without the layers of prefixes.
		return &exitError{code: exitFailed, err: prefixed(name, errors.New(humanMessage(ce.Message)))}
	}
	return prefixed(name, err)
}

// prefixed puts "name: " before err's text unless it starts with it
// already; the exit status of err is kept.
func prefixed(name string, err error) error {
	code := exitFailed
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	msg := err.Error()
	if strings.HasPrefix(msg, name+": ") {
		return &exitError{code: code, err: err}
	}
	return &exitError{code: code, err: &humanErr{name + ": " + msg, err}}
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

	var content json.RawMessage // checked before connecting
	pub := mk("publish [CONTENT-JSON]", "Publish a message (--type T --text S, or a JSON content object as argument or on stdin)", func(cmd *cobra.Command, args []string) error {
		if len(args) > 1 {
			return usageErr("publish takes at most one JSON argument")
		}
		return nil
	}, func(cmd *cobra.Command, args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		if recps, _ := cmd.Flags().GetStringSlice("recps"); len(recps) > 0 {
			out, err := c.PrivatePublish(ctx, content, recps)
			if err != nil {
				return err
			}
			return enc.Encode(out)
		}
		out, err := c.Publish(ctx, content)
		if err != nil {
			return err
		}
		return enc.Encode(out)
	})
	pub.PreRunE = func(cmd *cobra.Command, args []string) (err error) {
		content, err = publishContent(cmd, args)
		if err != nil {
			return prefixed("publish", err)
		}
		recps, _ := cmd.Flags().GetStringSlice("recps")
		for _, r := range recps {
			if _, err := feeds.ParseFeedRef(r); err != nil {
				return usageErr("publish: --recps: %q is not a feed id (@….ed25519)", r)
			}
		}
		if len(recps) > 7 {
			return usageErr("publish: --recps: %d recipients; a private message has at most 7, ourselves included", len(recps))
		}
		return nil
	}
	pub.Flags().StringSlice("recps", nil, "publish privately (box1) to these feeds, comma-separated; we are always a recipient too (up to 7 in all)")
	pub.Flags().String("type", "", "content type (with --text: a post-like message {type, text}; default post)")
	pub.Flags().String("text", "", "text of the message (required with --type)")

	get := mk("get ID", "Print a message by id (reads a stopped daemon's store directly)", wrapArgs(1), func(cmd *cobra.Command, args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		meta, _ := cmd.Flags().GetBool("meta")
		out, err := c.Get(ctx, args[0], meta)
		if err != nil {
			return err
		}
		return enc.Encode(out)
	})
	get.Flags().Bool("meta", false, "print the {key,value,timestamp} record instead of the value")
	get.PreRunE = func(cmd *cobra.Command, args []string) error {
		if _, err := feeds.ParseMessageRef(args[0]); err != nil {
			return usageErr("get: %q is not a message id (%%….sha256)", args[0])
		}
		return nil
	}
	get.Annotations = map[string]string{offlineOK: "yes"}

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
	logCmd.Annotations = map[string]string{offlineOK: "yes"}
	logCmd.Flags().Int("limit", 0, "print at most this many messages")
	logCmd.Flags().Bool("live", false, "keep printing new messages as they arrive")
	logCmd.Flags().Bool("reverse", false, "newest first")
	logCmd.Flags().Int64("gt", 0, "only messages after this receive sequence")

	hist := mk("hist FEED", "Print one feed in sequence order, one {key,value,timestamp} per line", wrapArgs(1), func(cmd *cobra.Command, args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
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
	hist.Annotations = map[string]string{offlineOK: "yes"}
	hist.PreRunE = func(cmd *cobra.Command, args []string) error {
		if _, err := feeds.ParseFeedRef(args[0]); err != nil {
			return usageErr("hist: %q is not a feed id (@….ed25519)", args[0])
		}
		return nil
	}
	hist.Flags().Int64("seq", 0, "first sequence to print (inclusive)")
	hist.Flags().Int("limit", 0, "print at most this many messages")
	hist.Flags().Bool("live", false, "keep printing new messages as they arrive")

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
		Long: `Call any method in the daemon's manifest. Each argument is a JSON value
(a string is '"text"'); with --string every argument is sent as a raw
string instead. More arguments than the method takes are refused. An
async method prints one JSON value; a source method prints one JSON value
per line.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usageErr("call: missing METHOD")
			}
			return nil
		},
	}
	call.Flags().Bool("string", false, "send every argument as a raw string instead of parsing it as JSON")
	call.RunE = func(cmd *cobra.Command, args []string) error {
		jargs, err := callArgs(cmd, args[1:])
		if err != nil {
			return err
		}
		if max, ok := client.MaxArgs(args[0]); ok && len(jargs) > max {
			return usageErr("call: %s takes at most %d argument(s), got %d", args[0], max, len(jargs))
		}
		return clientRun(cmd, func(ctx context.Context, c *client.Client, enc *jsonOut) error {
			err := printStream(ctx, c.Call(ctx, args[0], jargs), enc, true)
			var ae *client.ArgsError
			if errors.Is(err, client.ErrUnknownMethod) || errors.As(err, &ae) {
				return usageErr("%w", err)
			}
			return err
		})
	}
	addClientFlags(call.Flags())
	root.AddCommand(call)
	addPeerCmds(root)
	addRoomCmds(root)
	addInviteCmds(root)
}

// callArgs parses the arguments of `sbot call`: JSON values, or raw
// strings with --string.
func callArgs(cmd *cobra.Command, args []string) ([]json.RawMessage, error) {
	raw, _ := cmd.Flags().GetBool("string")
	out := make([]json.RawMessage, 0, len(args))
	for i, a := range args {
		if raw {
			b, _ := json.Marshal(a)
			out = append(out, b)
			continue
		}
		if !json.Valid([]byte(a)) {
			return nil, usageErr("call: argument %d (%s) is not valid JSON: %s; quote a string as '\"text\"', or pass --string to send every argument as a string", i+1, a, humanMessage(jsonSyntaxError([]byte(a))))
		}
		out = append(out, json.RawMessage(a))
	}
	return out, nil
}

func publishContent(cmd *cobra.Command, args []string) (json.RawMessage, error) {
	typ, _ := cmd.Flags().GetString("type")
	text, _ := cmd.Flags().GetString("text")
	if cmd.Flags().Changed("type") || cmd.Flags().Changed("text") {
		if len(args) > 0 {
			return nil, usageErr("give either --type/--text or a JSON content object, not both")
		}
		if !cmd.Flags().Changed("text") {
			return nil, usageErr(`--type %s needs --text; for other content pass a JSON object, e.g. sbot publish '{"type":%q,...}'`, typ, typ)
		}
		if strings.TrimSpace(text) == "" {
			return nil, usageErr("--text is empty")
		}
		if typ == "" {
			typ = "post"
		}
		if err := checkType(typ); err != nil {
			return nil, err
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
		data, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
		if err != nil {
			return nil, usageErr("read stdin: %w", err)
		}
	}
	data = []byte(strings.TrimSpace(string(data)))
	if !json.Valid(data) {
		return nil, usageErr("content must be a JSON object, and this is not valid JSON: %s", humanMessage(jsonSyntaxError(data)))
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, usageErr("content must be a JSON object, got %s", jsonKind(data))
	}
	var typ2 string
	if err := json.Unmarshal(obj["type"], &typ2); err != nil || obj["type"] == nil {
		return nil, usageErr(`content needs a "type" string`)
	}
	if err := checkType(typ2); err != nil {
		return nil, err
	}
	return data, nil
}

// checkType applies the classic format's rule for content.type.
func checkType(typ string) error {
	if n := len(utf16.Encode([]rune(typ))); n < classic.MinTypeLen || n > classic.MaxTypeLen {
		return usageErr("type %q is %d characters long; a type has %d to %d", typ, n, classic.MinTypeLen, classic.MaxTypeLen)
	}
	return nil
}

// jsonSyntaxError is encoding/json's description of what is wrong in data.
func jsonSyntaxError(data []byte) string {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err.Error()
	}
	return "invalid JSON"
}

func ptrIf(ok, v bool) *bool {
	if !ok {
		return nil
	}
	return &v
}
