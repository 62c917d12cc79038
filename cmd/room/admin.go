package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/room"
)

// call runs one admin method on the room that owns the repo and prints
// its JSON answer.
func call(cmd *cobra.Command, method string, args ...any) error {
	repo := repoFrom(cmd)
	ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", room.SocketPath(repo))
	if err != nil {
		return fmt.Errorf("no running room for repo %s (is `room serve` running?): %w", repo, err)
	}
	ep := muxrpc.NewEndpoint(ctx, c, nil, muxrpc.Options{})
	defer ep.Close()
	var out json.RawMessage
	if err := ep.Async(ctx, &out, muxrpc.ParseMethod(method), args...); err != nil {
		var ce *muxrpc.CallError
		if errors.As(err, &ce) {
			return fmt.Errorf("%s", ce.Message)
		}
		return err
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), string(out))
	return err
}

func leaf(use, short string, nargs int, run func(cmd *cobra.Command, args []string) error) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(nargs), RunE: run}
	addRepoFlag(c.Flags())
	return c
}

func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs}
	c.AddCommand(subs...)
	return c
}

func newAdminCmd() *cobra.Command {
	add := leaf("add ID", "Add a member (or change its role)", 1, func(cmd *cobra.Command, a []string) error {
		role, _ := cmd.Flags().GetString("role")
		return call(cmd, "admin.members.add", a[0], role)
	})
	add.Flags().String("role", "member", "role: admin, moderator or member")

	create := leaf("create", "Create an invite; prints its code and URL", 0, func(cmd *cobra.Command, _ []string) error {
		uses, _ := cmd.Flags().GetInt("uses")
		expires, _ := cmd.Flags().GetDuration("expires")
		if uses <= 0 {
			return usageErr("--uses: want at least 1")
		}
		return call(cmd, "admin.invites.create", map[string]any{"uses": uses, "expires": expires.String()})
	})
	create.Flags().Int("uses", 1, "how many times the invite can be used")
	create.Flags().Duration("expires", 7*24*time.Hour, "how long the invite is valid")

	deny := leaf("add ID", "Deny a key access to the room (ends its session)", 1, func(cmd *cobra.Command, a []string) error {
		comment, _ := cmd.Flags().GetString("comment")
		return call(cmd, "admin.deny.add", a[0], comment)
	})
	deny.Flags().String("comment", "", "why")

	return group("admin", "Administer a running room over REPO/socket",
		group("members", "Members and roles",
			leaf("list", "List members", 0, func(cmd *cobra.Command, _ []string) error { return call(cmd, "admin.members.list") }),
			add,
			leaf("remove ID", "Remove a member (and its aliases)", 1, func(cmd *cobra.Command, a []string) error { return call(cmd, "admin.members.remove", a[0]) }),
			leaf("role ID ROLE", "Change a member's role", 2, func(cmd *cobra.Command, a []string) error { return call(cmd, "admin.members.role", a[0], a[1]) }),
		),
		group("invites", "Invites (single-use by default, stored hashed)",
			create,
			leaf("list", "List usable invites", 0, func(cmd *cobra.Command, _ []string) error { return call(cmd, "admin.invites.list") }),
			leaf("revoke ID", "Revoke an invite by its id", 1, func(cmd *cobra.Command, a []string) error {
				id, err := strconv.ParseInt(a[0], 10, 64)
				if err != nil {
					return usageErr("invite id %q: want a number from `room admin invites list`", a[0])
				}
				return call(cmd, "admin.invites.revoke", id)
			}),
		),
		group("aliases", "Aliases",
			leaf("list", "List aliases", 0, func(cmd *cobra.Command, _ []string) error { return call(cmd, "admin.aliases.list") }),
			leaf("revoke NAME", "Revoke an alias", 1, func(cmd *cobra.Command, a []string) error { return call(cmd, "admin.aliases.revoke", a[0]) }),
		),
		group("deny", "Denied keys (refused in every mode)",
			deny,
			leaf("remove ID", "Allow a denied key again", 1, func(cmd *cobra.Command, a []string) error { return call(cmd, "admin.deny.remove", a[0]) }),
			leaf("list", "List denied keys", 0, func(cmd *cobra.Command, _ []string) error { return call(cmd, "admin.deny.list") }),
		),
		group("mode", "Privacy mode",
			leaf("get", "Print the mode", 0, func(cmd *cobra.Command, _ []string) error { return call(cmd, "admin.mode.get") }),
			leaf("set MODE", "Set the mode: open, community or restricted", 1, func(cmd *cobra.Command, a []string) error { return call(cmd, "admin.mode.set", a[0]) }),
		),
	)
}

func newStatusCmd() *cobra.Command {
	return leaf("status", "Print the running room's mode, attendants, connections and members", 0, func(cmd *cobra.Command, _ []string) error {
		return call(cmd, "admin.status")
	})
}

func newAddressCmd() *cobra.Command {
	return leaf("address", "Print the running room's multiserver address", 0, func(cmd *cobra.Command, _ []string) error {
		return call(cmd, "admin.address")
	})
}
