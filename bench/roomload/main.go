// Command roomload measures the room server under many attendants: it
// builds and runs `room serve` (open mode, 127.0.0.1 only), connects N
// clients with at most C dials in flight, each of which subscribes to
// room.attendants and keeps its view of the room, and prints
//
//   - connections/s: N divided by the time from the first dial to the
//     last client's first attendants state;
//
//   - the room's RSS (VmRSS of its process) with all N attached;
//
//   - wrong views: clients whose view differs from the true set once
//     the room is quiet (target 0);
//
//   - CPU per connection: CPU-seconds (utime+stime from /proc/PID/stat)
//     the room and this load tool spent from the first dial to the last
//     client's state, divided by N, and the load-independent ceiling
//     cores ÷ (room + client CPU per connection): on a machine shared
//     with other work connections/s measures the load, the ceiling does
//     not;
//
//   - with -debug-listen, the room's Go memory (heap in use, stacks,
//     goroutines) with all N attached, from its pprof endpoint.
//
//     go run ./bench/roomload [-n 1000] [-c 8] [-runs 1]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/secretstream"
)

func main() {
	n := flag.Int("n", 1000, "attendants")
	c := flag.Int("c", 8, "dials in flight")
	runs := flag.Int("runs", 1, "runs")
	bin := flag.String("room", "", "room binary (default: go build ./cmd/room)")
	keep := flag.Bool("keep", false, "keep the work directory")
	debug := flag.String("debug-listen", "off", "the room's --debug-listen (metrics, pprof), e.g. 127.0.0.1:6061")
	cpuProfile := flag.String("cpuprofile", "", "write this load tool's CPU profile here (the room's: -debug-listen and /debug/pprof/profile)")
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
	work, err := os.MkdirTemp("", "roomload-")
	if err != nil {
		log.Fatal(err)
	}
	if !*keep {
		defer os.RemoveAll(work)
	}
	if *bin == "" {
		*bin = filepath.Join(work, "room")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", *bin, "github.com/cask-ssb/cask/cmd/room")
		cmd.Dir = moduleDir()
		if out, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("go build cmd/room: %v\n%s", err, out)
		}
	}
	for r := range *runs {
		res, err := run(ctx, *bin, filepath.Join(work, fmt.Sprintf("run%d", r)), *n, *c, *debug)
		if err != nil {
			log.Fatalf("run %d: %v", r+1, err)
		}
		out, _ := json.Marshal(res)
		fmt.Println(string(out))
	}
}

type result struct {
	Attendants   int     `json:"attendants"`
	Concurrency  int     `json:"concurrency"`
	Seconds      float64 `json:"seconds"`
	ConnsPerSec  float64 `json:"conns_per_s"`
	RoomRSSMB    float64 `json:"room_rss_mb"`
	RoomCPUSec   float64 `json:"room_cpu_s"` // user+system CPU of the room process during the joins
	RoomCPUms    float64 `json:"room_cpu_ms_per_conn"`
	ClientCPUms  float64 `json:"client_cpu_ms_per_conn"` // this load tool's share
	CeilingConns float64 `json:"ceiling_conns_per_s"`    // cores ÷ (room + client CPU per connection)
	HeapInuseMB  float64 `json:"room_heap_inuse_mb,omitempty"`
	StackMB      float64 `json:"room_stack_mb,omitempty"`
	GoSysMB      float64 `json:"room_go_sys_mb,omitempty"`
	Goroutines   int     `json:"room_goroutines,omitempty"`
	WrongViews   int     `json:"wrong_views"`
	SettleSecond float64 `json:"settle_s"`
	Load         string  `json:"loadavg"`
}

func moduleDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "."
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func run(ctx context.Context, bin, repo string, n, conc int, debug string) (result, error) {
	res := result{Attendants: n, Concurrency: conc}
	if err := os.MkdirAll(repo, 0o700); err != nil {
		return res, err
	}
	cmd := exec.Command(bin, "serve", "--repo", repo, "--listen", "127.0.0.1:0", "--http-listen", "off", "--debug-listen", debug,
		"--mode", "open", "--log-level", "warn", "--max-pending", "64")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	var addr string
	for deadline := time.Now().Add(20 * time.Second); ; {
		out, err := exec.Command(bin, "address", "--repo", repo).Output()
		if err == nil {
			json.Unmarshal(out, &addr)
			break
		}
		if time.Now().After(deadline) {
			return res, errors.New("room did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	a, err := feeds.ParseAddress(addr)
	if err != nil {
		return res, err
	}
	caps, _ := secretstreamMainNet()
	clients := make([]*client, n)
	for i := range clients {
		kp, err := feeds.KeyPairFromSeed([]byte(fmt.Sprintf("%032d", i)))
		if err != nil {
			return res, err
		}
		clients[i] = &client{kp: kp, name: kp.ID.String(), set: map[string]bool{}}
	}
	defer func() {
		for _, c := range clients {
			if c.ep != nil {
				c.ep.Close()
			}
		}
	}()
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	roomCPU0, selfCPU0 := cpuSeconds(cmd.Process.Pid), cpuSeconds(os.Getpid())
	start := time.Now()
	for _, c := range clients {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.join(ctx, a, caps); err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.ConnsPerSec = float64(n) / res.Seconds
	res.RoomCPUSec = cpuSeconds(cmd.Process.Pid) - roomCPU0
	res.RoomCPUms = 1000 * res.RoomCPUSec / float64(n)
	res.ClientCPUms = 1000 * (cpuSeconds(os.Getpid()) - selfCPU0) / float64(n)
	if per := res.RoomCPUms + res.ClientCPUms; per > 0 {
		res.CeilingConns = float64(runtime.NumCPU()) * 1000 / per
	}
	if f := failed.Load(); f > 0 {
		return res, fmt.Errorf("%d clients failed to join: %v", f, firstErr.Load())
	}
	// Settle: every view should reach all n.
	settle := time.Now()
	deadline := settle.Add(60 * time.Second)
	for time.Now().Before(deadline) {
		wrong := 0
		for _, c := range clients {
			if !c.complete(clients) {
				wrong++
			}
		}
		res.WrongViews = wrong
		if wrong == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.SettleSecond = time.Since(settle).Seconds()
	res.RoomRSSMB = rssMB(cmd.Process.Pid)
	if debug != "off" && debug != "" {
		goMemory(debug, &res)
	}
	for _, c := range clients {
		if c.errs.Load() > 0 {
			res.WrongViews++
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.Load = strings.TrimSpace(string(b))
	}
	return res, nil
}

func secretstreamMainNet() (secretstream.AppKey, error) { return secretstream.MainNetAppKey(), nil }

type client struct {
	kp   feeds.KeyPair
	name string // kp.ID as text
	ep   *muxrpc.Endpoint
	mu   sync.Mutex
	set  map[string]bool
	errs atomic.Int64 // duplicate joined / unknown left / bad event
}

// event parses a room.attendants event. The room's own encoding is
// matched without encoding/json (the load tool's CPU per connection is
// part of the measure, and decoding 500,000 events with reflection would
// dominate it); anything else goes through encoding/json.
func event(b []byte) (typ, id string, err error) {
	for _, t := range []string{"joined", "left"} {
		prefix := `{"type":"` + t + `","id":"`
		if rest, ok := bytes.CutPrefix(b, []byte(prefix)); ok {
			if v, ok := bytes.CutSuffix(rest, []byte(`"}`)); ok && bytes.IndexByte(v, '"') < 0 && bytes.IndexByte(v, '\\') < 0 {
				return t, string(v), nil
			}
		}
	}
	var e struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	}
	err = json.Unmarshal(b, &e)
	return e.Type, e.ID, err
}

func (c *client) join(ctx context.Context, a feeds.Address, caps secretstream.AppKey) error {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sc, err := secretstream.Dial(dctx, "tcp", a.DialAddr(), caps, c.kp.Private, a.Key.PublicKey())
	if err != nil {
		return err
	}
	m := muxrpc.NewMux()
	m.RegisterSync(muxrpc.Method{"tunnel", "ping"}, func(context.Context, *muxrpc.Request) (any, error) { return time.Now().UnixMilli(), nil })
	c.ep = muxrpc.NewEndpoint(context.Background(), sc, m, muxrpc.Options{RemoteKey: sc.RemoteKey()})
	src, err := c.ep.Source(context.Background(), muxrpc.Method{"room", "attendants"})
	if err != nil {
		return err
	}
	var first struct {
		Type string   `json:"type"`
		IDs  []string `json:"ids"`
	}
	if err := src.Decode(dctx, &first); err != nil {
		return fmt.Errorf("attendants state: %w", err)
	}
	if first.Type != "state" {
		return fmt.Errorf("first attendants event %q", first.Type)
	}
	c.mu.Lock()
	for _, s := range first.IDs {
		c.set[s] = true
	}
	c.mu.Unlock()
	go func() {
		for {
			b, err := src.Next(context.Background())
			if err != nil {
				return
			}
			typ, id, err := event(b)
			if err != nil {
				c.errs.Add(1)
				continue
			}
			c.mu.Lock()
			switch typ {
			case "joined":
				if c.set[id] {
					c.errs.Add(1)
				}
				c.set[id] = true
			case "left":
				if !c.set[id] {
					c.errs.Add(1)
				}
				delete(c.set, id)
			default:
				c.errs.Add(1)
			}
			c.mu.Unlock()
		}
	}()
	return nil
}

func (c *client) complete(all []*client) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.set) != len(all) {
		return false
	}
	for _, o := range all {
		if !c.set[o.name] {
			return false
		}
	}
	return true
}

// goMemory reads the room's runtime.MemStats (the tail of the heap
// profile's debug text) and its goroutine count from its pprof endpoint.
func goMemory(debug string, res *result) {
	get := func(path string) string {
		resp, err := http.Get("http://" + debug + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	stat := func(text, name string) float64 {
		i := strings.Index(text, "# "+name+" = ")
		if i < 0 {
			return 0
		}
		f := strings.Fields(text[i+len(name)+5:])
		if len(f) == 0 {
			return 0
		}
		v, _ := strconv.ParseFloat(f[0], 64)
		return v / (1 << 20)
	}
	heap := get("/debug/pprof/heap?debug=1")
	res.HeapInuseMB, res.StackMB, res.GoSysMB = stat(heap, "HeapInuse"), stat(heap, "Stack"), stat(heap, "Sys")
	if g := get("/debug/pprof/goroutine?debug=1"); g != "" {
		if rest, ok := strings.CutPrefix(g, "goroutine profile: total "); ok {
			res.Goroutines, _ = strconv.Atoi(strings.Fields(rest)[0])
		}
	}
}

func rssMB(pid int) float64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return -1
}

// cpuSeconds is utime+stime of pid (from /proc/PID/stat, in clock ticks of
// 1/100 s on Linux).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return -1
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}
