// Command roommesh measures a room run as a mesh of nodes (room/mesh),
// with every node in this process on 127.0.0.1, sharing one identity and
// one database (SQLite, or PostgreSQL with -db).
//
// -case union: N attendants connect to each of -nodes nodes at once (at
// most -c dials in flight per node); each subscribes to room.attendants
// and keeps its view. It prints the connect rate per node (N divided by
// the time from the first dial to the last client's first state), the
// same rate for N attendants on one room without a mesh (measured first,
// in the same run), their ratio; then the mesh's total rate against one
// room taking all nodes × N attendants (the same event work on this one
// machine), the time until every view is the whole union, and the wrong
// views (target 0).
//
// -case tunnel: two JS peers (the interop kit's peer.js): A publishes
// -msgs messages, B follows A and replicates them through a tunnel; both
// on node 1 ("one node"), or A on node 1 and B on node 2 ("two nodes",
// the tunnel forwarded over the mesh). Runs alternate; medians and
// two/one (target ≤ 1.15) are printed.
//
//	go run ./bench/roommesh [-case union|tunnel|all] [-n 1000] [-nodes 3] [-msgs 10000] [-runs 3] [-db postgres://…]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/internal/interop"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/room"
	"github.com/cask-ssb/cask/room/mesh"
	"github.com/cask-ssb/cask/secretstream"
)

func main() {
	which := flag.String("case", "all", "union, tunnel or all")
	n := flag.Int("n", 1000, "attendants per node (union)")
	nodesN := flag.Int("nodes", 3, "mesh nodes (union; tunnel uses 2)")
	conc := flag.Int("c", 8, "dials in flight per node (union)")
	msgs := flag.Int("msgs", 10_000, "messages (tunnel)")
	runs := flag.Int("runs", 3, "runs of each tunnel case (median printed)")
	mode := flag.String("mode", "ebt", "replication: ebt or legacy (tunnel)")
	db := flag.String("db", "", "the nodes' shared database: postgres://… (default: one SQLite file; a PostgreSQL database is used as is, so give an empty one)")
	flag.Parse()
	log.SetFlags(0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, err := os.MkdirTemp("", "roommesh-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	if *which == "union" || *which == "all" {
		if err := union(ctx, filepath.Join(work, "union"), *db, *nodesN, *n, *conc); err != nil {
			log.Fatal(err)
		}
	}
	if *which == "tunnel" || *which == "all" {
		if err := tunnel(ctx, filepath.Join(work, "tunnel"), *db, *msgs, *runs, *mode); err != nil {
			log.Fatal(err)
		}
	}
}

// cluster is a running mesh.
type cluster struct {
	nodes []*room.Server
	stop  func()
}

// freeAddrs picks k free loopback ports (listen, note, close).
func freeAddrs(k int) ([]string, error) {
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// startCluster runs k nodes (k = 1: a plain room, no mesh).
func startCluster(ctx context.Context, dir, db string, k int) (*cluster, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	keyFile := filepath.Join(dir, "mesh-key")
	if _, err := mesh.WriteKeyFile(keyFile); err != nil {
		return nil, err
	}
	secret := filepath.Join(dir, "secret")
	if _, _, err := feeds.LoadOrCreateSecret(secret); err != nil {
		return nil, err
	}
	addrs, err := freeAddrs(k)
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cctx, cancel := context.WithCancel(ctx)
	c := &cluster{}
	var served []chan error
	c.stop = func() {
		cancel()
		for _, ch := range served {
			<-ch
		}
	}
	for i := range k {
		repo := filepath.Join(dir, fmt.Sprintf("node%d", i+1))
		if err := os.MkdirAll(repo, 0o700); err != nil {
			c.stop()
			return nil, err
		}
		cfg := room.Defaults(repo)
		cfg.DB = db
		if db == "" {
			cfg.DB = "sqlite:" + filepath.Join(dir, "room.sqlite")
		}
		cfg.Key = secret
		cfg.Listen, cfg.HTTPListen, cfg.DebugListen, cfg.Mode = "127.0.0.1:0", "off", "off", "open"
		cfg.MaxConns, cfg.MaxAttendants, cfg.MaxPending = 10000, 10000, 256
		cfg.HandshakeTimeout = time.Minute // a loaded machine: the mesh case does 9 times the event work of one room
		if k > 1 {
			cfg.MeshKeyFile, cfg.MeshListen = keyFile, addrs[i]
			for j, a := range addrs {
				if j != i {
					cfg.MeshWith = append(cfg.MeshWith, a)
				}
			}
		}
		srv, err := room.New(room.Options{Config: cfg, Logger: logger.With("node", i+1)})
		if err != nil {
			c.stop()
			return nil, err
		}
		ready := make(chan struct{})
		ch := make(chan error, 1)
		go func() { ch <- srv.Serve(cctx, func() { close(ready) }) }()
		select {
		case <-ready:
		case err := <-ch:
			c.stop()
			return nil, err
		}
		served = append(served, ch)
		c.nodes = append(c.nodes, srv)
	}
	for deadline := time.Now().Add(60 * time.Second); k > 1; time.Sleep(20 * time.Millisecond) {
		up := 0
		for _, s := range c.nodes {
			up += len(s.Mesh().Links())
		}
		if up == k*(k-1) {
			break
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, errors.New("mesh links did not come up within 60 s")
		}
	}
	return c, nil
}

type client struct {
	kp  feeds.KeyPair
	ep  *muxrpc.Endpoint
	mu  sync.Mutex
	set map[feeds.FeedRef]bool
	bad int // duplicate joined, unknown left
}

func (c *client) join(ctx context.Context, addr string) error {
	a, err := feeds.ParseAddress(addr)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	sc, err := secretstream.Dial(dctx, "tcp", a.DialAddr(), secretstream.MainNetAppKey(), c.kp.Private, a.Key.PublicKey())
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
	type ev struct {
		Type string   `json:"type"`
		ID   string   `json:"id"`
		IDs  []string `json:"ids"`
	}
	var first ev
	if err := src.Decode(dctx, &first); err != nil || first.Type != "state" {
		return fmt.Errorf("attendants state: %q %v", first.Type, err)
	}
	c.mu.Lock()
	for _, s := range first.IDs {
		if r, err := feeds.ParseFeedRef(s); err == nil {
			c.set[r] = true
		}
	}
	c.mu.Unlock()
	go func() {
		for {
			var e ev
			if err := src.Decode(context.Background(), &e); err != nil {
				return
			}
			r, err := feeds.ParseFeedRef(e.ID)
			c.mu.Lock()
			switch {
			case err != nil:
				c.bad++
			case e.Type == "joined":
				if c.set[r] {
					c.bad++
				}
				c.set[r] = true
			case e.Type == "left":
				if !c.set[r] {
					c.bad++
				}
				delete(c.set, r)
			}
			c.mu.Unlock()
		}
	}()
	return nil
}

func (c *client) exact(all []*client) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.set) != len(all) || c.bad > 0 {
		return false
	}
	for _, o := range all {
		if !c.set[o.kp.ID] {
			return false
		}
	}
	return true
}

