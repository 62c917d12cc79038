// Package netsim runs many real sbot nodes in one process over a simulated
// network (network.go: in-memory connections with per-link latency and
// bandwidth, connection loss, partitions that heal, hosts that go down),
// drives a workload and a fault schedule drawn from one seed (plan.go),
// adds hostile nodes (hostile.go), and checks at quiescence that the
// network converged (check.go).
//
// What is deterministic: the Plan (hosts, keys, follow and block graph,
// link latencies, every publish, stop, kill, restart, partition, loss,
// dial and attack with its time), hence the set of messages every honest
// node must hold at the end and the counters derived from the plan. What
// is not: goroutine scheduling, so the order in which messages arrive, which
// dials succeed, how many duplicates are sent and the byte counts vary
// from run to run.
//
// It never opens a real socket for peers: nodes (and the room) listen on
// the simulated network only (each still has its owner's unix socket in
// its repo). A node's store lives on a crash-simulating in-memory
// filesystem, so that a kill is a crash (see Sim.stop).
package netsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/plugins/replicate"
	"github.com/cask-ssb/cask/room"
	"github.com/cask-ssb/cask/sbot"
	"github.com/cask-ssb/cask/sbot/client"
	"github.com/cask-ssb/cask/secretstream"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// port every simulated node listens on.
const port = 8008

// stopHang: a daemon that takes longer to stop is reported as hung.
const stopHang = 60 * time.Second

// node is one honest sbot node: its repo survives restarts.
type node struct {
	idx  int
	name string
	keys feeds.KeyPair
	repo string
	host *Host
	rnd  *rand.Rand // the node's own choices (drops, losses, crashes), in its worker
	// fs holds the node's store (Pebble's files): in memory, and able to
	// crash (see stop). Replaced by its crash clone at each kill.
	fs *vfs.MemFS

	mu sync.Mutex
	sb *sbot.Node
	// live is sb while it runs, for the checks: set once started,
	// cleared as a stop begins, read without mu (which a start or stop
	// holds for seconds).
	live    atomic.Pointer[sbot.Node]
	cli     *client.Client
	cancel  context.CancelFunc
	done    chan error
	pending int // posts due while it was offline
	seq     atomic.Int64
	// ingest adds up the ingest counters of the daemon's past runs.
	ingest replicate.Stats
}

// Sim is one run of a Plan.
type Sim struct {
	plan    *Plan
	nw      *Network
	dir     string
	log     *slog.Logger
	nodeLog *slog.Logger
	caps    secretstream.AppKey
	nodes   []*node
	hostile []*hostile
	room    *room.Server // with Config.RoomOnly
	roomID  feeds.FeedRef

	starts, stops, kills, restarts atomic.Int64
	attacks, dialsTried, tunnels   atomic.Int64
	peakHeap                       atomic.Uint64

	errMu sync.Mutex
	errs  []error
}

// Options of a Sim besides its Plan.
type Options struct {
	// Dir holds the nodes' repos (a test's t.TempDir()).
	Dir string
	// Log gets the harness's events; NodeLog every node's log (nil:
	// discarded).
	Log, NodeLog *slog.Logger
}

