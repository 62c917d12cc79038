package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/status"
	"github.com/cask-ssb/cask/sbot/client"
)

// syncPoll is how often `sbot sync --wait` asks the daemon; syncQuiet is
// how long the JSON lines output stays silent while nothing changes.
const (
	syncPoll  = 500 * time.Millisecond
	syncQuiet = 10 * time.Second
)

// syncLine is one line of `sbot sync` when stdout is not a terminal.
type syncLine struct {
	Known       int64 `json:"known"`
	Held        int64 `json:"held"`
	Peers       int   `json:"peers"`
	Waiting     int   `json:"waiting"`
	FeedsBehind int   `json:"feedsBehind"`
	CaughtUp    bool  `json:"caughtUp"`
}

func addSyncCmd(root *cobra.Command) {
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Show how far the daemon is behind its connected peers; --wait: until it has caught up",
		Long: `Compare what the connected peers' EBT clocks say exists with what the
daemon holds (muxrpc sync.progress) and print it as one JSON line:
{"known","held","peers","waiting","feedsBehind","caughtUp"}.

With --wait, follow the sync until the daemon holds everything its connected
peers advertise: a progress bar on a terminal, else a JSON line whenever the
figures change. It is caught up once at least one peer's clock is known, no
connected peer's clock is still awaited and nothing is missing. Exit status
0 when caught up, 1 when --timeout ends the wait first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			wait, _ := cmd.Flags().GetBool("wait")
			return clientRun(cmd, func(ctx context.Context, c *client.Client, out *jsonOut) error {
				if !wait {
					p, err := syncProgress(ctx, c)
					if err != nil {
						return err
					}
					return out.Encode(lineOf(p))
				}
				if f, ok := cmd.OutOrStdout().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					return syncBar(ctx, c, f)
				}
				return syncLines(ctx, c, out)
			})
		},
	}
	addClientFlags(cmd.Flags())
	cmd.Flags().Bool("wait", false, "wait until caught up with the connected peers (exit status 1 if --timeout ends it first)")
	root.AddCommand(cmd)
}

func syncProgress(ctx context.Context, c *client.Client) (status.Progress, error) {
	var p status.Progress
	err := c.Endpoint().Async(ctx, &p, muxrpc.Method{"sync", "progress"})
	return p, err
}

func lineOf(p status.Progress) syncLine {
	return syncLine{Known: p.Known, Held: p.Held, Peers: p.Peers, Waiting: p.Waiting, FeedsBehind: p.FeedsBehind, CaughtUp: p.CaughtUp}
}

// pollSync calls show with the daemon's progress every syncPoll until it
// is caught up (nil) or ctx ends (its error).
func pollSync(ctx context.Context, c *client.Client, show func(status.Progress) error) error {
	t := time.NewTicker(syncPoll)
	defer t.Stop()
	for {
		p, err := syncProgress(ctx, c)
		if err != nil {
			return err
		}
		if err := show(p); err != nil {
			return err
		}
		if p.CaughtUp {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// syncLines prints a JSON line when the figures change (or every
// syncQuiet while they do not), the caught-up line last.
func syncLines(ctx context.Context, c *client.Client, out *jsonOut) error {
	var last syncLine
	var printed time.Time
	return pollSync(ctx, c, func(p status.Progress) error {
		l := lineOf(p)
		if !printed.IsZero() && l == last && time.Since(printed) < syncQuiet {
			return nil
		}
		last, printed = l, time.Now()
		if err := out.Encode(l); err != nil {
			return err
		}
		return out.Flush()
	})
}

// syncBar draws a progress bar of held/known on the terminal w.
func syncBar(ctx context.Context, c *client.Client, w io.Writer) error {
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("waiting for peers' clocks"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetItsString("msgs"),
		progressbar.OptionShowIts(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionFullWidth(),
	)
	err := pollSync(ctx, c, func(p status.Progress) error {
		if p.Peers > 0 {
			if bar.GetMax64() != p.Known {
				bar.ChangeMax64(max(p.Known, 1))
			}
			desc := fmt.Sprintf("syncing with %d peer(s), %d feed(s) behind", p.Peers, p.FeedsBehind)
			if p.Waiting > 0 {
				desc += fmt.Sprintf(", %d peer(s) not started", p.Waiting)
			}
			bar.Describe(desc)
		}
		return bar.Set64(p.Held)
	})
	if err == nil {
		_ = bar.Finish()
		p, perr := syncProgress(ctx, c)
		if perr == nil {
			fmt.Fprintf(w, "\ncaught up: %d messages held, %d peer(s)\n", p.Held, p.Peers)
		}
		return nil
	}
	fmt.Fprintln(w)
	return err
}
