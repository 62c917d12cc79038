// Command reindex compares `sbot reindex` (every index rebuilt from the
// log) with ssb-db2 building its own indexes over the same messages.
//
//	go run ./bench/reindex [-n 100000] [-feeds 100] [-runs 3] [-cases go,js] [-sbot PATH] [-keep]
//
// It fills a repo with N signed messages of a realistic mix (bench/fill
// Mixed: posts, replies with root and branch, votes, contacts, abouts, one
// in ten box1, half of those to the repo's key), writes the same messages
// as a JSON-lines fixture and loads it into an ssb-db2 data dir with the
// repo's key (interop/js/db2index.js --mode load; not timed). Then, -runs
// times, alternating which goes first, it runs `sbot reindex` and
// `db2index.js --mode index` (ssb-db2 drops its indexes and rebuilds them:
// leveldb indexes drained, JITDB bitvectors built by one query covering
// them) and reads each one's wall time and CPU time. JS's wall time is the
// one db2index.js measures inside node (from before secret-stack starts);
// ours is the whole process. stdout gets the medians and the ratio.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cask-ssb/cask/bench/fill"
	"github.com/cask-ssb/cask/bench/internal/proc"
	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/internal/interop"
	"github.com/cask-ssb/cask/plugins/types"
	"github.com/cask-ssb/cask/plugins/viewread"
	"github.com/cask-ssb/cask/sbot"
)

type options struct {
	n, feeds, runs int
	cases          string
	bin            string
	keep           bool
	repo           string
	cpuprofile     string
	reuse          string
	typ            string
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 100000, "messages")
	flag.IntVar(&o.feeds, "feeds", 100, "feeds they are spread over")
	flag.IntVar(&o.runs, "runs", 3, "reindexes of each side")
	flag.StringVar(&o.cases, "cases", "go,js", "which sides to run (go, js)")
	flag.StringVar(&o.bin, "sbot", "", "sbot binary (default: build cmd/sbot)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.StringVar(&o.repo, "repo", "", "reindex this filled repo (from -keep) instead of filling a new one; -cases go only")
	flag.StringVar(&o.reuse, "reuse", "", "work directory kept by -keep: compare on its filled repo and loaded ssb-db2 dir (no fill, no load)")
	flag.StringVar(&o.typ, "type", "", "after the reindexes, also time messagesByType of this type on both sides (all its messages, -runs times)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "run the Go reindexes in this process (sbot.OpenOfflineReindex) and write a CPU profile of them to this file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, o)
	if profiling {
		pprof.StopCPUProfile()
	}
	if err != nil {
		log.Fatalf("reindex: %v", err)
	}
}

// timing is one reindex: wall time and the process's CPU time.
type timing struct{ wall, cpu time.Duration }

func run(ctx context.Context, o options) error {
	tmp := o.reuse
	if tmp == "" {
		var err error
		if tmp, err = os.MkdirTemp("", "cask-bench-reindex-"); err != nil {
			return err
		}
		if o.keep {
			log.Printf("work directory kept: %s", tmp)
		} else {
			defer os.RemoveAll(tmp)
		}
	}
	var err error
	doGo, doJS := strings.Contains(o.cases, "go"), strings.Contains(o.cases, "js")
	var kit string
	if doJS {
		if kit, err = interop.KitDir(); err != nil {
			return fmt.Errorf("the JS side needs the interop kit: %w", err)
		}
	}
	if o.repo != "" {
		if doJS {
			return fmt.Errorf("-repo works with -cases go only")
		}
		return reindexOnly(ctx, o)
	}
	if o.bin == "" && doGo && o.cpuprofile == "" {
		if o.bin, err = proc.BuildSbot(ctx, tmp); err != nil {
			return err
		}
	}
	repo := filepath.Join(tmp, "repo")
	secret := filepath.Join(repo, "secret")
	db2dir := filepath.Join(tmp, "db2")
	if o.reuse != "" {
		if o.n, err = countRepo(repo); err != nil {
			return err
		}
	} else if err := fillAndLoad(ctx, o, kit, tmp, repo, doJS); err != nil {
		return err
	}
	var goT, jsT []timing
	for r := 1; r <= o.runs; r++ {
		for i := range 2 {
			if (r+i)%2 == 0 && doGo {
				t, err := reindexGo(ctx, o, repo)
				if err != nil {
					return fmt.Errorf("run %d: %w", r, err)
				}
				log.Printf("run %d: sbot reindex: %s, cpu %s", r, t.wall.Round(time.Millisecond), t.cpu.Round(time.Millisecond))
				goT = append(goT, t)
			}
			if (r+i)%2 == 1 && doJS {
				t, err := reindexJS(ctx, kit, db2dir, secret)
				if err != nil {
					return fmt.Errorf("run %d: %w", r, err)
				}
				log.Printf("run %d: ssb-db2 index build: %s, cpu %s", r, t.wall.Round(time.Millisecond), t.cpu.Round(time.Millisecond))
				jsT = append(jsT, t)
			}
		}
	}
	if o.typ != "" {
		if err := compareType(ctx, o, kit, repo, db2dir, secret, doGo, doJS); err != nil {
			return err
		}
	}
	g, j := median(goT), median(jsT)
	if doGo {
		fmt.Printf("sbot reindex (all indexes): %.2f s, %.2f CPU-s (median of %d, n=%d)\n", g.wall.Seconds(), g.cpu.Seconds(), len(goT), o.n)
	}
	if doJS {
		fmt.Printf("ssb-db2 index build: %.2f s, %.2f CPU-s (median of %d, n=%d)\n", j.wall.Seconds(), j.cpu.Seconds(), len(jsT), o.n)
	}
	if doGo && doJS {
		fmt.Printf("ratio JS/Go: wall %.1f×, CPU %.1f×\n", j.wall.Seconds()/g.wall.Seconds(), j.cpu.Seconds()/g.cpu.Seconds())
	}
	return nil
}

