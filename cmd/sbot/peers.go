package main

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/spf13/cobra"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/internal/roomweb"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/sbot/client"
)

// addPeerCmds adds the connection commands: connect (with --remember),
// disconnect and peers.
func addPeerCmds(root *cobra.Command) {
	peerCmd := func(use, short string, args cobra.PositionalArgs, run func(cmd *cobra.Command, a []string, ctx context.Context, c *client.Client, enc *jsonOut) error) *cobra.Command {
		cmd := &cobra.Command{Use: use, Short: short, Args: args}
		cmd.RunE = func(cmd *cobra.Command, a []string) error {
			return clientRun(cmd, func(ctx context.Context, c *client.Client, enc *jsonOut) error {
				return run(cmd, a, ctx, c, enc)
			})
		}
		addClientFlags(cmd.Flags())
		for _, old := range root.Commands() {
			if old.Name() == cmd.Name() {
				root.RemoveCommand(old)
			}
		}
		root.AddCommand(cmd)
		return cmd
	}
	exactly := func(n int) cobra.PositionalArgs {
		return func(cmd *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(n)(cmd, args); err != nil {
				return usageErr("%w", err)
			}
			return nil
		}
	}

	connect := peerCmd("connect ADDR", "Connect the daemon to a peer (net:HOST:PORT~shs:KEY, tunnel:@ROOM:@PEER~shs:KEY, HOST:PORT:@KEY.ed25519, or an alias: https://ROOM/alias/NAME or ssb:experimental?action=consume-alias&…) and replicate with it; --remember keeps it connected, after restarts too", exactly(1), func(cmd *cobra.Command, args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		if _, err := feeds.ParseAddress(args[0]); err != nil && !roomweb.IsAliasLink(args[0]) {
			return usageErr("connect: %w", err)
		}
		remember, _ := cmd.Flags().GetBool("remember")
		var ok bool
		if err := c.Endpoint().Async(ctx, &ok, []string{"gossip", "connect"}, map[string]any{"address": args[0], "remember": remember}); err != nil {
			var ce *muxrpc.CallError
			if errors.As(err, &ce) {
				return errors.New(humanRemoteDialMessage(ce.Message))
			}
			return err
		}
		return enc.Encode(map[string]any{"connected": ok, "address": args[0], "remembered": remember})
	})
	connect.Flags().Bool("remember", false, "remember the peer in REPO/peers.json: redial it with back-off whenever the connection ends, and after restarts")

	disconnect := peerCmd("disconnect ADDR|FEED", "End the connection with a peer (a configured or remembered one is not redialled until the next connect); --forget also removes a remembered peer", exactly(1), func(cmd *cobra.Command, args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		if _, err := feeds.ParseFeedRef(args[0]); err != nil {
			if _, err := feeds.ParseAddress(args[0]); err != nil {
				return usageErr("disconnect: want a feed id (@…=.ed25519) or a peer address")
			}
		}
		forget, _ := cmd.Flags().GetBool("forget")
		var was bool
		if err := c.Endpoint().Async(ctx, &was, []string{"gossip", "disconnect"}, map[string]any{"address": args[0], "forget": forget}); err != nil {
			return err
		}
		return enc.Encode(map[string]any{"disconnected": was, "target": args[0], "forgotten": forget})
	})
	disconnect.Flags().Bool("forget", false, "also remove the peer from the remembered ones (REPO/peers.json)")

	peerCmd("peers", "List connected peers, and configured or remembered peers with their back-off state and last error", exactly(0), func(_ *cobra.Command, _ []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		var out json.RawMessage
		if err := c.Endpoint().Async(ctx, &out, []string{"gossip", "peers"}); err != nil {
			return err
		}
		return enc.Encode(out)
	})
}
