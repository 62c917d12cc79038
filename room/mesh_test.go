package room

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/httpauth"
	roomplug "github.com/cask-ssb/cask/plugins/room"
	"github.com/cask-ssb/cask/room/mesh"
	"github.com/cask-ssb/cask/room/roomdb"
	"github.com/cask-ssb/cask/room/roomdb/pgtest"
)

// meshNode is one running node of a test mesh.
type meshNode struct {
	s    *Server
	stop func() // ends the node (idempotent)
	base string // http://HOST:PORT of the web side
}

// Databases the mesh tests run on.
const (
	dbSQLite   = "sqlite"   // one SQLite file (WAL works across connections)
	dbPostgres = "postgres" // a fresh PostgreSQL database (pgtest)
)

// startMesh runs n room nodes on 127.0.0.1 sharing one identity, one
// mesh key and one database, each meshed with all the others. The nodes
// stop when the test ends.
func startMesh(t testing.TB, n int, mutate func(i int, c *Config)) []*meshNode {
	t.Helper()
	return startMeshOn(t, dbSQLite, n, mutate)
}

func startMeshOn(t testing.TB, db string, n int, mutate func(i int, c *Config)) []*meshNode {
	t.Helper()
	shared := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(shared, "room.sqlite")
	if db == dbPostgres {
		dbURL = pgtest.NewDatabase(t)
	}
	keyFile := filepath.Join(shared, "mesh-key")
	if _, err := mesh.WriteKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(shared, "secret")
	if _, _, err := feeds.LoadOrCreateSecret(secret); err != nil {
		t.Fatal(err)
	}
	ls := make([]net.Listener, n)
	for i := range ls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls[i] = l
	}
	nodes := make([]*meshNode, n)
	for i := range n {
		cfg := Defaults(t.TempDir())
		cfg.DB = dbURL
		cfg.Key = secret
		cfg.Listen = "127.0.0.1:0"
		cfg.HTTPListen = "127.0.0.1:0"
		cfg.LinkScheme = "http"
		cfg.DebugListen = "off"
		cfg.Mode = "open"
		cfg.KeepAlive = 5 * time.Second
		cfg.WriteTimeout = 5 * time.Second
		cfg.MeshKeyFile = keyFile
		cfg.MeshListen = ls[i].Addr().String()
		cfg.meshListener = ls[i]
		for j, l := range ls {
			if j != i {
				cfg.MeshWith = append(cfg.MeshWith, l.Addr().String())
			}
		}
		if mutate != nil {
			mutate(i, &cfg)
		}
		level := slog.LevelWarn
		if os.Getenv("ROOM_TEST_LOG") != "" {
			level = slog.LevelDebug
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("node", i)
		s, err := New(Options{Config: cfg, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan struct{})
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx, func() { close(ready) }) }()
		select {
		case <-ready:
		case err := <-done:
			cancel()
			t.Fatalf("node %d did not start: %v", i, err)
		}
		stopped := false
		stop := func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("node %d Serve: %v", i, err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("node %d did not stop within 15 s", i)
			}
		}
		t.Cleanup(stop)
		nodes[i] = &meshNode{s: s, stop: stop, base: "http://" + s.HTTPAddr()}
	}
	// Every node has a link to every other one.
	deadline := time.Now().Add(60 * time.Second)
	for _, nd := range nodes {
		for len(nd.s.Mesh().Links()) < n-1 {
			if time.Now().After(deadline) {
				t.Fatalf("mesh links did not come up: %d of %d", len(nd.s.Mesh().Links()), n-1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nodes
}

func hasAll(ids ...feeds.FeedRef) func(map[string]bool) bool {
	return func(set map[string]bool) bool {
		if len(set) != len(ids) {
			return false
		}
		for _, id := range ids {
			if !set[id.String()] {
				return false
			}
		}
		return true
	}
}

// TestMeshAttendantsAndTunnels: attendants on three nodes see the union;
// a tunnel between attendants of node 1 and node 3 goes through the mesh
// and carries a secret handshake and 1 MiB; a peer connected to two nodes
// leaves the union only when gone from both.
func TestMeshAttendantsAndTunnels(t *testing.T) {
	nodes := startMesh(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, b, c := mustDial(t, nodes[0].s, newKey(t)), mustDial(t, nodes[1].s, newKey(t)), mustDial(t, nodes[2].s, newKey(t))
	var views []*view
	for _, cl := range []*client{a, b, c} {
		v, err := cl.subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		views = append(views, v)
	}
	all := hasAll(a.kp.ID, b.kp.ID, c.kp.ID)
	for i, v := range views {
		if !v.waitFor(30*time.Second, all) {
			set, _ := v.snapshot()
			t.Fatalf("attendant on node %d sees %v, want all three", i+1, set)
		}
	}
	// A tunnel from node 1's attendant to node 3's, and back.
	if sent, got := transfer(t, nodes[0].s, a, c, 1<<20); sent != got {
		t.Fatal("bytes through the forwarded tunnel differ")
	}
	if sent, got := transfer(t, nodes[2].s, c, a, 64<<10); sent != got {
		t.Fatal("bytes through the forwarded tunnel (back) differ")
	}
	if v := metricValue(nodes[0].s.Mesh().Metrics().Collectors()[1]); v < 1 {
		t.Errorf("room_mesh_tunnels_total on node 1 = %v, want at least 1", v)
	}
	// A target no node holds: the JS room's error text.
	src, _, err := a.ep.Duplex(ctx, muxrpc.Method{"tunnel", "connect"}, map[string]string{"portal": nodes[0].s.ID().String(), "target": newKey(t).ID.String()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Next(ctx); !strings.HasPrefix(callErr(err), "could not connect to:@") {
		t.Fatalf("tunnel to nobody: %v", err)
	}

	// d is connected to node 2 and node 3 at once: one attendant.
	dk := newKey(t)
	d2, d3 := mustDial(t, nodes[1].s, dk), mustDial(t, nodes[2].s, dk)
	if _, err := d2.subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d3.subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	four := hasAll(a.kp.ID, b.kp.ID, c.kp.ID, dk.ID)
	if !views[0].waitFor(30*time.Second, four) {
		t.Fatal("node 1 does not see d")
	}
	d2.ep.Close()
	time.Sleep(300 * time.Millisecond) // d must stay: it is still on node 3
	if set, _ := views[0].snapshot(); !four(set) {
		t.Fatalf("d left node 2 only, but node 1's attendants are %v", set)
	}
	d3.ep.Close()
	three := hasAll(a.kp.ID, b.kp.ID, c.kp.ID)
	for i, v := range views {
		if !v.waitFor(30*time.Second, three) {
			t.Fatalf("node %d still sees d after it left every node", i+1)
		}
		if _, errs := v.snapshot(); len(errs) > 0 {
			t.Fatalf("node %d: protocol errors %v", i+1, errs)
		}
	}
}

// TestMeshSharedState: an invite made on node 1 is claimed on node 3; an
// alias registered on node 2 resolves on node 1.
func TestMeshSharedState(t *testing.T) {
	for _, db := range []string{dbSQLite, dbPostgres} {
		t.Run(db, func(t *testing.T) { testMeshSharedState(t, db) })
	}
}

func testMeshSharedState(t *testing.T, db string) {
	nodes := startMeshOn(t, db, 3, func(_ int, c *Config) { c.Mode = "community" })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, _, err := nodes[0].s.DB().CreateInvite(ctx, nil, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	alice := newKey(t)
	resp, body := post(t, browser(t), nodes[2].base+"/invite/consume", "application/json", `{"id":"`+alice.ID.String()+`","invite":"`+code+`"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("claim on node 3: %d %s", resp.StatusCode, body)
	}
	if _, member, err := nodes[1].s.DB().Role(ctx, alice.ID); err != nil || !member {
		t.Fatalf("alice a member on node 2: %v, %v", member, err)
	}
	ac := mustDial(t, nodes[1].s, alice)
	if err := ac.ep.Async(ctx, nil, muxrpc.Method{"room", "registerAlias"}, "alice", roomdb.SignAlias(alice, nodes[1].s.ID(), "alice")); err != nil {
		t.Fatal(err)
	}
	resp, body = get(t, browser(t), nodes[0].base+"/alias/alice?encoding=json")
	if m := jsonObject(t, body); resp.StatusCode != 200 || m["userId"] != alice.ID.String() {
		t.Fatalf("alias on node 1: %d %s", resp.StatusCode, body)
	}
}

// TestMeshKillNode: a node dies (its mesh connections and listeners close
// abruptly): its attendants leave the others' union within 5 s, a tunnel
// between the other nodes carries on, and no membership is lost.
func TestMeshKillNode(t *testing.T) {
	for _, db := range []string{dbSQLite, dbPostgres} {
		t.Run(db, func(t *testing.T) { testMeshKillNode(t, db) })
	}
}

func testMeshKillNode(t *testing.T, db string) {
	nodes := startMeshOn(t, db, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ks := []feeds.KeyPair{newKey(t), newKey(t), newKey(t)}
	for _, k := range ks {
		if err := nodes[0].s.DB().AddMember(ctx, k.ID, roomdb.RoleMember); err != nil {
			t.Fatal(err)
		}
	}
	a, b, c := mustDial(t, nodes[0].s, ks[0]), mustDial(t, nodes[1].s, ks[1]), mustDial(t, nodes[2].s, ks[2])
	va, err := a.subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*client{b, c} {
		if _, err := cl.subscribe(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !va.waitFor(30*time.Second, hasAll(ks[0].ID, ks[1].ID, ks[2].ID)) {
		t.Fatal("union not complete")
	}
	// A tunnel a (node 1) → c (node 3) is open while node 2 dies.
	type result struct {
		sent, got [32]byte
	}
	res := make(chan result, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		s, g := transfer(t, nodes[0].s, a, c, 8<<20)
		res <- result{s, g}
	}()
	<-started
	nodes[1].s.Mesh().Abort()
	killed := time.Now()
	nodes[1].stop()
	if !va.waitFor(5*time.Second, hasAll(ks[0].ID, ks[2].ID)) {
		set, _ := va.snapshot()
		t.Fatalf("5 s after node 2 died, node 1's attendants are %v", set)
	}
	t.Logf("node 2's attendant left node 1's view %v after the kill", time.Since(killed))
	r := <-res
	if r.sent != r.got {
		t.Fatal("the tunnel between node 1 and node 3 was disturbed")
	}
	for _, k := range ks {
		if _, member, err := nodes[2].s.DB().Role(ctx, k.ID); err != nil || !member {
			t.Fatalf("membership of %s after the kill: %v, %v", k.ID, member, err)
		}
	}
	// b reconnects to a survivor and is back in the union.
	b2 := mustDial(t, nodes[2].s, ks[1])
	if _, err := b2.subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if !va.waitFor(30*time.Second, hasAll(ks[0].ID, ks[1].ID, ks[2].ID)) {
		t.Fatal("b is not back after reconnecting to node 3")
	}
	if _, errs := va.snapshot(); len(errs) > 0 {
		t.Fatalf("protocol errors: %v", errs)
	}
}

// TestMeshWrongKey: a node with another mesh key, or without the room's
// secret, fails the handshake and learns nothing.
func TestMeshWrongKey(t *testing.T) {
	nodes := startMesh(t, 2, nil)
	a := mustDial(t, nodes[0].s, newKey(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	roomKeys, _, err := feeds.LoadOrCreateSecret(nodes[0].s.cfg.KeyPath())
	if err != nil {
		t.Fatal(err)
	}
	goodKey, err := mesh.LoadKey(nodes[0].s.cfg.MeshKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := mesh.NewKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		key  mesh.Key
		id   feeds.KeyPair
	}{
		{"other mesh key", otherKey, roomKeys},
		{"not the room's secret", goodKey, newKey(t)},
	} {
		att := roomplug.NewAttendants(0)
		bad, err := mesh.New(mesh.Options{With: []string{nodes[0].s.Mesh().Addr()}, Key: c.key, Identity: c.id, Att: att, MaxBackoff: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		before := metricValue(nodes[0].s.Mesh().Metrics().Handshakes("failed"))
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- bad.Run(rctx, nil) }()
		deadline := time.Now().Add(30 * time.Second)
		for metricValue(nodes[0].s.Mesh().Metrics().Handshakes("failed")) < before+2 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		rcancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(bad.Links()) != 0 || att.UnionLen() != 0 {
			t.Fatalf("%s: links %v, attendants learnt %d", c.name, bad.Links(), att.UnionLen())
		}
		if metricValue(nodes[0].s.Mesh().Metrics().Handshakes("failed")) < before+2 {
			t.Fatalf("%s: node 1 saw no failed mesh handshakes", c.name)
		}
	}
}

// TestMeshDrain: a draining node reports not ready, refuses new sessions
// and closes its peers, which reconnect to another node and stay in the
// union; `drain --cancel` makes it ready again.
func TestMeshDrain(t *testing.T) {
	nodes := startMesh(t, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ready := func(nd *meshNode) int {
		resp, _ := get(t, browser(t), nd.base+"/readyz")
		return resp.StatusCode
	}
	if ready(nodes[0]) != 200 || ready(nodes[1]) != 200 {
		t.Fatal("nodes not ready at start")
	}
	watcher := mustDial(t, nodes[0].s, newKey(t))
	vw, err := watcher.subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := []feeds.KeyPair{newKey(t), newKey(t), newKey(t)}
	var cs []*client
	for _, k := range keys {
		c := mustDial(t, nodes[1].s, k)
		if _, err := c.subscribe(ctx); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	all := hasAll(watcher.kp.ID, keys[0].ID, keys[1].ID, keys[2].ID)
	if !vw.waitFor(30*time.Second, all) {
		t.Fatal("union incomplete before the drain")
	}
	res := nodes[1].s.Drain(50)
	if res.Closing != 3 {
		t.Fatalf("drain closing %d connections, want 3", res.Closing)
	}
	if ready(nodes[1]) != 503 || ready(nodes[0]) != 200 {
		t.Fatal("/readyz: the draining node must be 503, the other 200")
	}
	for i, c := range cs {
		select {
		case <-c.ep.Done():
		case <-ctx.Done():
			t.Fatalf("attendant %d not closed by the drain", i)
		}
	}
	// A new session on the draining node is refused with the reason.
	late := mustDial(t, nodes[1].s, newKey(t))
	if err := late.ep.Async(ctx, nil, muxrpc.Method{"room", "metadata"}); !strings.Contains(callErr(err), "draining") {
		t.Fatalf("session on a draining node: %v", err)
	}
	// They come back on node 1.
	for _, k := range keys {
		c := mustDial(t, nodes[0].s, k)
		if _, err := c.subscribe(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !vw.waitFor(30*time.Second, all) {
		set, _ := vw.snapshot()
		t.Fatalf("after moving to node 1 the union is %v", set)
	}
	if st, err := nodes[1].s.Status(ctx); err != nil || !st.Draining || st.Mesh == nil || len(st.Mesh.Links) != 1 || st.Mesh.Attendants != 4 {
		t.Fatalf("status of the drained node: %+v %v", st, err)
	}
	nodes[1].s.Undrain()
	if ready(nodes[1]) != 200 {
		t.Fatal("not ready after drain --cancel")
	}
}

// TestMeshSignIn: sign-in with SSB when the browser's page is on node 1
// and the member's app on node 2, both ways (client- and
// server-initiated); a replayed or foreign solution is refused.
func TestMeshSignIn(t *testing.T) {
	nodes := startMesh(t, 2, func(_ int, c *Config) { c.Mode = "community" })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice, mallory := newKey(t), newKey(t)
	if err := nodes[0].s.DB().AddMember(ctx, alice.ID, roomdb.RoleMember); err != nil {
		t.Fatal(err)
	}
	room := nodes[0].s.ID()
	app := dialAnswering(t, nodes[1].s, alice, func(sc, cc string) string { return httpauth.Sign(alice, room, sc, cc) })
	if _, err := app.Source(ctx, muxrpc.Method{"room", "attendants"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); len(nodes[0].s.att.Holders(alice.ID)) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("node 1 does not learn that node 2 holds alice")
		}
	}
	// Client-initiated, on node 1.
	c := browser(t)
	resp, _ := get(t, c, nodes[0].base+"/login?"+url.Values{"cid": {alice.ID.String()}, "cc": {httpauth.NewChallenge()}}.Encode())
	if resp.StatusCode != 303 || !strings.Contains(resp.Header.Get("Set-Cookie"), "room_session=") {
		t.Fatalf("client-initiated sign-in through the mesh: %d", resp.StatusCode)
	}
	// Server-initiated: the page on node 1, the solution sent to node 2.
	c2 := browser(t)
	su, events := startSignIn(t, c2, nodes[0].base)
	type sse struct{ ev, data string }
	got := make(chan sse, 1)
	go func() { ev, data := waitEvent(t, browser(t), nodes[0].base+events); got <- sse{ev, data} }()
	cc := httpauth.NewChallenge()
	if err := app.Async(ctx, nil, httpauth.MethodSendSolution, su.SC, cc, httpauth.Sign(mallory, room, su.SC, cc)); err == nil {
		t.Fatal("forged solution accepted through the mesh")
	}
	var ok bool
	if err := app.Async(ctx, &ok, httpauth.MethodSendSolution, su.SC, cc, httpauth.Sign(alice, room, su.SC, cc)); err != nil || !ok {
		t.Fatalf("sendSolution on node 2 for node 1's challenge: %v, %v", ok, err)
	}
	if r := <-got; r.ev != "success" {
		t.Fatalf("node 1's page got %q %q", r.ev, r.data)
	}
	if err := app.Async(ctx, &ok, httpauth.MethodSendSolution, su.SC, cc, httpauth.Sign(alice, room, su.SC, cc)); err == nil {
		t.Fatal("replayed solution accepted through the mesh")
	}
}

// TestMeshTunnelLimits: the per-key tunnel limit of the origin's node
// counts forwarded tunnels as local ones.
func TestMeshTunnelLimits(t *testing.T) {
	nodes := startMesh(t, 2, func(_ int, c *Config) { c.MaxTunnelsPerKey = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, c := mustDial(t, nodes[0].s, newKey(t)), mustDial(t, nodes[1].s, newKey(t))
	if _, err := c.subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); len(nodes[0].s.att.Holders(c.kp.ID)) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("node 1 did not learn c")
		}
	}
	args := map[string]string{"portal": nodes[0].s.ID().String(), "target": c.kp.ID.String()}
	_, out1, err := a.ep.Duplex(ctx, muxrpc.Method{"tunnel", "connect"}, args)
	if err != nil {
		t.Fatal(err)
	}
	defer out1.Close()
	if _, err := c.acc.Accept(ctx); err != nil { // the first one reached c through the mesh
		t.Fatal(err)
	}
	src2, _, err := a.ep.Duplex(ctx, muxrpc.Method{"tunnel", "connect"}, args)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src2.Next(ctx); !strings.Contains(callErr(err), "at most 1 open tunnels per key") {
		t.Fatalf("second forwarded tunnel over the per-key limit: %v", err)
	}
}