// New prepares a simulation of p: keys from the seed, one repo per node.
func New(p *Plan, o Options) (*Sim, error) {
	s := &Sim{plan: p, dir: o.Dir, log: o.Log, nodeLog: o.NodeLog}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.nodeLog == nil {
		s.nodeLog = slog.New(slog.DiscardHandler)
	}
	caps, err := sbot.Defaults("").CapsKey()
	if err != nil {
		return nil, err
	}
	s.caps = secretstream.AppKey(caps)
	s.nw = NewNetwork(p.Link)
	r := rand.New(rand.NewPCG(p.Config.Seed, 0x6b657973)) // "keys"
	for i, name := range p.Hosts {
		seed := make([]byte, 32)
		for k := range seed {
			seed[k] = byte(r.IntN(256))
		}
		kp, err := feeds.KeyPairFromSeed(seed)
		if err != nil {
			return nil, err
		}
		if p.Hostile(i) {
			h, err := newHostile(kp, s.nw.Host(name), s.caps, p.Config.Seed+uint64(i))
			if err != nil {
				return nil, err
			}
			s.hostile = append(s.hostile, h)
			continue
		}
		repo := filepath.Join(o.Dir, fmt.Sprintf("n%03d", i))
		if err := os.MkdirAll(repo, 0o700); err != nil {
			return nil, err
		}
		if err := feeds.WriteSecret(filepath.Join(repo, "secret"), kp); err != nil {
			return nil, fmt.Errorf("node %s: %w", name, err)
		}
		s.nodes = append(s.nodes, &node{idx: i, name: name, keys: kp, repo: repo, host: s.nw.Host(name),
			rnd: rand.New(rand.NewPCG(p.Config.Seed, uint64(i))), fs: vfs.NewCrashableMem()})
	}
	return s, nil
}

// Network is the simulated network.
func (s *Sim) Network() *Network { return s.nw }

// ID is the feed of host i.
func (s *Sim) ID(i int) feeds.FeedRef {
	if s.plan.Hostile(i) {
		return s.hostile[i-s.plan.Config.Nodes].keys.ID
	}
	return s.nodes[i].keys.ID
}

func (s *Sim) fail(err error) {
	s.errMu.Lock()
	s.errs = append(s.errs, err)
	s.errMu.Unlock()
}

func (s *Sim) address(i int) string {
	if i < s.plan.Config.RoomOnly {
		return feeds.Address{Transport: feeds.TransportTunnel, Portal: s.roomID, Key: s.ID(i)}.String()
	}
	return feeds.Address{Host: s.plan.Hosts[i], Port: port, Key: s.ID(i), Transport: feeds.TransportNet}.String()
}

// start runs node n's daemon from its repo.
func (s *Sim) start(n *node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sb != nil {
		return nil
	}
	cfg := sbot.Defaults(n.repo)
	cfg.Listen = fmt.Sprintf("%s:%d", n.name, port)
	if n.idx < s.plan.Config.RoomOnly {
		cfg.Listen = "off"
	}
	if s.room != nil {
		cfg.Rooms = []string{s.room.Address()}
		cfg.TunnelAccept = sbot.TunnelAcceptAnyone
	}
	cfg.Hops = s.plan.Config.Hops
	sb, err := sbot.New(sbot.Options{Config: cfg, Logger: s.nodeLog.With("node", n.name), Network: n.host, StoreFS: n.fs,
		Sched: sbot.SchedOptions{Seed: s.plan.Config.Seed<<8 + uint64(n.idx) + 1}})
	if err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	tNew := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sb.Serve(ctx) }()
	select {
	case <-sb.Ready():
	case err := <-done:
		cancel()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	tReady := time.Now()
	cli, err := client.DialRepo(ctx, n.repo)
	if d := time.Since(tNew); d > time.Second {
		s.log.Info("netsim: start phases", "node", n.name, "serve-ready", tReady.Sub(tNew), "owner-socket", time.Since(tReady))
	}
	if err != nil {
		cancel()
		<-done
		return fmt.Errorf("start %s: owner socket: %w", n.name, err)
	}
	n.sb, n.cli, n.cancel, n.done = sb, cli, cancel, done
	n.live.Store(sb)
	s.starts.Add(1)
	return nil
}

// crashKeeps is the share (percent) of a killed node's unsynced store
// writes that survive the crash, at random: a crash keeps all of what was
// synced and any part of the rest.
const crashKeeps = 50

