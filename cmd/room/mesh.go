package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cask-ssb/cask/room/mesh"
)

func newMeshKeyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "mesh-key FILE",
		Short: "Create a mesh key file (0600) for --mesh-key-file; copy it to every node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			if _, err := mesh.WriteKeyFile(a[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "{\"file\":%q}\n", a[0])
			return err
		},
	}
}

func newDrainCmd() *cobra.Command {
	c := leaf("drain", "Drain the running room node: refuse new sessions, report not ready on /readyz, close its peers' connections gradually so they reconnect to other nodes", 0,
		func(cmd *cobra.Command, _ []string) error {
			perSecond, _ := cmd.Flags().GetInt("per-second")
			cancel, _ := cmd.Flags().GetBool("cancel")
			if perSecond < 0 {
				return usageErr("--per-second: want 0 (all at once) or more")
			}
			return call(cmd, "admin.drain", map[string]any{"perSecond": perSecond, "cancel": cancel})
		})
	c.Flags().Int("per-second", 20, "connections to close per second (0: all at once)")
	c.Flags().Bool("cancel", false, "stop draining: take new sessions again")
	return c
}
