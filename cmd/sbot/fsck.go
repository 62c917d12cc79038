package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/sbot"
)

func newFsckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fsck [--repo DIR] [--repair] [--json]",
		Short: "Check the repo's store offline, and repair it with --repair",
		Long: `Check the store of a repo whose daemon is stopped: every log record decodes,
the log and each feed are contiguous, the by-key and by-feed indexes, the
feed heads and the log tail agree with the log, and every index has this
build's version.

With --repair, records that do not decode (a torn tail, a corrupted record)
are moved aside under the store's x/corrupt/ keys (never deleted), the
derived indexes are rebuilt from the log, and the daemon's indexes are
rebuilt. Missing messages (a gap in the log or in a feed) are reported, not
repaired: peers send them again.

A progress bar goes to stderr when it is a terminal. The report goes to
stdout: lines for people, or one JSON object with --json.
Exit status: 0 no problem (left), 1 problems found (or left after --repair)
or the store cannot be read, 2 bad usage.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			repair, _ := cmd.Flags().GetBool("repair")
			asJSON, _ := cmd.Flags().GetBool("json")
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runFsck(ctx, repoFrom(cmd), repair, asJSON, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	addRepoFlag(cmd.Flags())
	cmd.Flags().Bool("repair", false, "repair what can be repaired (quarantine undecodable records, rebuild indexes)")
	cmd.Flags().Bool("json", false, "print the report as one JSON object")
	return cmd
}

func runFsck(ctx context.Context, repo string, repair, asJSON bool, stdout, stderr io.Writer) error {
	opts := store.FsckOptions{Repair: repair}
	var bar *progressbar.ProgressBar
	if isTerminal(stderr) {
		bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("fsck"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("records"),
			progressbar.OptionShowIts(),
			progressbar.OptionThrottle(100_000_000), // 100 ms
			progressbar.OptionClearOnFinish(),
		)
		opts.Progress = func(done, total int64) {
			if bar.GetMax64() != total {
				bar.ChangeMax64(total)
			}
			_ = bar.Set64(done)
		}
	}
	rep, err := sbot.FsckRepo(ctx, repo, opts)
	if bar != nil {
		_ = bar.Finish()
	}
	switch {
	case errors.Is(err, sbot.ErrRepoLocked):
		return fmt.Errorf("fsck: %w; stop the daemon first", err)
	case errors.Is(err, sbot.ErrNoStore):
		return fmt.Errorf("fsck: %s: %w (%s does not exist); point --repo (or SSB_REPO) at the repo of a node that has run",
			repo, sbot.ErrNoStore, filepath.Join(repo, "store"))
	case err != nil:
		return fmt.Errorf("fsck: %w", err)
	}
	if asJSON {
		if rep.Problems == nil {
			rep.Problems = []store.Problem{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("fsck: write report: %w", err)
		}
	} else if err := printFsck(stdout, rep); err != nil {
		return fmt.Errorf("fsck: write report: %w", err)
	}
	switch {
	case rep.Left == 0:
		return nil
	case rep.Repaired:
		return &exitError{code: exitFailed, err: fmt.Errorf("fsck: %d problems left after the repair", rep.Left)}
	default:
		return &exitError{code: exitFailed, err: fmt.Errorf("fsck: %d problems found; sbot fsck --repair repairs what can be repaired", rep.Found)}
	}
}

// printFsck writes the report for people.
func printFsck(w io.Writer, rep store.FsckReport) error {
	var b strings.Builder
	fmt.Fprintf(&b, "store %s: %d records, %d feeds, log tail %d", rep.Dir, rep.Records, rep.Feeds, rep.Tail)
	if rep.Quarantined > 0 {
		fmt.Fprintf(&b, ", %d records quarantined", rep.Quarantined)
	}
	b.WriteString("\n")
	for _, p := range rep.Problems {
		state := ""
		if rep.Repaired {
			state = " [not repaired]"
			if p.Repaired {
				state = " [repaired]"
			}
		}
		fmt.Fprintf(&b, "%s%s: %s%s\n", p.Kind, seqSuffix(p.Seq), p.Detail, state)
	}
	if n := rep.Found - len(rep.Problems); n > 0 {
		fmt.Fprintf(&b, "… and %d more\n", n)
	}
	switch {
	case rep.Found == 0:
		b.WriteString("no problems found\n")
	default:
		fmt.Fprintf(&b, "%d problems found (%s)\n", rep.Found, countsString(rep.Counts))
	}
	if rep.Repaired {
		if len(rep.IndexesToRebuild) > 0 {
			fmt.Fprintf(&b, "indexes rebuilt: %s\n", strings.Join(rep.IndexesToRebuild, ", "))
		}
		for _, p := range rep.Remaining {
			fmt.Fprintf(&b, "left: %s%s: %s\n", p.Kind, seqSuffix(p.Seq), p.Detail)
		}
		fmt.Fprintf(&b, "repaired; %d problems left\n", rep.Left)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func seqSuffix(seq int64) string {
	if seq == 0 {
		return ""
	}
	return fmt.Sprintf(" at seq %d", seq)
}

func countsString(c map[store.ProblemKind]int) string {
	kinds := make([]string, 0, len(c))
	for k := range c {
		kinds = append(kinds, string(k))
	}
	slices.Sort(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, c[store.ProblemKind(k)])
	}
	return strings.Join(parts, ", ")
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
