// Command startup measures how long `sbot serve` takes, with N messages in
// its store (bench/fill, many contact messages among them), from the
// process start until whoami answers over the unix socket. The contact
// graph is a persisted index, so this must not grow with the log.
//
//	go run ./bench/startup [-n 1000000] [-feeds 1000] [-runs 5] [-sbot PATH] [-keep]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/cask-ssb/cask/bench/fill"
	"github.com/cask-ssb/cask/bench/internal/proc"
	"github.com/cask-ssb/cask/sbot/client"
)

func main() {
	n := flag.Int("n", 1000000, "messages in the store")
	nfeeds := flag.Int("feeds", 1000, "feeds they are spread over")
	runs := flag.Int("runs", 5, "daemon starts")
	bin := flag.String("sbot", "", "sbot binary (default: build cmd/sbot)")
	keep := flag.Bool("keep", false, "keep the work directory")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *n, *nfeeds, *runs, *bin, *keep); err != nil {
		log.Fatalf("startup: %v", err)
	}
}

func run(ctx context.Context, n, nfeeds, runs int, bin string, keep bool) error {
	tmp, err := os.MkdirTemp("", "cask-bench-startup-")
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
	repo := filepath.Join(tmp, "repo")
	authors, err := fill.Keys("startup", nfeeds)
	if err != nil {
		return err
	}
	// Every tenth message is a follow, so the graph has many edges.
	content := func(a int, seq int64) []byte {
		if seq%10 == 0 {
			return fmt.Appendf(nil, `{"type":"contact","contact":%q,"following":true}`, authors[(a+int(seq))%nfeeds].ID.String())
		}
		return fill.Post(a, seq)
	}
	t0 := time.Now()
	if err := fill.Repo(ctx, repo, fill.Options{Authors: authors, Messages: n, Content: content}); err != nil {
		return err
	}
	log.Printf("filled %d messages in %d feeds in %s", n, nfeeds, time.Since(t0).Round(time.Millisecond))
	var times []time.Duration
	for r := 1; r <= runs; r++ {
		d, err := once(ctx, bin, repo)
		if err != nil {
			return fmt.Errorf("run %d: %w", r, err)
		}
		log.Printf("run %d: whoami answered %s after the start", r, d.Round(time.Millisecond))
		times = append(times, d)
	}
	slices.Sort(times)
	fmt.Printf("start-up until whoami answers: %s (median of %d, n=%d messages, %d feeds; all: %v)\n",
		times[len(times)/2].Round(time.Millisecond), runs, n, nfeeds, times)
	return nil
}

func once(ctx context.Context, bin, repo string) (time.Duration, error) {
	cmd := exec.Command(bin, "serve", "--repo", repo, "--listen", "off", "--log-level", "warn")
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	for {
		c, err := client.DialRepo(ctx, repo)
		if err == nil {
			_, err = c.Whoami(ctx)
			c.Close()
			if err == nil {
				return time.Since(t0), nil
			}
		}
		if time.Since(t0) > time.Minute {
			return 0, fmt.Errorf("no whoami within a minute: %w", err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}