// connect joins n clients to addr, conc at a time; it returns them and
// the connect rate.
func connect(ctx context.Context, addr string, n, conc int) ([]*client, float64, error) {
	cs := make([]*client, n)
	for i := range cs {
		kp, err := feeds.GenerateKeyPair(nil)
		if err != nil {
			return nil, 0, err
		}
		cs[i] = &client{kp: kp, set: map[feeds.FeedRef]bool{}}
	}
	start := time.Now()
	sem := make(chan struct{}, conc)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.join(ctx, addr); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, 0, err
	}
	return cs, float64(n) / time.Since(start).Seconds(), nil
}

func closeAll(cs []*client) {
	for _, c := range cs {
		if c.ep != nil {
			c.ep.Close()
		}
	}
}

func union(ctx context.Context, dir, db string, k, n, conc int) error {
	// One room without a mesh first: the reference connect rate.
	one, err := startCluster(ctx, filepath.Join(dir, "single"), db, 1)
	if err != nil {
		return err
	}
	cs, single, err := connect(ctx, one.nodes[0].Address(), n, conc)
	if err != nil {
		one.stop()
		return fmt.Errorf("single room: %w", err)
	}
	closeAll(cs)
	log.Printf("one room: %d attendants at %.0f/s", n, single)
	// The same event work as the mesh: k×N attendants on one room, with
	// k×conc dials in flight.
	cs, singleAll, err := connect(ctx, one.nodes[0].Address(), k*n, k*conc)
	if err != nil {
		one.stop()
		return fmt.Errorf("single room, %d attendants: %w", k*n, err)
	}
	closeAll(cs)
	one.stop()
	log.Printf("one room: %d attendants at %.0f/s", k*n, singleAll)

	cl, err := startCluster(ctx, filepath.Join(dir, "mesh"), db, k)
	if err != nil {
		return err
	}
	defer cl.stop()
	rates := make([]float64, k)
	groups := make([][]*client, k)
	errs := make([]error, k)
	var wg sync.WaitGroup
	start := time.Now()
	for i, s := range cl.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); groups[i], rates[i], errs[i] = connect(ctx, s.Address(), n, conc) }()
	}
	wg.Wait()
	var all []*client
	for i := range groups {
		if errs[i] != nil {
			return fmt.Errorf("node %d: %w", i+1, errs[i])
		}
		all = append(all, groups[i]...)
		defer closeAll(groups[i])
	}
	connected := time.Since(start)
	wrong := len(all)
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		wrong = 0
		for _, c := range all {
			if !c.exact(all) {
				wrong++
			}
		}
		if wrong == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	settle := time.Since(start)
	per := median(rates)
	total := float64(k*n) / connected.Seconds()
	out, _ := json.Marshal(map[string]any{"case": "union", "nodes": k, "attendants_per_node": n,
		"connect_per_s_one_room": round(single), "connect_per_s_per_node": round(per), "per_node_over_one_room": round2(per / single),
		"connect_per_s_one_room_all": round(singleAll), "connect_per_s_mesh_all": round(total), "mesh_over_one_room_all": round2(total / singleAll),
		"all_connected_s": round2(connected.Seconds()), "all_views_exact_s": round2(settle.Seconds()), "wrong_views": wrong})
	fmt.Println(string(out))
	return nil
}