// stop shuts node n down: cleanly, or killed. A kill is a crash: the
// network cuts every connection first (no peer gets a goodbye), then the
// node's filesystem is frozen as a crash would leave it (what was synced,
// and a random part of what was not); the daemon that ran on it is
// abandoned (shut down so that no goroutine of it outlives the test, but
// nothing it writes from then on is kept) and the next start runs on the
// crashed filesystem.
func (s *Sim) stop(n *node, kill bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sb == nil {
		return nil
	}
	n.live.Store(nil)
	if kill {
		s.nw.SetDown(n.name, true)
		n.fs = n.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: crashKeeps,
			RNG: rand.New(rand.NewPCG(n.rnd.Uint64(), n.rnd.Uint64()))})
		s.kills.Add(1)
	} else {
		s.stops.Add(1)
	}
	n.cli.Close()
	n.cancel()
	began := time.Now()
	var err error
	select {
	case err = <-n.done:
	case <-time.After(stopHang):
		return fmt.Errorf("stop %s: the daemon did not stop within %v", n.name, stopHang)
	}
	if d := time.Since(began); d > 2*time.Second {
		s.log.Info("netsim: slow stop", "node", n.name, "took", d, "kill", kill)
	}
	is := n.sb.IngestStats()
	n.ingest.Kept += is.Kept
	n.ingest.Held += is.Held
	n.ingest.Refused += is.Refused
	n.sb, n.cli, n.cancel, n.done = nil, nil, nil, nil
	if err != nil {
		return fmt.Errorf("stop %s: %w", n.name, err)
	}
	return nil
}

// publish posts one message on n (or notes it as due while n is offline).
func (s *Sim) publish(ctx context.Context, n *node, content map[string]any) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cli == nil {
		n.pending++
		return nil
	}
	return s.publishLocked(ctx, n, content)
}

func (s *Sim) publishLocked(ctx context.Context, n *node, content map[string]any) error {
	if _, err := n.cli.Publish(ctx, content); err != nil {
		return fmt.Errorf("publish on %s: %w", n.name, err)
	}
	n.seq.Add(1)
	return nil
}

func post(n *node) map[string]any {
	return map[string]any{"type": "post", "text": fmt.Sprintf("%s post %d", n.name, n.seq.Load()+1)}
}

// restart starts n again and publishes what fell due meanwhile.
func (s *Sim) restart(ctx context.Context, n *node) error {
	s.nw.SetDown(n.name, false)
	began := time.Now()
	if err := s.start(n); err != nil {
		return err
	}
	if d := time.Since(began); d > 2*time.Second {
		s.log.Info("netsim: slow start", "node", n.name, "took", d)
	}
	s.restarts.Add(1)
	n.mu.Lock()
	defer n.mu.Unlock()
	for ; n.pending > 0; n.pending-- {
		if n.cli == nil {
			break
		}
		if err := s.publishLocked(ctx, n, post(n)); err != nil {
			return err
		}
	}
	return nil
}

// daemon returns n's running daemon, or nil.
func (n *node) daemon() *sbot.Node { return n.live.Load() }

// ingestStats are n's ingest counters over all its runs.
func (n *node) ingestStats() replicate.Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	is := n.ingest
	if n.sb != nil {
		cur := n.sb.IngestStats()
		is.Kept += cur.Kept
		is.Held += cur.Held
		is.Refused += cur.Refused
	}
	return is
}

// Result is what a run measured.
type Result struct {
	Converged  bool
	Setup      time.Duration // start and contact messages
	Converge   time.Duration // from the first event to convergence
	Published  int64         // messages of honest feeds
	Delivered  int64         // messages stored by honest nodes from others
	DeliveredB int64         // their bytes
	Received   int64         // messages honest nodes received (stored, duplicate or refused)
	Kept       int64         // of which stored (over every restart of the node)
	Duplicates int64
	Refused    int64
	BytesSent  int64 // by honest nodes, on every connection
	Net        Stats
	Starts     int64
	Stops      int64
	Kills      int64
	Attacks    int64
	Tunnels    int64 // dials through the room that succeeded
	ForgedSent int64 // forged messages the hostile nodes wrote to a target
	Forks      int   // forks recorded by honest nodes
	PeakHeap   uint64
	Goroutines int // at convergence
	// Digests: per honest node, what it holds of the feeds within its
	// hops (see Sim.Delivered); the same for every run of one plan.
	Digests []string
}

