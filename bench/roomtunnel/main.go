// Command roomtunnel measures replication through a room tunnel against
// the same replication over a direct connection, with two JS peers (the
// interop kit's peer.js): A publishes N messages; B follows A and
// replicates them either by dialling A directly or through our room
// (room serve, in this process, open mode, 127.0.0.1 only). It prints both
// times and tunnel/direct (target ≤ 1.10).
//
// Direct: from B's `connected` to A until B's progress reaches N.
// Tunnel: from B's `tunnel_opened` to A until B's progress reaches N.
//
//	go run ./bench/roomtunnel [-n 10000] [-runs 3] [-mode ebt|legacy]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/cask-ssb/cask/internal/interop"
	"github.com/cask-ssb/cask/room"
)

func main() {
	n := flag.Int("n", 10_000, "messages")
	runs := flag.Int("runs", 3, "runs of each case (median printed)")
	mode := flag.String("mode", "ebt", "replication: ebt or legacy")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (the room and its splices) here")
	flag.Parse()
	log.SetFlags(0)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	kit, err := interop.KitDir()
	if err != nil {
		log.Fatal(err)
	}
	work, err := os.MkdirTemp("", "roomtunnel-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)

	cfg := room.Defaults(filepath.Join(work, "room"))
	cfg.Listen, cfg.HTTPListen, cfg.DebugListen, cfg.Mode = "127.0.0.1:0", "off", "off", "open"
	srv, err := room.New(room.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		log.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(rctx, func() { close(ready) }) }()
	<-ready
	defer func() { rcancel(); <-served }()

	var direct, tunnel []float64
	for r := range *runs {
		for _, viaRoom := range []bool{false, true} {
			dir := filepath.Join(work, fmt.Sprintf("run%d-%v", r, viaRoom))
			secs, err := once(ctx, kit, dir, *n, *mode, viaRoom, srv.Address())
			if err != nil {
				log.Fatalf("run %d (tunnel=%v): %v", r+1, viaRoom, err)
			}
			if viaRoom {
				tunnel = append(tunnel, secs)
			} else {
				direct = append(direct, secs)
			}
			log.Printf("run %d tunnel=%v: %.2f s", r+1, viaRoom, secs)
		}
	}
	md, mt := median(direct), median(tunnel)
	out, _ := json.Marshal(map[string]any{"n": *n, "mode": *mode, "runs": *runs, "direct_s": md, "tunnel_s": mt, "ratio": mt / md})
	fmt.Println(string(out))
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func wait(ctx context.Context, p *interop.Peer, what string, pred func(interop.Event) bool) (interop.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	ev, err := p.WaitEventContext(ctx, pred)
	if err != nil {
		return ev, fmt.Errorf("waiting for %s: %w\n%s", what, err, p.Stderr())
	}
	return ev, nil
}

func start(ctx context.Context, kit string, args ...string) (*interop.Peer, error) {
	p, err := interop.Start(kit, "peer.js", args...)
	if err != nil {
		return nil, err
	}
	ev, err := wait(ctx, p, "ready", func(e interop.Event) bool { return e.Name() == "ready" })
	if err != nil {
		p.Stop()
		return nil, err
	}
	p.ID, p.Address = ev.String("id"), ev.String("address")
	return p, nil
}

func once(ctx context.Context, kit, dir string, n int, mode string, viaRoom bool, roomAddr string) (float64, error) {
	common := []string{"--replication", mode, "--progress-ms", "100"}
	aArgs := append([]string{"--path", filepath.Join(dir, "a"), "--publish", strconv.Itoa(n)}, common...)
	if viaRoom {
		aArgs = append(aArgs, "--room", roomAddr)
	}
	a, err := start(ctx, kit, aArgs...)
	if err != nil {
		return 0, err
	}
	defer a.Stop()
	if _, err := wait(ctx, a, "published", func(e interop.Event) bool { return e.Name() == "published" }); err != nil {
		return 0, err
	}
	if viaRoom {
		if _, err := wait(ctx, a, "room", func(e interop.Event) bool { return e.Name() == "room" }); err != nil {
			return 0, err
		}
	}
	bArgs := append([]string{"--path", filepath.Join(dir, "b"), "--follow", a.ID}, common...)
	if viaRoom {
		bArgs = append(bArgs, "--room", roomAddr, "--tunnel", a.ID)
	} else {
		bArgs = append(bArgs, "--connect", a.Address)
	}
	b, err := start(ctx, kit, bArgs...)
	if err != nil {
		return 0, err
	}
	defer b.Stop()
	startName := "connected"
	if viaRoom {
		startName = "tunnel_opened"
	}
	st, err := wait(ctx, b, startName, func(e interop.Event) bool {
		return e.Name() == startName && (viaRoom || e.String("peer") == a.ID)
	})
	if err != nil {
		return 0, err
	}
	done, err := wait(ctx, b, "progress", func(e interop.Event) bool {
		return e.Name() == "progress" && e.String("feed") == a.ID && e.Int("seq") >= int64(n)
	})
	if err != nil {
		return 0, err
	}
	return float64(done.Int("t")-st.Int("t")) / 1000, nil
}
