// Command rss measures the resident memory of an idle `sbot serve` whose
// store holds many messages: right after start, and again after a client
// has streamed the whole log once.
//
//	go run ./bench/rss [-n 100000] [-feeds 1000] [-idle 5s] [-runs 1]
//
// It fills a temporary repo with signed test messages, starts the real
// binary on it (TCP on 127.0.0.1 only), and prints one result line per
// figure. It never asserts a limit; it reports.
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
	"syscall"
	"time"

	"github.com/cask-ssb/cask/bench/fill"
	"github.com/cask-ssb/cask/bench/internal/proc"
	"github.com/cask-ssb/cask/sbot/client"
)

func main() {
	n := flag.Int("n", 100_000, "messages in the store")
	nfeeds := flag.Int("feeds", 1000, "feeds the messages are spread over")
	idle := flag.Duration("idle", 5*time.Second, "how long to let the daemon sit idle before reading its RSS")
	runs := flag.Int("runs", 1, "daemon starts to measure (the median is printed too)")
	bin := flag.String("sbot", "", "sbot binary to run (default: go build ./cmd/sbot)")
	keep := flag.Bool("keep", false, "keep the temporary repo")
	flag.Parse()
	log.SetFlags(0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *n, *nfeeds, *idle, *runs, *bin, *keep); err != nil {
		log.Fatalf("rss: %v", err)
	}
}

func run(ctx context.Context, n, nfeeds int, idle time.Duration, runs int, bin string, keep bool) error {
	tmp, err := os.MkdirTemp("", "cask-bench-rss-")
	if err != nil {
		return err
	}
	if keep {
		log.Printf("repo kept in %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if bin == "" {
		if bin, err = proc.BuildSbot(ctx, tmp); err != nil {
			return err
		}
	}
	repo := filepath.Join(tmp, "repo")
	authors, err := fill.Keys("rss", nfeeds)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := fill.Repo(ctx, repo, fill.Options{Authors: authors, Messages: n}); err != nil {
		return err
	}
	log.Printf("filled %s with %d messages in %d feeds in %s", repo, n, nfeeds, time.Since(t0).Round(time.Millisecond))

	var atStart, afterStream []int64
	for r := 1; r <= runs; r++ {
		s, a, err := once(ctx, bin, repo, n, idle)
		if err != nil {
			return fmt.Errorf("run %d: %w", r, err)
		}
		atStart, afterStream = append(atStart, s), append(afterStream, a)
	}
	fmt.Printf("rss idle after start: %s (n=%d feeds=%d runs=%d; all: %s)\n", mb(median(atStart)), n, nfeeds, runs, mbs(atStart))
	fmt.Printf("rss idle after streaming the whole log: %s (n=%d feeds=%d runs=%d; all: %s)\n", mb(median(afterStream)), n, nfeeds, runs, mbs(afterStream))
	return nil
}

// once starts the daemon, reads its RSS after idle, streams the log, waits
// idle again and reads it again.
func once(ctx context.Context, bin, repo string, n int, idle time.Duration) (start, streamed int64, err error) {
	d, err := proc.StartDaemon(ctx, bin, repo, true, "warn")
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if serr := d.Stop(); serr != nil && err == nil {
			err = fmt.Errorf("stop daemon: %w; stderr: %s", serr, d.Stderr())
		}
	}()
	if err := sleep(ctx, idle); err != nil {
		return 0, 0, err
	}
	st, err := proc.Status(d.Pid, statusFields...)
	if err != nil {
		return 0, 0, err
	}
	log.Printf("pid %d after %s idle: %s", d.Pid, idle, describe(st))
	start = st["VmRSS"]

	c, err := client.DialRepo(ctx, repo)
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	count := 0
	for _, err := range c.Log(ctx, map[string]any{}) {
		if err != nil {
			c.Close()
			return 0, 0, fmt.Errorf("createLogStream: %w", err)
		}
		count++
	}
	el := time.Since(t0)
	c.Close()
	if count != n {
		return 0, 0, fmt.Errorf("createLogStream gave %d messages, want %d", count, n)
	}
	peak, err := proc.Status(d.Pid, statusFields...)
	if err != nil {
		return 0, 0, err
	}
	log.Printf("streamed %d messages in %s (%.0f msgs/s); right after: %s",
		count, el.Round(time.Millisecond), float64(count)/el.Seconds(), describe(peak))
	if err := sleep(ctx, idle); err != nil {
		return 0, 0, err
	}
	st, err = proc.Status(d.Pid, statusFields...)
	if err != nil {
		return 0, 0, err
	}
	log.Printf("pid %d after %s idle: %s", d.Pid, idle, describe(st))
	return start, st["VmRSS"], nil
}

// statusFields are the memory figures logged from /proc/PID/status.
var statusFields = []string{"VmRSS", "RssAnon", "RssFile", "VmHWM"}

func describe(st map[string]int64) string {
	out := ""
	for i, f := range statusFields {
		if i > 0 {
			out += ", "
		}
		out += f + " " + mb(st[f])
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func median(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func mbs(v []int64) string {
	out := ""
	for i, b := range v {
		if i > 0 {
			out += ", "
		}
		out += mb(b)
	}
	return out
}
