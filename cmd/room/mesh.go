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
