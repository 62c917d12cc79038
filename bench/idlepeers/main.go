// Command idlepeers measures what an idle peer connection costs the
// daemon: it starts the real `sbot serve` binary (TCP on 127.0.0.1 only),
// reads its RSS, opens N anonymous peer connections (secret handshake and
// a muxrpc endpoint each, then silence), waits, and reads the RSS again.
// The peers run in this process, so the daemon's figure is its own.
//
//	go run ./bench/idlepeers [-n 1000] [-idle 5s] [-sbot PATH]
//
// It reports; it asserts nothing.
package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/cask-ssb/cask/bench/internal/proc"
	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/sbot"
	"github.com/cask-ssb/cask/secretstream"
)

func main() {
	n := flag.Int("n", 1000, "idle peer connections to open")
	idle := flag.Duration("idle", 5*time.Second, "how long the peers sit idle before the RSS is read")
	bin := flag.String("sbot", "", "sbot binary to run (default: go build ./cmd/sbot)")
	flag.Parse()
	log.SetFlags(0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *n, *idle, *bin); err != nil {
		log.Fatalf("idlepeers: %v", err)
	}
}

func run(ctx context.Context, n int, idle time.Duration, bin string) error {
	tmp, err := os.MkdirTemp("", "cask-bench-idle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if bin == "" {
		if bin, err = proc.BuildSbot(ctx, tmp); err != nil {
			return err
		}
	}
	// Room for every peer: anonymous peers get three quarters of max-conns.
	d, err := proc.StartDaemon(ctx, bin, filepath.Join(tmp, "repo"), true, "warn", "--max-conns", strconv.Itoa(n*2))
	if err != nil {
		return err
	}
	defer d.Stop()
	addr, err := feeds.ParseAddress(d.Addr)
	if err != nil {
		return fmt.Errorf("daemon address %q: %w", d.Addr, err)
	}
	caps, err := sbot.Defaults("").CapsKey()
	if err != nil {
		return err
	}
	time.Sleep(time.Second)
	before, err := proc.Status(d.Pid, "VmRSS")
	if err != nil {
		return err
	}
	var eps []*muxrpc.Endpoint
	defer func() {
		for _, e := range eps {
			e.Close()
		}
	}()
	start := time.Now()
	for i := range n {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			return err
		}
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		c, err := secretstream.Dial(dctx, "tcp", addr.DialAddr(), secretstream.AppKey(caps), priv, addr.Key.PublicKey())
		cancel()
		if err != nil {
			return fmt.Errorf("peer %d: %w", i, err)
		}
		eps = append(eps, muxrpc.NewEndpoint(ctx, c, nil, muxrpc.Options{RemoteKey: addr.Key.PublicKey()}))
	}
	log.Printf("%d peers connected in %v; idle for %v", n, time.Since(start).Round(time.Millisecond), idle)
	select {
	case <-time.After(idle):
	case <-ctx.Done():
		return ctx.Err()
	}
	alive := 0
	for _, e := range eps {
		select {
		case <-e.Done():
		default:
			alive++
		}
	}
	after, err := proc.Status(d.Pid, "VmRSS")
	if err != nil {
		return err
	}
	grew := after["VmRSS"] - before["VmRSS"]
	fmt.Printf("idle peers: %d of %d still connected\n", alive, n)
	fmt.Printf("daemon RSS: %.1f MB before, %.1f MB with the peers\n", float64(before["VmRSS"])/1e6, float64(after["VmRSS"])/1e6)
	fmt.Printf("per idle peer: %.1f KB of daemon RSS\n", float64(grew)/float64(max(alive, 1))/1e3)
	return nil
}
