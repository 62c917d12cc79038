// Command room is the Cask rooms 2.0 server (`room serve`) and its
// operator CLI: `room admin …`, `room status` and `room address` talk to a
// running room over REPO/socket (owner only, mode 0600).
//
// Output is JSON; errors go to stderr with a non-zero exit status.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries an exit status (2 = bad usage).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, a...)}
}

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "room:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "room",
		Short:         "Cask room server: a rooms 2.0 relay for SSB peers",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w\n%s", err, c.UsageString())}
	})
	root.AddCommand(newServeCmd(), newAdminCmd(), newStatusCmd(), newAddressCmd(), newMigrateDBCmd(), newMeshKeyCmd(), newDrainCmd())
	return root
}
