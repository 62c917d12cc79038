// Command jsratio measures how fast a JavaScript peer (the interop kit's
// peer.js, legacy replication) ingests a feed of N messages served over
// createHistoryStream, first from our daemon and then from another JS
// peer, in the same run, and prints both rates and their ratio.
//
//	go run ./bench/jsratio [-n 10000] [-runs 3]
//
// The receiving JS peer is the same in both cases, so a ratio near 1 (or
// above) means the JS peer, not our daemon, is the bottleneck. Everything
// listens on 127.0.0.1. The figure is "connect → the JS peer's progress
// event reaches seq N", like the kit's bench.js.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cask-ssb/cask/bench/fill"
	"github.com/cask-ssb/cask/bench/internal/proc"
	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/internal/interop"
)

type options struct {
	n       int
	runs    int
	bin     string
	timeout time.Duration
	cases   string
	mode    string
	debug   bool
	keep    bool
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 10_000, "messages in the replicated feed")
	flag.IntVar(&o.runs, "runs", 3, "runs of each case (the median is printed)")
	flag.StringVar(&o.bin, "sbot", "", "sbot binary to run (default: go build ./cmd/sbot)")
	flag.DurationVar(&o.timeout, "timeout", 3*time.Minute, "give up on one replication after this long")
	flag.StringVar(&o.mode, "mode", "legacy", "replication of the JS peers: legacy (createHistoryStream) or ebt")
	flag.StringVar(&o.cases, "cases", "go,js", "which cases to run: go (our daemon serves), js (a JS peer serves), or both")
	flag.BoolVar(&o.debug, "debug", false, "daemon log at debug level, JS peers with --trace; logs kept in the work directory")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (repos, JS data, logs)")
	flag.Parse()
	log.SetFlags(0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Fatalf("jsratio: %v", err)
	}
}

// result is one replication.
type result struct {
	ms        float64       // connect → last message stored by the JS receiver
	connMs    float64       // connect → the receiver's connected event
	firstMs   float64       // connect → first message stored
	gapMs     float64       // longest pause between two progress events
	gapSeq    int64         // the seq that ended that pause
	serverCPU time.Duration // CPU used by the serving side meanwhile
	recvCPU   time.Duration // CPU used by the receiving JS peer meanwhile
}

func (r result) rate(n int) float64 { return float64(n) / r.ms * 1000 }

// print logs one run's details to stderr.
func (r result) print(run int, what, server string, n int) {
	log.Printf("run %d %s: %.0f ms (%.0f msgs/s; connected after %.0f ms, first message after %.0f ms, "+
		"longest pause %.0f ms before seq %d; CPU: %s %s, JS receiver %s)",
		run, what, r.ms, r.rate(n), r.connMs, r.firstMs, r.gapMs, r.gapSeq,
		server, r.serverCPU.Round(time.Millisecond), r.recvCPU.Round(time.Millisecond))
}

func run(ctx context.Context, o options) error {
	kit, err := interop.KitDir()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "cask-bench-jsratio-")
	if err != nil {
		return err
	}
	if o.keep || o.debug {
		log.Printf("work directory: %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if o.bin == "" {
		if o.bin, err = proc.BuildSbot(ctx, tmp); err != nil {
			return err
		}
	}
	// Our repo: the daemon's own feed holds N messages shaped like the
	// ones peer.js --publish writes.
	repo := filepath.Join(tmp, "repo")
	kp, _, err := feeds.LoadOrCreateSecret(filepath.Join(repo, "secret"))
	if err != nil {
		return err
	}
	content := func(_ int, seq int64) []byte {
		return fmt.Appendf(nil, `{"type":"post","text":"interop message %d from bench-go","n":%d}`, seq, seq)
	}
	if err := fill.Repo(ctx, repo, fill.Options{Authors: []feeds.KeyPair{kp}, Messages: o.n, Content: content}); err != nil {
		return err
	}

	runGo, runJS := strings.Contains(o.cases, "go"), strings.Contains(o.cases, "js")
	if !runGo && !runJS {
		return fmt.Errorf("-cases %q: want go, js or go,js", o.cases)
	}
	var ours, theirs []result
	for r := 1; r <= o.runs; r++ {
		if runGo {
			g, err := fromGo(ctx, o, kit, repo, filepath.Join(tmp, fmt.Sprintf("go-%d", r)))
			if err != nil {
				return fmt.Errorf("run %d, Go → JS: %w", r, err)
			}
			g.print(r, "Go → JS", "sbot", o.n)
			ours = append(ours, g)
		}
		if runJS {
			j, err := fromJS(ctx, o, kit, filepath.Join(tmp, fmt.Sprintf("js-%d", r)))
			if err != nil {
				return fmt.Errorf("run %d, JS → JS: %w", r, err)
			}
			j.print(r, "JS → JS", "JS server", o.n)
			theirs = append(theirs, j)
		}
	}
	var og, oj float64
	if runGo {
		og = medianRate(ours, o.n)
		fmt.Printf("%s replication Go → JS: %.0f msgs/s (median of %d, n=%d)\n", o.mode, og, o.runs, o.n)
	}
	if runJS {
		oj = medianRate(theirs, o.n)
		fmt.Printf("%s replication JS → JS: %.0f msgs/s (median of %d, n=%d)\n", o.mode, oj, o.runs, o.n)
	}
	if runGo && runJS {
		fmt.Printf("ratio ours/JS: %.2f\n", og/oj)
	}
	return nil
}