// Run executes the plan until the network converges, the deadline or a
// stall, then checks the final state (see Check). It stops every node
// before it returns.
func (s *Sim) Run(ctx context.Context) (res Result, err error) {
	c := s.plan.Config
	// The checks at the end get their own time: the deadline bounds the
	// convergence, not how long reading every store takes afterwards.
	checkCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, c.Deadline)
	defer cancel()
	stopHeap := s.watchHeap()
	defer stopHeap()
	if c.RoomOnly > 0 {
		stopRoom, rerr := s.startRoom()
		if rerr != nil {
			return res, rerr
		}
		// Deferred before the nodes' stop: runs after it.
		defer func() { err = errors.Join(err, stopRoom()) }()
	}
	defer func() {
		for _, n := range s.nodes {
			if serr := s.stop(n, false); serr != nil {
				err = errors.Join(err, serr)
			}
		}
	}()

	t0 := time.Now()
	for _, n := range s.nodes {
		if err := s.start(n); err != nil {
			return res, err
		}
	}
	// The contact messages come first, before any connection.
	for i, n := range s.nodes {
		for _, f := range s.plan.Follows[i] {
			if err := s.publish(ctx, n, map[string]any{"type": "contact", "contact": s.ID(f).String(), "following": true}); err != nil {
				return res, err
			}
		}
		for _, b := range s.plan.Blocks[i] {
			if err := s.publish(ctx, n, map[string]any{"type": "contact", "contact": s.ID(b).String(), "blocking": true}); err != nil {
				return res, err
			}
		}
	}
	res.Setup = time.Since(t0)
	s.log.Info("netsim: nodes started", "nodes", len(s.nodes), "hostile", len(s.hostile), "setup", res.Setup)

	start := time.Now()
	evCtx, stopEvents := context.WithCancel(ctx)
	var wg sync.WaitGroup
	s.runEvents(evCtx, start, &wg)
	// Publishing and faults end by PublishFor/FaultsFor; from then on
	// only gossip dials go on until the network converges.
	quiet := max(c.PublishFor, c.FaultsFor)
	err = s.awaitConvergence(ctx, start, quiet)
	res.Converge = time.Since(start)
	stopEvents()
	wg.Wait()
	res.Converged = err == nil
	res.Goroutines = runtime.NumGoroutine()
	s.errMu.Lock()
	errs := s.errs
	s.errMu.Unlock()
	if err == nil && len(errs) > 0 {
		err = errors.Join(errs...)
	}
	s.fill(&res)
	if err != nil {
		return res, err
	}
	if cerr := s.Check(checkCtx); cerr != nil {
		return res, cerr
	}
	res.Digests, err = s.Delivered(checkCtx)
	return res, err
}

