// Command gogo measures Go→Go replication: a daemon whose own feed holds N
// messages (bench/fill) serves it, a second daemon with an empty repo
// connects (gossip.connect, so it opens an EBT session) and the time from
// the connect call until the second daemon holds message N is the figure.
// Both are the real `sbot serve` binary on 127.0.0.1, both started afresh
// for each run. Each run also logs the CPU time each daemon used per
// message (from /proc), a figure the load of the machine moves far less
// than the rate.
//
//	go run ./bench/gogo [-n 100000] [-runs 3] [-sbot PATH] [-sbot-b PATH] [-keep] [-profile DIR]
//
// With -sbot-b, each run measures -sbot and then the second binary, so an
// old and a new build are compared under the same load.
//
// With -profile, both daemons serve pprof on a loopback debug listener
// and a CPU profile of each, of the first -profile-seconds of run N, is
// written to DIR (src-runN.pprof, dst-runN.pprof; a-/b- prefixed names
// with -sbot-b). The run's figure is
// taken as without profiling; the daemons stop once the profiles are in.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	binB := flag.String("sbot-b", "", "a second sbot binary: each run measures -sbot then this one, interleaved")
	keep := flag.Bool("keep", false, "keep the work directory")
	profile := flag.String("profile", "", "write CPU profiles of both daemons during each run to this directory")
	profileSeconds := flag.Int("profile-seconds", 5, "length of each CPU profile (-profile)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *n, *runs, *bin, *binB, *keep, *profile, *profileSeconds); err != nil {
		log.Fatalf("gogo: %v", err)
	}
}

func run(ctx context.Context, n, runs int, bin, binB string, keep bool, profile string, profileSeconds int) error {
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
	if profile != "" {
		if err := os.MkdirAll(profile, 0o755); err != nil {
			return err
		}
	}
	bins := []string{bin}
	if binB != "" {
		bins = append(bins, binB)
	}
	rates := make([][]float64, len(bins))
	for r := 1; r <= runs; r++ {
		for i, bin := range bins {
			var prof *profiler
			if profile != "" {
				prof = &profiler{dir: profile, name: fmt.Sprintf("run%d", r), seconds: profileSeconds}
				if len(bins) > 1 {
					prof.name = fmt.Sprintf("%c-run%d", 'a'+i, r)
				}
			}
			res, err := once(ctx, bin, src, filepath.Join(tmp, fmt.Sprintf("dst%d-%d", r, i)), kp.ID, n, prof)
			if err != nil {
				return fmt.Errorf("run %d (%s): %w", r, bin, err)
			}
			log.Printf("run %d, %s: %.0f msgs/s; CPU per message: source %.1f µs, destination %.1f µs",
				r, bin, res.rate, res.srcCPU, res.dstCPU)
			rates[i] = append(rates[i], res.rate)
		}
	}
	for i, bin := range bins {
		rs := slices.Clone(rates[i])
		slices.Sort(rs)
		label := ""
		if len(bins) > 1 {
			label = " [" + bin + "]"
		}
		fmt.Printf("Go→Go replication (EBT) of one feed%s: %.0f msgs/s (median of %d, n=%d; all: %.0f)\n",
			label, rs[len(rs)/2], runs, n, rates[i])
	}
	return nil
}

type result struct {
	rate           float64 // msgs/s
	srcCPU, dstCPU float64 // CPU µs per message, each daemon
}

// once serves src with bin, replicates it into a fresh repo served by bin
// too, and measures.
func once(ctx context.Context, bin, src, repo string, feed feeds.FeedRef, n int, prof *profiler) (result, error) {
	var srcExtra, extra []string
	if prof != nil {
		var err error
		if prof.srcDebug, err = freeAddr(); err != nil {
			return result{}, err
		}
		if prof.dstDebug, err = freeAddr(); err != nil {
			return result{}, err
		}
		srcExtra = []string{"--debug-listen", prof.srcDebug}
		extra = []string{"--debug-listen", prof.dstDebug}
	}
	a, err := proc.StartDaemon(ctx, bin, src, true, "warn", srcExtra...)
	if err != nil {
		return result{}, err
	}
	defer a.Stop()
	b, err := proc.StartDaemon(ctx, bin, repo, true, "warn", extra...)
	if err != nil {
		return result{}, err
	}
	defer b.Stop()
	if prof != nil {
		done := prof.start(ctx)
		defer func() { <-done }()
	}
	c, err := client.DialRepo(ctx, repo)
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	cpuA0, err1 := proc.CPUTime(a.Pid)
	cpuB0, err2 := proc.CPUTime(b.Pid)
	if err := errors.Join(err1, err2); err != nil {
		return result{}, err
	}
	t0 := time.Now()
	if err := c.Endpoint().Async(ctx, nil, []string{"gossip", "connect"}, a.Addr); err != nil {
		return result{}, fmt.Errorf("connect: %w", err)
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
				res := result{rate: float64(n) / time.Since(t0).Seconds()}
				cpuA1, err1 := proc.CPUTime(a.Pid)
				cpuB1, err2 := proc.CPUTime(b.Pid)
				if err := errors.Join(err1, err2); err != nil {
					return result{}, err
				}
				res.srcCPU = float64((cpuA1 - cpuA0).Microseconds()) / float64(n)
				res.dstCPU = float64((cpuB1 - cpuB0).Microseconds()) / float64(n)
				return res, nil
			}
		}
		if err != nil && time.Since(last) > 5*time.Second {
			last = time.Now()
			log.Printf("latestSequence: %v", err)
		}
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("not replicated within 5 minutes (stderr: %s)", b.Stderr())
		}
		select {
		case <-ctx.Done():
			return result{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// freeAddr is a loopback address with a port free right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// profiler takes a CPU profile of each daemon while a run replicates.
type profiler struct {
	dir                string
	name               string
	seconds            int
	srcDebug, dstDebug string
}

// start fetches a CPU profile of p.seconds from both debug listeners; the
// returned channel closes when both files are written.
func (p *profiler) start(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for name, addr := range map[string]string{"src": p.srcDebug, "dst": p.dstDebug} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			file := filepath.Join(p.dir, fmt.Sprintf("%s-%s.pprof", name, p.name))
			if err := fetchProfile(ctx, "http://"+addr+fmt.Sprintf("/debug/pprof/profile?seconds=%d", p.seconds), file); err != nil {
				log.Printf("profile %s: %v", name, err)
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

func fetchProfile(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