// fromGo starts our daemon on repo and a fresh JS peer that replicates the
// daemon's feed, connects the JS peer and times the transfer.
func fromGo(ctx context.Context, o options, kit, repo, dir string) (result, error) {
	level := "warn"
	if o.debug {
		level = "debug"
	}
	d, err := proc.StartDaemon(ctx, o.bin, repo, true, level)
	if err != nil {
		return result{}, err
	}
	defer func() {
		d.Stop()
		if o.debug {
			if err := os.WriteFile(dir+"-daemon.log", []byte(d.Stderr()), 0o600); err != nil {
				log.Printf("save daemon log: %v", err)
			}
		}
	}()
	recv, ready, err := startPeer(ctx, o, kit, dir, "--replicate", d.ID)
	if err != nil {
		return result{}, err
	}
	defer recv.Stop()
	return replicate(ctx, o, recv, ready, d.ID, d.Addr, d.Pid)
}

// fromJS starts a JS peer that publishes N messages and a fresh JS peer
// that replicates it, connects the second to the first and times it.
func fromJS(ctx context.Context, o options, kit, dir string) (result, error) {
	src, srcReady, err := startPeer(ctx, o, kit, filepath.Join(dir, "a"), "--seed", "bench-js", "--publish", strconv.Itoa(o.n))
	if err != nil {
		return result{}, err
	}
	defer src.Stop()
	wctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if _, err := src.WaitEventContext(wctx, func(e interop.Event) bool { return e.Name() == "published" }); err != nil {
		return result{}, fmt.Errorf("JS publisher: %w", err)
	}
	id := srcReady.String("id")
	recv, ready, err := startPeer(ctx, o, kit, filepath.Join(dir, "b"), "--replicate", id)
	if err != nil {
		return result{}, err
	}
	defer recv.Stop()
	return replicate(ctx, o, recv, ready, id, srcReady.String("address"), int(srcReady.Int("pid")))
}

// startPeer runs peer.js with legacy replication and one progress event
// per message, and waits for ready.
func startPeer(ctx context.Context, o options, kit, dir string, extra ...string) (*interop.Peer, interop.Event, error) {
	args := append([]string{"--path", dir, "--replication", o.mode, "--progress-ms", "0"}, extra...)
	if o.debug {
		args = append(args, "--trace")
	}
	p, err := interop.Start(kit, "peer.js", args...)
	if err != nil {
		return nil, nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ev, err := p.WaitEventContext(wctx, func(e interop.Event) bool { return e.Name() == "ready" })
	if err != nil {
		p.Stop()
		return nil, nil, fmt.Errorf("JS peer did not become ready: %w", err)
	}
	return p, ev, nil
}

// replicate tells recv to connect to addr and waits until it has stored
// seq N of feed; serverPid is the serving process (for its CPU time).
func replicate(ctx context.Context, o options, recv *interop.Peer, ready interop.Event, feed, addr string, serverPid int) (result, error) {
	recvPid := int(ready.Int("pid"))
	sc0, err1 := proc.CPUTime(serverPid)
	rc0, err2 := proc.CPUTime(recvPid)
	if err := errors.Join(err1, err2); err != nil {
		return result{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	t0 := time.Now()
	if err := recv.Send(map[string]any{"cmd": "connect", "address": addr}); err != nil {
		return result{}, fmt.Errorf("send connect: %w", err)
	}
	done, err := recv.WaitEventContext(wctx, func(e interop.Event) bool {
		return e.Name() == "progress" && e.String("feed") == feed && e.Int("seq") >= int64(o.n)
	})
	if err != nil {
		return result{}, fmt.Errorf("JS receiver did not reach seq %d: %w", o.n, err)
	}
	sc1, err1 := proc.CPUTime(serverPid)
	rc1, err2 := proc.CPUTime(recvPid)
	if err := errors.Join(err1, err2); err != nil {
		return result{}, err
	}
	start := float64(t0.UnixMicro()) / 1000
	r := result{ms: float64(done.Int("t")) - start, serverCPU: sc1 - sc0, recvCPU: rc1 - rc0}
	var prev int64
	for _, e := range recv.Events() {
		if e.Name() == "connected" && r.connMs == 0 {
			r.connMs = float64(e.Int("t")) - start
		}
		if e.Name() != "progress" || e.String("feed") != feed {
			continue
		}
		t := e.Int("t")
		if prev == 0 {
			r.firstMs = float64(t) - start
		} else if gap := float64(t - prev); gap > r.gapMs {
			r.gapMs, r.gapSeq = gap, e.Int("seq")
		}
		prev = t
	}
	if o.debug {
		if err := saveEvents(recv, filepath.Join(filepath.Dir(recv.Path), filepath.Base(recv.Path)+"-events.jsonl")); err != nil {
			log.Printf("save events: %v", err)
		}
	}
	for _, e := range recv.Events() {
		if e.Name() == "error" {
			return result{}, fmt.Errorf("JS receiver reported an error: %v", e)
		}
	}
	return r, nil
}

// saveEvents writes the receiver's events except progress (one per message).
func saveEvents(p *interop.Peer, path string) error {
	var b []byte
	for _, e := range p.Events() {
		if e.Name() == "progress" {
			continue
		}
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	return os.WriteFile(path, b, 0o600)
}

func medianRate(rs []result, n int) float64 {
	rates := make([]float64, len(rs))
	for i, r := range rs {
		rates[i] = r.rate(n)
	}
	slices.Sort(rates)
	return rates[len(rates)/2]
}
