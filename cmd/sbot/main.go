// Command sbot is the Cask SSB daemon (`sbot serve`) and its command-line
// client: every other subcommand talks to a running daemon over REPO/socket
// (or over TCP with --remote), except the offline `verify`, `import` and `fsck`
// (and `log`, `hist` and `get`, which read a stopped daemon's store).
//
// Output is JSON (one value, or one per line for streams); errors go to
// stderr. Exit status: 0 ok, 1 failed or not found, 2 usage or invalid
// input (see exitError).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit statuses, the same for every subcommand.
const (
	exitOK      = 0
	exitFailed  = 1 // the operation failed, or what was asked for was not found
	exitInvalid = 2 // bad usage or invalid input
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

// usageErr is an error of bad usage or invalid input: exit status 2.
func usageErr(format string, a ...any) error {
	return &exitError{code: exitInvalid, err: fmt.Errorf(format, a...)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit status; errors
// are printed to stderr.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return report(root.Execute(), stderr)
}

// report prints err (if any) and returns the exit status for it.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	code := exitFailed
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "unknown flag"):
		code = exitInvalid
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(stderr, "sbot:", msg)
	}
	return code
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "sbot",
		Short:         "Cask: a Secure Scuttlebutt node",
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("sbot {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitInvalid, err: fmt.Errorf("%w\n%s", err, c.UsageString())}
	})
	root.AddCommand(newVerifyCmd(), newImportCmd(), newFsckCmd(), newVersionCmd())
	addServeCmd(root)
	addClientCmds(root)
	addQueryCmds(root)
	addBlobCmds(root)
	addSyncCmd(root)
	usageArgs(root)
	return root
}

// usageArgs makes every argument-count error of every subcommand a usage
// error (exit status 2).
func usageArgs(c *cobra.Command) {
	if args := c.Args; args != nil {
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				var ee *exitError
				if errors.As(err, &ee) {
					return err
				}
				return &exitError{code: exitInvalid, err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
}
