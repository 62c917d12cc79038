package main

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/plugins/httpauth"
	"github.com/cask-ssb/cask/sbot/client"
)

// addRoomCmds adds `sbot room join|leave|list`: the daemon's rooms (as a
// client of rooms: attendant, tunnels).
func addRoomCmds(root *cobra.Command) {
	roomCmd := &cobra.Command{Use: "room", Short: "Rooms the daemon is an attendant of (join, leave, list, alias, signin, signout)"}
	sub := func(use, short string, nargs int, run func(args []string, ctx context.Context, c *client.Client, enc *jsonOut) error) {
		cmd := &cobra.Command{Use: use, Short: short, Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(nargs)(cmd, args); err != nil {
				return usageErr("%w", err)
			}
			return nil
		}}
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			return clientRun(cmd, func(ctx context.Context, c *client.Client, enc *jsonOut) error {
				return run(args, ctx, c, enc)
			})
		}
		addClientFlags(cmd.Flags())
		roomCmd.AddCommand(cmd)
	}
	sub("join ADDR", "Join a room (net:HOST:PORT~shs:KEY): stay an attendant, now and after restarts (REPO/rooms.json)", 1, func(args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		a, err := feeds.ParseAddress(args[0])
		if err != nil {
			return usageErr("room join: %w", err)
		}
		if a.Transport == feeds.TransportTunnel {
			return usageErr("room join: a room is reached directly, not through a tunnel")
		}
		var out json.RawMessage
		if err := c.Endpoint().Async(ctx, &out, []string{"roomClient", "join"}, args[0]); err != nil {
			return err
		}
		return enc.Encode(out)
	})
	sub("leave ADDR|ROOMID", "Leave a room: end the connection and forget it (REPO/rooms.json)", 1, func(args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		if strings.HasPrefix(args[0], "@") {
			if _, err := feeds.ParseFeedRef(args[0]); err != nil {
				return usageErr("room leave: %w", err)
			}
		} else if _, err := feeds.ParseAddress(args[0]); err != nil {
			return usageErr("room leave: want a room address or id: %w", err)
		}
		var out json.RawMessage
		if err := c.Endpoint().Async(ctx, &out, []string{"roomClient", "leave"}, args[0]); err != nil {
			return err
		}
		return enc.Encode(out)
	})
	sub("list", "List the rooms with their state, the attendants online and which of them we follow", 0, func(_ []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		var out json.RawMessage
		if err := c.Endpoint().Async(ctx, &out, []string{"roomClient", "rooms"}); err != nil {
			return err
		}
		return enc.Encode(out)
	})
	sub("signin LINK", "Sign in to a room's web dashboard: answer the page's ssb:experimental?action=start-http-auth link with our key (httpAuth.sendSolution)", 1, func(args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		if _, err := httpauth.ParseStartURI(args[0]); err != nil {
			return usageErr("room signin: %w", err)
		}
		var out json.RawMessage
		if err := c.Endpoint().Async(ctx, &out, []string{"httpAuthClient", "signIn"}, args[0]); err != nil {
			return err
		}
		return enc.Encode(out)
	})
	sub("signout ROOMID", "Sign out of a room's web dashboard everywhere: end every browser session of our key (httpAuth.invalidateAllSolutions)", 1, func(args []string, ctx context.Context, c *client.Client, enc *jsonOut) error {
		if _, err := feeds.ParseFeedRef(args[0]); err != nil {
			return usageErr("room signout: %w", err)
		}
		var out json.RawMessage
		if err := c.Endpoint().Async(ctx, &out, []string{"httpAuthClient", "signOut"}, args[0]); err != nil {
			return err
		}
		return enc.Encode(out)
	})
	aliasCmd := &cobra.Command{Use: "alias", Short: "Aliases of our feed in a room we joined (register, revoke, list)"}
	aliasSub := func(use, short string, nargs int, method string, args func(a []string, room string) map[string]string) {
		cmd := &cobra.Command{Use: use, Short: short, Args: func(cmd *cobra.Command, a []string) error {
			if err := cobra.ExactArgs(nargs)(cmd, a); err != nil {
				return usageErr("%w", err)
			}
			return nil
		}}
		cmd.RunE = func(cmd *cobra.Command, a []string) error {
			room, _ := cmd.Flags().GetString("room")
			if room == "" {
				return usageErr("room alias: --room ADDR|ROOMID is required")
			}
			return clientRun(cmd, func(ctx context.Context, c *client.Client, enc *jsonOut) error {
				var out json.RawMessage
				if err := c.Endpoint().Async(ctx, &out, []string{"roomClient", method}, args(a, room)); err != nil {
					return err
				}
				return enc.Encode(out)
			})
		}
		addClientFlags(cmd.Flags())
		cmd.Flags().String("room", "", "the room (its address or id); it must be joined and connected")
		aliasCmd.AddCommand(cmd)
	}
	withAlias := func(a []string, room string) map[string]string { return map[string]string{"room": room, "alias": a[0]} }
	aliasSub("register NAME", "Register NAME as an alias of our feed in the room (signs =room-alias-registration:…); prints the alias URL", 1, "registerAlias", withAlias)
	aliasSub("revoke NAME", "Revoke an alias of ours in the room", 1, "revokeAlias", withAlias)
	aliasSub("list", "List our aliases in the room", 0, "listAliases", func(_ []string, room string) map[string]string { return map[string]string{"room": room} })
	roomCmd.AddCommand(aliasCmd)
	root.AddCommand(roomCmd)
}
