// Command gogo measures Go→Go replication: a daemon whose own feed holds N
// messages (bench/fill) serves it, a second daemon with an empty repo
// connects (gossip.connect, so it opens an EBT session) and the time from
// the connect call until the second daemon holds message N is the figure.
// Both are the real `sbot serve` binary on 127.0.0.1.
//
//	go run ./bench/gogo [-n 100000] [-runs 3] [-sbot PATH] [-keep]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cask-ssb/cask/bench/fill"
	"github.com/cask-ssb/cask/bench/internal/proc"
	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/sbot/client"
)

func main() {
	n := flag.Int("n", 100000, "messages in the served feed")
	runs := flag.Int("runs", 3, "runs (each into a fresh repo)")
	bin := flag.String("sbot", "", "sbot binary (default: build cmd/sbot)")
	keep := flag.Bool("keep", false, "keep the work directory")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *n, *runs, *bin, *keep); err != nil {
		log.Fatalf("gogo: %v", err)
	}
}

func run(ctx context.Context, n, runs int, bin string, keep bool) error {
	tmp, err := os.MkdirTemp("", "cask-bench-gogo-")
	if err != nil {
		return err
	}
	if keep {
		log.Printf("work directory kept: %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if bin == "" {
		if bin, err = proc.BuildSbot(ctx, tmp); err != nil {
			return err
		}
	}
	src := filepath.Join(tmp, "src")
	if err := os.MkdirAll(src, 0o700); err != nil {
		return err
	}
	kp, _, err := feeds.LoadOrCreateSecret(filepath.Join(src, "secret"))
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := fill.Repo(ctx, src, fill.Options{Authors: []feeds.KeyPair{kp}, Messages: n}); err != nil {
		return err
	}
	log.Printf("filled the source feed with %d messages in %s", n, time.Since(t0).Round(time.Millisecond))
	a, err := proc.StartDaemon(ctx, bin, src, true, "warn")
	if err != nil {
		return err
	}
	defer a.Stop()
	var rates []float64
	for r := 1; r <= runs; r++ {
		rate, err := once(ctx, bin, filepath.Join(tmp, fmt.Sprintf("dst%d", r)), a, kp.ID, n)
		if err != nil {
			return fmt.Errorf("run %d: %w", r, err)
		}
		log.Printf("run %d: %.0f msgs/s", r, rate)
		rates = append(rates, rate)
	}
	slices.Sort(rates)
	fmt.Printf("Go→Go replication (EBT) of one feed: %.0f msgs/s (median of %d, n=%d; all: %.0f)\n", rates[len(rates)/2], runs, n, rates)
	return nil
}

func once(ctx context.Context, bin, repo string, a *proc.Daemon, feed feeds.FeedRef, n int) (float64, error) {
	b, err := proc.StartDaemon(ctx, bin, repo, true, "warn")
	if err != nil {
		return 0, err
	}
	defer b.Stop()
	c, err := client.DialRepo(ctx, repo)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	t0 := time.Now()
	if err := c.Endpoint().Async(ctx, nil, []string{"gossip", "connect"}, a.Addr); err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	deadline := t0.Add(5 * time.Minute)
	last := time.Now()
	for {
		var seq int64
		err := c.Endpoint().Async(ctx, &seq, []string{"latestSequence"}, feed.String())
		if err != nil && strings.Contains(err.Error(), "not found") {
			err = nil // nothing yet
		}
		if err == nil {
			if time.Since(last) > 5*time.Second {
				last = time.Now()
				log.Printf("after %s: %d of %d", time.Since(t0).Round(time.Millisecond), seq, n)
			}
			if seq >= int64(n) {
				return float64(n) / time.Since(t0).Seconds(), nil
			}
		}
		if err != nil && time.Since(last) > 5*time.Second {
			last = time.Now()
			log.Printf("latestSequence: %v", err)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("not replicated within 5 minutes (stderr: %s)", b.Stderr())
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
