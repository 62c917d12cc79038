// Command importrate measures `sbot import` of N signed messages (over
// -feeds feeds, newline-delimited values in a file) into an empty repo,
// offline (the store opened directly) and through a running daemon
// (muxrpc addBatch), in msgs/s: the two should be close.
//
//	go run ./bench/importrate [-n 100000] [-feeds 100] [-runs 3] [-sbot PATH]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"time"

	"github.com/cask-ssb/cask/bench/fill"
	"github.com/cask-ssb/cask/bench/internal/proc"
	"github.com/cask-ssb/cask/feeds/classic"
)

func main() {
	n := flag.Int("n", 100000, "messages to import")
	nfeeds := flag.Int("feeds", 100, "feeds they are spread over")
	runs := flag.Int("runs", 3, "runs of each mode")
	bin := flag.String("sbot", "", "sbot binary (default: build cmd/sbot)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *n, *nfeeds, *runs, *bin); err != nil {
		log.Fatalf("importrate: %v", err)
	}
}

func run(ctx context.Context, n, nfeeds, runs int, bin string) error {
	tmp, err := os.MkdirTemp("", "cask-bench-import-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if bin == "" {
		if bin, err = proc.BuildSbot(ctx, tmp); err != nil {
			return err
		}
	}
	input := filepath.Join(tmp, "in.jsonl")
	if err := writeInput(input, n, nfeeds); err != nil {
		return err
	}
	rates := map[string][]float64{}
	for r := 1; r <= runs; r++ {
		for _, mode := range []string{"offline", "daemon"} {
			repo := filepath.Join(tmp, fmt.Sprintf("%s%d", mode, r))
			var d *proc.Daemon
			if mode == "daemon" {
				if d, err = proc.StartDaemon(ctx, bin, repo, false, "warn"); err != nil {
					return err
				}
			}
			t0 := time.Now()
			out, err := exec.CommandContext(ctx, bin, "import", "--repo", repo, input).CombinedOutput()
			el := time.Since(t0)
			if d != nil {
				d.Stop()
			}
			if err != nil {
				return fmt.Errorf("%s import: %v\n%s", mode, err, out)
			}
			rate := float64(n) / el.Seconds()
			log.Printf("run %d %s: %.0f msgs/s", r, mode, rate)
			rates[mode] = append(rates[mode], rate)
		}
	}
	for _, mode := range []string{"offline", "daemon"} {
		rs := rates[mode]
		slices.Sort(rs)
		fmt.Printf("sbot import %s: %.0f msgs/s (median of %d, n=%d, %d feeds; all: %.0f)\n", mode, rs[len(rs)/2], runs, n, nfeeds, rs)
	}
	return nil
}

func writeInput(path string, n, nfeeds int) error {
	authors, err := fill.Keys("importrate", nfeeds)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	states := make([]*classic.FeedState, nfeeds)
	for i := range n {
		a := i % nfeeds
		seq := int64(i/nfeeds + 1)
		m, err := classic.Create(authors[a].Private, states[a], float64(1700000000000+seq), classic.RawJSON(fill.Post(a, seq)), nil)
		if err != nil {
			return err
		}
		s := classic.StateAfter(m)
		states[a] = &s
		w.Write(m.Compact)
		w.WriteByte('\n')
	}
	return w.Flush()
}