// export writes every message value of repo's log, in log order, one per
// line.
func export(ctx context.Context, repo, path string) error {
	st, err := sbot.OpenOfflineRead(repo)
	if err != nil {
		return err
	}
	defer st.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for rec, err := range st.Log(ctx, store.LogQuery{Old: true}) {
		if err != nil {
			f.Close()
			return fmt.Errorf("export %s: %w", repo, err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, rec.Value); err != nil {
			f.Close()
			return fmt.Errorf("export %s: record %d: %w", repo, rec.Seq, err)
		}
		compact.WriteByte('\n')
		w.Write(compact.Bytes())
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// reindexOnly reindexes an existing repo -runs times (for profiling).
func reindexOnly(ctx context.Context, o options) error {
	st, err := sbot.OpenOfflineRead(o.repo)
	if err != nil {
		return err
	}
	n, _ := st.Count()
	if err := st.Close(); err != nil {
		return err
	}
	o.n = int(n)
	var ts []timing
	for r := 1; r <= o.runs; r++ {
		t, err := reindexGo(ctx, o, o.repo)
		if err != nil {
			return err
		}
		log.Printf("run %d: sbot reindex: %s, cpu %s", r, t.wall.Round(time.Millisecond), t.cpu.Round(time.Millisecond))
		ts = append(ts, t)
	}
	m := median(ts)
	fmt.Printf("sbot reindex (all indexes): %.2f s, %.2f CPU-s (median of %d, n=%d)\n", m.wall.Seconds(), m.cpu.Seconds(), len(ts), o.n)
	return nil
}

func reindexGo(ctx context.Context, o options, repo string) (timing, error) {
	if o.cpuprofile != "" {
		return reindexInProcess(o, repo)
	}
	n := o.n
	cmd := exec.CommandContext(ctx, o.bin, "reindex", "--repo", repo)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return timing{}, fmt.Errorf("sbot reindex: %w: %s", err, stderr.String())
	}
	wall := time.Since(t0)
	var sum struct{ Messages int }
	if err := json.Unmarshal(lastLine(out.Bytes()), &sum); err != nil || sum.Messages != n {
		return timing{}, fmt.Errorf("sbot reindex printed %q (want %d messages)", out.String(), n)
	}
	return timing{wall: wall, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}, nil
}

// reindexInProcess reindexes with a CPU profile (appended runs go to
// one file: the profile is started once and stopped at exit).
func reindexInProcess(o options, repo string) (timing, error) {
	if !profiling {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return timing{}, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return timing{}, err
		}
		profiling = true
	}
	cpu0 := cpuTime()
	t0 := time.Now()
	st, err := sbot.OpenOfflineReindex(repo, nil, nil)
	if err != nil {
		return timing{}, err
	}
	n, _ := st.Count()
	if err := st.Close(); err != nil {
		return timing{}, err
	}
	if int(n) != o.n {
		return timing{}, fmt.Errorf("reindexed %d messages, want %d", n, o.n)
	}
	return timing{wall: time.Since(t0), cpu: cpuTime() - cpu0}, nil
}

// profiling: the CPU profile of -cpuprofile is running.
var profiling bool

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reindexJS(ctx context.Context, kit, dir, secret string) (timing, error) {
	out, cpu, err := node(ctx, kit, "db2index.js", "--mode", "index", "--path", dir, "--keys", secret)
	if err != nil {
		return timing{}, err
	}
	var res struct{ Ms, LeveldbMs float64 }
	if err := json.Unmarshal(lastLine(out), &res); err != nil || res.Ms <= 0 {
		return timing{}, fmt.Errorf("db2index.js printed %q", out)
	}
	log.Printf("ssb-db2: leveldb indexes after %.0f ms, JITDB query done after %.0f ms", res.LeveldbMs, res.Ms)
	return timing{wall: time.Duration(res.Ms * float64(time.Millisecond)), cpu: cpu}, nil
}

// node runs a script of the kit and returns its stdout and CPU time.
func node(ctx context.Context, kit, script string, args ...string) ([]byte, time.Duration, error) {
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(kit, script)}, args...)...)
	cmd.Dir = kit
	var stderr bytes.Buffer
	// stdout to a file: node writes pipes asynchronously and the script
	// ends with process.exit.
	f, err := os.CreateTemp("", "cask-bench-node-")
	if err != nil {
		return nil, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, &stderr
	if err := cmd.Run(); err != nil {
		return nil, 0, fmt.Errorf("node %s %s: %w: %s", script, strings.Join(args, " "), err, stderr.String())
	}
	out, err := os.ReadFile(f.Name())
	return out, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), err
}

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}