func round(f float64) float64  { return float64(int64(f + 0.5)) }
func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func tunnel(ctx context.Context, dir, db string, msgs, runs int, mode string) error {
	kit, err := interop.KitDir()
	if err != nil {
		return err
	}
	cl, err := startCluster(ctx, filepath.Join(dir, "mesh"), db, 2)
	if err != nil {
		return err
	}
	defer cl.stop()
	var one, two []float64
	for r := range runs {
		for _, cross := range []bool{false, true} {
			bRoom := cl.nodes[0].Address()
			if cross {
				bRoom = cl.nodes[1].Address()
			}
			secs, err := once(ctx, kit, filepath.Join(dir, fmt.Sprintf("run%d-%v", r, cross)), msgs, mode, cl.nodes[0].Address(), bRoom)
			if err != nil {
				return fmt.Errorf("run %d (two nodes=%v): %w", r+1, cross, err)
			}
			if cross {
				two = append(two, secs)
			} else {
				one = append(one, secs)
			}
			log.Printf("run %d two-nodes=%v: %.2f s", r+1, cross, secs)
		}
	}
	m1, m2 := median(one), median(two)
	out, _ := json.Marshal(map[string]any{"case": "tunnel", "msgs": msgs, "mode": mode, "runs": runs, "one_node_s": m1, "two_nodes_s": m2, "ratio": round2(m2 / m1)})
	fmt.Println(string(out))
	return nil
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

// once replicates msgs messages from A (attendant of aRoom) to B
// (attendant of bRoom) through a tunnel; the time is from B's
// tunnel_opened until it holds all of them.
func once(ctx context.Context, kit, dir string, msgs int, mode, aRoom, bRoom string) (float64, error) {
	common := []string{"--replication", mode, "--progress-ms", "100"}
	a, err := start(ctx, kit, append([]string{"--path", filepath.Join(dir, "a"), "--publish", strconv.Itoa(msgs), "--room", aRoom}, common...)...)
	if err != nil {
		return 0, err
	}
	defer a.Stop()
	if _, err := wait(ctx, a, "published", func(e interop.Event) bool { return e.Name() == "published" }); err != nil {
		return 0, err
	}
	if _, err := wait(ctx, a, "room", func(e interop.Event) bool { return e.Name() == "room" }); err != nil {
		return 0, err
	}
	b, err := start(ctx, kit, append([]string{"--path", filepath.Join(dir, "b"), "--follow", a.ID, "--room", bRoom, "--tunnel", a.ID}, common...)...)
	if err != nil {
		return 0, err
	}
	defer b.Stop()
	st, err := wait(ctx, b, "tunnel_opened", func(e interop.Event) bool { return e.Name() == "tunnel_opened" })
	if err != nil {
		return 0, err
	}
	done, err := wait(ctx, b, "progress", func(e interop.Event) bool {
		return e.Name() == "progress" && e.String("feed") == a.ID && e.Int("seq") >= int64(msgs)
	})
	if err != nil {
		return 0, err
	}
	return float64(done.Int("t")-st.Int("t")) / 1000, nil
}