// runEvents starts one worker per host (its events in order) and one for
// the network-wide events.
func (s *Sim) runEvents(ctx context.Context, start time.Time, wg *sync.WaitGroup) {
	per := make([][]Event, len(s.plan.Hosts))
	var global []Event
	for _, e := range s.plan.Events {
		switch e.Kind {
		case EvPartition, EvHeal:
			global = append(global, e)
		default:
			per[e.Node] = append(per[e.Node], e)
		}
	}
	sleepUntil := func(at time.Duration) bool {
		d := time.Until(start.Add(at))
		if d <= 0 {
			return ctx.Err() == nil
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	run := func(evs []Event) {
		defer wg.Done()
		for _, e := range evs {
			if !sleepUntil(e.At) {
				return
			}
			if err := s.do(ctx, e, wg); err != nil && ctx.Err() == nil {
				s.fail(fmt.Errorf("event %v: %w", e, err))
			}
		}
	}
	wg.Add(1)
	go run(global)
	for _, evs := range per {
		wg.Add(1)
		go run(evs)
	}
}

// do carries out one event.
func (s *Sim) do(ctx context.Context, e Event, wg *sync.WaitGroup) error {
	switch e.Kind {
	case EvPartition:
		groups := map[string]int{}
		for i, g := range e.Groups {
			groups[s.plan.Hosts[i]] = g
		}
		s.nw.Partition(groups)
		return nil
	case EvHeal:
		s.nw.Heal()
		return nil
	case EvAttack:
		h := s.hostile[e.Node-s.plan.Config.Nodes]
		err := h.attack(ctx, e.Attack, e.Peer, s.nodeAddr(e.Peer), s.ID(e.Peer))
		if err == nil {
			s.attacks.Add(1)
		}
		return nil // an unreachable target is not an error
	}
	n := s.nodes[e.Node]
	switch e.Kind {
	case EvPublish:
		return s.publish(ctx, n, post(n))
	case EvStop, EvKill:
		return s.stop(n, e.Kind == EvKill)
	case EvStart:
		return s.restart(ctx, n)
	case EvLoss:
		if peers := s.nw.Peers(n.name); len(peers) > 0 {
			s.nw.Cut(n.name, peers[n.rnd.IntN(len(peers))])
		}
		return nil
	case EvDial:
		sb := n.daemon()
		if sb == nil {
			return nil
		}
		peers := s.nw.Peers(n.name)
		if len(peers) >= s.plan.Config.Degree {
			if !e.Rotate {
				return nil
			}
			s.nw.Cut(n.name, peers[n.rnd.IntN(len(peers))])
		}
		s.dialsTried.Add(1)
		addr := s.address(e.Peer)
		// Tunnels run over the room's real connections: note the pair
		// here (a superset of the pairs that connected).
		s.nw.meet(n.name, s.plan.Hosts[e.Peer])
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			// It may fail: down, partitioned, blocked.
			if sb.ConnectAddress(dctx, addr) == nil && e.Peer < s.plan.Config.RoomOnly {
				s.tunnels.Add(1)
			}
		}()
		return nil
	}
	return fmt.Errorf("unknown event kind %d", e.Kind)
}

func (s *Sim) nodeAddr(i int) string { return fmt.Sprintf("%s:%d", s.plan.Hosts[i], port) }

// startRoom runs a room server (open mode) on the simulated network as
// host RoomHost, so that the links to it (and the tunnels through it) have
// latency, bandwidth and partitions like any other; the returned func
// stops it.
func (s *Sim) startRoom() (func() error, error) {
	cfg := room.Defaults(filepath.Join(s.dir, "room"))
	cfg.HTTPListen, cfg.DebugListen = "off", "off"
	cfg.Mode = "open"
	l, err := s.nw.Host(RoomHost).Listen(fmt.Sprintf("%s:%d", RoomHost, port))
	if err != nil {
		return nil, fmt.Errorf("room: %w", err)
	}
	r, err := room.New(room.Options{Config: cfg, Logger: s.nodeLog.With("node", "room"), Listener: l})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("room: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("room: %w", err)
	}
	s.room, s.roomID = r, r.ID()
	return func() error {
		cancel()
		return <-done
	}, nil
}

// watchHeap samples the Go heap in use until the returned func is called
// (runtime/metrics: no stop-the-world per sample, unlike ReadMemStats).
func (s *Sim) watchHeap() func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
		for {
			metrics.Read(sample)
			var inuse uint64
			for _, m := range sample {
				if m.Value.Kind() == metrics.KindUint64 {
					inuse += m.Value.Uint64()
				}
			}
			if inuse > s.peakHeap.Load() {
				s.peakHeap.Store(inuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
