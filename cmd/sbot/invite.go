package main

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/invite"
	"github.com/cask-ssb/cask/sbot/client"
)

// addInviteCmds adds `sbot invite create|accept`: legacy pub invites
// (invite.create, invite.accept) and, for accept, a room's HTTP invite.
func addInviteCmds(root *cobra.Command) {
	inviteCmd := &cobra.Command{Use: "invite", Short: "Pub invites (create, accept) and room HTTP invites (accept)"}
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a pub invite code HOST:PORT:@KEY.ed25519~SEED: whoever uses it is followed by this node (invite.create)",
		Args:  cobra.NoArgs,
	}
	create.RunE = func(cmd *cobra.Command, _ []string) error {
		uses, _ := cmd.Flags().GetInt("uses")
		note, _ := cmd.Flags().GetString("note")
		external, _ := cmd.Flags().GetString("external")
		if uses < 1 || uses > invite.MaxUses {
			return usageErr("invite create: --uses %d: want 1 to %d", uses, invite.MaxUses)
		}
		return clientRun(cmd, func(ctx context.Context, c *client.Client, enc *jsonOut) error {
			var code string
			opts := invite.CreateOptions{Uses: uses, Note: note, External: external}
			if err := c.Endpoint().Async(ctx, &code, muxrpc.Method{"invite", "create"}, opts); err != nil {
				return err
			}
			return enc.Encode(map[string]any{"code": code, "uses": uses})
		})
	}
	addClientFlags(create.Flags())
	create.Flags().Int("uses", 1, "how many feeds may use the code")
	create.Flags().String("note", "", "a note kept with the invite and put in the follow message of each use")
	create.Flags().String("external", "", "the host name peers reach this node at (default: the --listen host; required when it listens on every interface)")

	accept := &cobra.Command{
		Use:   "accept CODE|URL",
		Short: "Use a pub invite code (the pub follows us; we follow it and publish its address), or claim a room's HTTP invite (https://ROOM/join?invite=… or ssb:experimental?action=claim-http-invite&…) and join that room",
		Args:  cobra.ExactArgs(1),
	}
	accept.RunE = func(cmd *cobra.Command, args []string) error {
		arg := strings.TrimSpace(args[0])
		if !invite.IsWebLink(arg) {
			if _, err := invite.ParseCode(arg); err != nil {
				return usageErr("invite accept: %w", err)
			}
		}
		return clientRun(cmd, func(ctx context.Context, c *client.Client, enc *jsonOut) error {
			var out json.RawMessage
			if err := c.Endpoint().Async(ctx, &out, muxrpc.Method{"invite", "accept"}, arg); err != nil {
				return err
			}
			return enc.Encode(out)
		})
	}
	addClientFlags(accept.Flags())
	inviteCmd.AddCommand(create, accept)
	root.AddCommand(inviteCmd)
}