func median(ts []timing) timing {
	if len(ts) == 0 {
		return timing{}
	}
	w := make([]time.Duration, len(ts))
	c := make([]time.Duration, len(ts))
	for i, t := range ts {
		w[i], c[i] = t.wall, t.cpu
	}
	slices.Sort(w)
	slices.Sort(c)
	return timing{wall: w[len(w)/2], cpu: c[len(c)/2]}
}

// fillAndLoad fills repo with o.n messages and, for the JS side, loads
// them into tmp/db2.
func fillAndLoad(ctx context.Context, o options, kit, tmp, repo string, doJS bool) error {
	if err := os.MkdirAll(repo, 0o700); err != nil {
		return err
	}
	secret := filepath.Join(repo, "secret")
	kp, _, err := feeds.LoadOrCreateSecret(secret)
	if err != nil {
		return err
	}
	authors, err := fill.Keys("reindex", o.feeds)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := fill.Repo(ctx, repo, fill.Options{Authors: authors, Messages: o.n, Content: fill.Mixed(authors, kp.ID)}); err != nil {
		return err
	}
	log.Printf("filled %d messages in %d feeds in %s", o.n, o.feeds, time.Since(t0).Round(time.Millisecond))
	if !doJS {
		return nil
	}
	fixture := filepath.Join(tmp, "fixture.jsonl")
	if err := export(ctx, repo, fixture); err != nil {
		return err
	}
	t0 = time.Now()
	out, _, err := node(ctx, kit, "db2index.js", "--mode", "load", "--path", filepath.Join(tmp, "db2"), "--keys", secret, "--fixture", fixture)
	if err != nil {
		return err
	}
	log.Printf("ssb-db2 loaded the fixture in %s: %s", time.Since(t0).Round(time.Millisecond), bytes.TrimSpace(out))
	return nil
}

// countRepo is the number of messages in repo's store.
func countRepo(repo string) (int, error) {
	st, err := sbot.OpenOfflineRead(repo)
	if err != nil {
		return 0, err
	}
	n, _ := st.Count()
	return int(n), st.Close()
}

// compareType times messagesByType of o.typ (every message of the type,
// with values): ours in process through the by-type index (the daemon's
// handler path without the socket), ssb-db2's where(type(T)) in node
// after its indexes are loaded (db2index.js --mode type; its first query
// builds the JIT index if missing, the next ones reuse it).
func compareType(ctx context.Context, o options, kit, repo, db2dir, secret string, doGo, doJS bool) error {
	if doGo {
		st, err := sbot.OpenOfflineRead(repo)
		if err != nil {
			return err
		}
		q, _, err := types.Query(types.Options{Type: o.typ})
		if err != nil {
			st.Close()
			return err
		}
		var ts []time.Duration
		hits := 0
		for range max(o.runs, 1) {
			t0 := time.Now()
			hits = 0
			for _, err := range viewread.Run(ctx, st, q) {
				if err != nil {
					st.Close()
					return err
				}
				hits++
			}
			ts = append(ts, time.Since(t0))
		}
		if err := st.Close(); err != nil {
			return err
		}
		slices.Sort(ts)
		fmt.Printf("messagesByType %s (Go, by-type index): %.1f ms, %d hits (median of %d; all %v)\n", o.typ, float64(ts[len(ts)/2].Microseconds())/1000, hits, len(ts), ts)
	}
	if doJS {
		out, _, err := node(ctx, kit, "db2index.js", "--mode", "type", "--type", o.typ, "--runs", fmt.Sprint(max(o.runs, 1)), "--path", db2dir, "--keys", secret)
		if err != nil {
			return err
		}
		fmt.Printf("messagesByType %s (ssb-db2 where(type)): %s\n", o.typ, bytes.TrimSpace(out))
	}
	return nil
}
