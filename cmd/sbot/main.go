// Command sbot is the Cask SSB daemon (`sbot serve`) and its command-line
// client: every other subcommand talks to a running daemon over REPO/socket
// (or over TCP with --remote), except the offline `verify` and `import`.
//
// Output is JSON (one value, or one per line for streams); errors go to
// stderr with a non-zero exit status.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit status (verify: 1 = invalid messages,
// 2 = bad usage or unreadable input).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, a...)}
}

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil && ee.err.Error() != "" {
				fmt.Fprintln(os.Stderr, "sbot:", ee.err)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "sbot:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "sbot",
		Short:         "Cask: a Secure Scuttlebutt node",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w\n%s", err, c.UsageString())}
	})
	root.AddCommand(newVerifyCmd(), newImportCmd())
	addServeCmd(root)
	addClientCmds(root)
	addBlobCmds(root)
	return root
}
