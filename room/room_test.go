package room

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	roomplug "github.com/cask-ssb/cask/plugins/room"
	"github.com/cask-ssb/cask/plugins/tunnel"
	"github.com/cask-ssb/cask/room/roomdb"
	"github.com/cask-ssb/cask/secretstream"
)

func TestAttendantsSeeEachOther(t *testing.T) {
	s := startRoom(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b := mustDial(t, s, newKey(t)), mustDial(t, s, newKey(t))

	var md roomplug.Metadata
	if err := a.ep.Async(ctx, &md, muxrpc.Method{"room", "metadata"}); err != nil {
		t.Fatal(err)
	}
	if md.Name != "localhost" || md.Membership || strings.Join(md.Features, ",") != "tunnel,room2,room1,alias" {
		t.Fatalf("metadata = %+v", md)
	}
	va, err := a.subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := b.subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	both := func(set map[string]bool) bool { return len(set) == 2 && set[a.kp.ID.String()] && set[b.kp.ID.String()] }
	if !va.waitFor(5*time.Second, both) || !vb.waitFor(5*time.Second, both) {
		t.Fatal("attendants do not see each other")
	}
	b.ep.Close()
	if !va.waitFor(5*time.Second, func(set map[string]bool) bool { return len(set) == 1 }) {
		t.Fatal("a did not see b leave")
	}
	if _, errs := va.snapshot(); len(errs) > 0 {
		t.Fatalf("protocol errors: %v", errs)
	}
	// Unknown and peer-only methods get the JS error text.
	for _, m := range []string{"createHistoryStream", "ebt.replicate", "blobs.get"} {
		err := a.ep.Async(ctx, nil, muxrpc.ParseMethod(m))
		want := "method:" + strings.ReplaceAll(m, ".", ",") + " is not in list of allowed methods"
		if callErr(err) != want {
			t.Errorf("%s: error %q, want %q", m, callErr(err), want)
		}
	}
}

// transfer opens a tunnel a→b through the room, runs the inner secret
// handshake (a client, b server) and sends n bytes; it returns what b read
// hashed.
func transfer(t *testing.T, s *Server, a, b *client, n int) (sent, got [32]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	type result struct {
		sum [32]byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		in, err := b.acc.Accept(ctx)
		if err != nil {
			res <- result{err: err}
			return
		}
		if in.Origin != a.kp.ID || in.Portal != s.ID() {
			res <- result{err: fmt.Errorf("incoming tunnel origin %s portal %s", in.Origin, in.Portal)}
			return
		}
		sc, err := secretstream.Server(ctx, in.Conn, s.caps, b.kp.Private, nil)
		if err != nil {
			res <- result{err: fmt.Errorf("inner handshake (server): %w", err)}
			return
		}
		h := sha256.New()
		_, err = io.Copy(h, sc)
		sc.Close()
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		res <- result{sum: sum, err: err}
	}()
	pipe, err := tunnel.Dial(ctx, a.ep, s.ID(), b.kp.ID)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := secretstream.Client(ctx, pipe, s.caps, a.kp.Private, b.kp.ID.PublicKey())
	if err != nil {
		t.Fatalf("inner handshake (client): %v", err)
	}
	h := sha256.New()
	chunk := bytes.Repeat([]byte("cask tunnel payload "), 3277) // ~64 KiB
	for left := n; left > 0; {
		k := min(left, len(chunk))
		if _, err := sc.Write(chunk[:k]); err != nil {
			t.Fatalf("write into tunnel: %v", err)
		}
		h.Write(chunk[:k])
		left -= k
	}
	if err := sc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	copy(sent[:], h.Sum(nil))
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	sc.Close()
	return sent, r.sum
}

func TestTunnel(t *testing.T) {
	s := startRoom(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b := mustDial(t, s, newKey(t)), mustDial(t, s, newKey(t))
	if _, err := b.subscribe(ctx); err != nil { // b becomes an attendant
		t.Fatal(err)
	}
	// Errors of tunnel.connect, as the JS room gives them.
	for _, c := range []struct {
		args map[string]string
		want string
	}{
		{map[string]string{"portal": a.kp.ID.String(), "target": b.kp.ID.String()}, "talking to the wrong room"},
		{map[string]string{"portal": s.ID().String(), "target": a.kp.ID.String()}, "can't connect to self"},
		{map[string]string{"portal": s.ID().String(), "target": newKey(t).ID.String()}, "could not connect to:@"},
	} {
		src, _, err := a.ep.Duplex(ctx, muxrpc.Method{"tunnel", "connect"}, c.args)
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.Next(ctx)
		if !strings.HasPrefix(callErr(err), c.want) {
			t.Errorf("tunnel.connect %v: %v, want %q", c.args, err, c.want)
		}
	}
	sent, got := transfer(t, s, a, b, 1<<20)
	if sent != got {
		t.Fatal("bytes through the tunnel differ")
	}
}

// TestTunnel50MB sends 50 MB through a tunnel. The room only has its own
// key; the inner handshake and box stream use a's and b's keys, so what it
// splices is ciphertext. Memory must stay bounded (no buffering of the
// stream): the whole process's heap is sampled during the transfer.
func TestTunnel50MB(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB transfer: skipped with -short")
	}
	s := startRoom(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b := mustDial(t, s, newKey(t)), mustDial(t, s, newKey(t))
	if _, err := b.subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	const n = 50 << 20
	sent, got := transfer(t, s, a, b, n)
	close(stop)
	wg.Wait()
	if sent != got {
		t.Fatal("bytes through the tunnel differ")
	}
	spliced := metricValue(s.metrics.bytes)
	if spliced < n {
		t.Fatalf("room spliced %.0f bytes, want at least %d", spliced, n)
	}
	t.Logf("50 MB through the tunnel; room spliced %.1f MB; peak heap in use (room and both clients) %.1f MB", spliced/1e6, float64(peak.Load())/1e6)
	if peak.Load() > 48<<20 {
		t.Fatalf("peak heap %d MB: the tunnel buffers the stream", peak.Load()>>20)
	}
}

func TestSecondConnectionReplacesFirst(t *testing.T) {
	s := startRoom(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	obs := mustDial(t, s, newKey(t))
	vo, err := obs.subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kp := newKey(t)
	first := mustDial(t, s, kp)
	if _, err := first.subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if !vo.waitFor(5*time.Second, func(set map[string]bool) bool { return set[kp.ID.String()] }) {
		t.Fatal("observer did not see the first connection")
	}
	second := mustDial(t, s, kp)
	if _, err := second.subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.ep.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("first connection not closed after the second arrived")
	}
	// The second connection is reachable: a tunnel to kp lands on it.
	time.Sleep(200 * time.Millisecond)
	vo.mu.Lock()
	var about []string
	for _, ev := range vo.events {
		if ev.ID == kp.ID.String() {
			about = append(about, ev.Type)
		}
	}
	vo.mu.Unlock()
	if strings.Join(about, ",") != "joined" {
		t.Fatalf("observer saw %v for the replaced key, want one joined", about)
	}
	if ep, ok := s.att.Lookup(kp.ID); !ok || ep == nil {
		t.Fatal("replaced key is not an attendant")
	}
	sent, got := transfer(t, s, obs, second, 4096)
	if sent != got {
		t.Fatal("tunnel to the replacing connection failed")
	}
}

func TestPerIPLimit(t *testing.T) {
	s := startRoom(t, func(c *Config) { c.MaxConnsPerIP = 2; c.LimitLoopback = true })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mustDial(t, s, newKey(t))
	mustDial(t, s, newKey(t))
	third := mustDial(t, s, newKey(t))
	err := third.ep.Async(ctx, nil, muxrpc.Method{"room", "metadata"})
	if want := "room limit: at most 2 connections per IP address"; callErr(err) != want {
		t.Fatalf("third connection from one IP: %v, want %q", err, want)
	}
	if v := metricValue(s.metrics.limits.WithLabelValues("conns-per-ip")); v != 1 {
		t.Fatalf("limits hit = %v", v)
	}
	select {
	case <-third.ep.Done():
	case <-time.After(refuseGrace + 5*time.Second):
		t.Fatal("refused connection not closed")
	}
	// Without --limit-loopback, loopback is exempt.
	s2 := startRoom(t, func(c *Config) { c.MaxConnsPerIP = 1 })
	for range 3 {
		c := mustDial(t, s2, newKey(t))
		if err := c.ep.Async(ctx, nil, muxrpc.Method{"room", "metadata"}); err != nil {
			t.Fatalf("loopback limited without --limit-loopback: %v", err)
		}
	}
}

// TestAccessByModeAndRole calls each class of method as a member and a
// non-member in each mode, over real connections.
func TestAccessByModeAndRole(t *testing.T) {
	s := startRoom(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	member, stranger, denied := newKey(t), newKey(t), newKey(t)
	if err := s.db.AddMember(ctx, member.ID, roomdb.RoleMember); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Deny(ctx, denied.ID, ""); err != nil {
		t.Fatal(err)
	}
	type row struct {
		mode    roomdb.Mode
		who     string
		method  string
		wantErr string // "" = allowed
	}
	rows := []row{
		{"open", "stranger", "room.metadata", ""},
		{"open", "stranger", "room.attendants", ""},
		{"open", "stranger", "room.registerAlias", roomplug.ErrMembersOnly.Error()},
		{"open", "member", "room.registerAlias", ""},
		{"open", "denied", "room.metadata", "this key is denied access to the room"},
		{"community", "stranger", "room.metadata", ""},
		{"community", "stranger", "room.attendants", roomplug.ErrEnumerate.Error()},
		{"community", "stranger", "tunnel.endpoints", roomplug.ErrEnumerate.Error()},
		{"community", "stranger", "room.listAliases", ""},
		{"community", "member", "room.attendants", ""},
		{"community", "member", "room.registerAlias", ""},
		{"community", "denied", "room.metadata", "this key is denied access to the room"},
		{"restricted", "stranger", "room.metadata", roomplug.ErrRestricted.Error()},
		{"restricted", "member", "room.attendants", ""},
		{"restricted", "member", "room.registerAlias", roomplug.ErrAliasesOff.Error()},
		{"restricted", "denied", "room.metadata", "this key is denied access to the room"},
	}
	keys := map[string]feeds.KeyPair{"member": member, "stranger": stranger, "denied": denied}
	n := 0
	for _, r := range rows {
		if err := s.db.SetMode(ctx, r.mode); err != nil {
			t.Fatal(err)
		}
		c := mustDial(t, s, keys[r.who])
		var err error
		switch r.method {
		case "room.attendants", "tunnel.endpoints":
			var src *muxrpc.Source
			src, err = c.ep.Source(ctx, muxrpc.ParseMethod(r.method))
			if err == nil {
				_, err = src.Next(ctx)
				src.Close()
			}
		case "room.registerAlias":
			n++
			alias := fmt.Sprintf("alias%d", n)
			err = c.ep.Async(ctx, nil, muxrpc.ParseMethod(r.method), alias, roomdb.SignAlias(keys[r.who], s.ID(), alias))
		case "room.listAliases":
			err = c.ep.Async(ctx, nil, muxrpc.ParseMethod(r.method), member.ID.String())
		default:
			err = c.ep.Async(ctx, nil, muxrpc.ParseMethod(r.method))
		}
		if got := callErr(err); got != r.wantErr {
			t.Errorf("%s mode, %s calls %s: error %q, want %q", r.mode, r.who, r.method, got, r.wantErr)
		}
		c.ep.Close()
	}
}

func TestRegisterAlias(t *testing.T) {
	s := startRoom(t, func(c *Config) { c.Domain = "room.example" })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice, bob := newKey(t), newKey(t)
	for _, k := range []feeds.KeyPair{alice, bob} {
		if err := s.db.AddMember(ctx, k.ID, roomdb.RoleMember); err != nil {
			t.Fatal(err)
		}
	}
	ca, cb := mustDial(t, s, alice), mustDial(t, s, bob)
	cases := []struct {
		name    string
		c       *client
		args    []any
		wantErr string
	}{
		{"bad signature", ca, []any{"alice", "AAAA.sig.ed25519"}, "room.registerAlias: alias signature: not the base64 of 64 bytes"},
		{"foreign signature", cb, []any{"alice", roomdb.SignAlias(alice, s.ID(), "alice")}, "room.registerAlias: alias signature: does not verify for this room, user and alias"},
		{"signed for another room", ca, []any{"alice", roomdb.SignAlias(alice, bob.ID, "alice")}, "room.registerAlias: alias signature: does not verify for this room, user and alias"},
		{"bad name", ca, []any{"Alice", roomdb.SignAlias(alice, s.ID(), "Alice")}, `room.registerAlias: alias "Alice": only a-z and 0-9 are allowed`},
		{"one argument", ca, []any{"alice"}, "room.registerAlias: want 2 arguments, got 1"},
		{"good", ca, []any{"alice", roomdb.SignAlias(alice, s.ID(), "alice")}, ""},
		{"taken", cb, []any{"alice", roomdb.SignAlias(bob, s.ID(), "alice")}, `room.registerAlias: alias "alice" is already taken`},
	}
	for _, c := range cases {
		var url string
		err := c.c.ep.Async(ctx, &url, muxrpc.Method{"room", "registerAlias"}, c.args...)
		if callErr(err) != c.wantErr {
			t.Errorf("%s: %q, want %q", c.name, callErr(err), c.wantErr)
		}
		if err == nil && url != "https://room.example/alias/alice" {
			t.Errorf("%s: url %q", c.name, url)
		}
	}
	var names []string
	if err := cb.ep.Async(ctx, &names, muxrpc.Method{"room", "listAliases"}, alice.ID.String()); err != nil || len(names) != 1 || names[0] != "alice" {
		t.Fatalf("listAliases = %v, %v", names, err)
	}
	if err := cb.ep.Async(ctx, nil, muxrpc.Method{"room", "revokeAlias"}, "alice"); callErr(err) != `room.revokeAlias: no alias "alice" registered by you` {
		t.Fatalf("revoke by non-owner: %v", err)
	}
	if err := ca.ep.Async(ctx, nil, muxrpc.Method{"room", "revokeAlias"}, "alice"); err != nil {
		t.Fatalf("revoke by owner: %v", err)
	}
}

// TestSlowAttendant: a subscriber that never reads does not delay events
// to the others, and is disconnected once a write has waited longer than
// the write deadline.
func TestSlowAttendant(t *testing.T) {
	const writeTimeout = 3 * time.Second
	s := startRoom(t, func(c *Config) {
		c.WriteTimeout = writeTimeout
		c.EventQueue = 1 << 20
		c.KeepAlive = time.Hour
		c.sendBuffer = 4096
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var stall *stallConn
	slowKey := newKey(t)
	slow, err := dial(ctx, s, slowKey, dialOpts{rcvBuf: 4096, wrap: func(c net.Conn) net.Conn { stall = newStallConn(c); return stall }})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.ep.Close()
	if _, err := slow.subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	stall.stopReading()

	fast := mustDial(t, s, newKey(t))
	vf, err := fast.subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Churners toggle their presence to make events.
	const nChurn = 16
	churn := make([]*client, nChurn)
	for i := range churn {
		churn[i] = mustDial(t, s, newKey(t))
	}
	dropped := func() bool { return metricValue(s.metrics.drops.WithLabelValues("write-timeout")) >= 1 }
	var worst time.Duration
	rounds := 0
	for !dropped() {
		if ctx.Err() != nil {
			t.Fatalf("slow attendant never dropped (%d rounds)", rounds)
		}
		rounds++
		var wg sync.WaitGroup
		for _, c := range churn {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.ep.Async(ctx, nil, muxrpc.Method{"tunnel", "announce"})
				_ = c.ep.Async(ctx, nil, muxrpc.Method{"tunnel", "leave"})
			}()
		}
		wg.Wait()
		// One timed event: how long until the fast subscriber sees it.
		probe := churn[0]
		start := time.Now()
		if err := probe.ep.Async(ctx, nil, muxrpc.Method{"tunnel", "announce"}); err != nil {
			t.Fatal(err)
		}
		if !vf.waitFor(10*time.Second, func(set map[string]bool) bool { return set[probe.kp.ID.String()] }) {
			t.Fatal("fast subscriber did not get joined")
		}
		worst = max(worst, time.Since(start))
		_ = probe.ep.Async(ctx, nil, muxrpc.Method{"tunnel", "leave"})
	}
	t.Logf("slow attendant dropped after %d rounds; worst joined latency for the fast subscriber %v", rounds, worst)
	if worst > writeTimeout/2 {
		t.Fatalf("the fast subscriber waited %v for an event (write deadline %v): the slow one delays it", worst, writeTimeout)
	}
	if !vf.waitFor(10*time.Second, func(set map[string]bool) bool { return !set[slowKey.ID.String()] }) {
		t.Fatal("others were not told the slow attendant left")
	}
	if _, errs := vf.snapshot(); len(errs) > 0 {
		t.Fatalf("protocol errors: %v", errs)
	}
}

// TestVanishedAttendant: a peer whose connection silently stops carrying
// anything (no FIN) is announced left within two keepalive intervals.
func TestVanishedAttendant(t *testing.T) {
	const keepalive = 300 * time.Millisecond
	s := startRoom(t, func(c *Config) { c.KeepAlive = keepalive })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs := mustDial(t, s, newKey(t))
	vo, err := obs.subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var stall *stallConn
	gone := newKey(t)
	c, err := dial(ctx, s, gone, dialOpts{wrap: func(c net.Conn) net.Conn { stall = newStallConn(c); return stall }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.ep.Close()
	if _, err := c.subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if !vo.waitFor(5*time.Second, func(set map[string]bool) bool { return set[gone.ID.String()] }) {
		t.Fatal("observer did not see the attendant")
	}
	// Idle but alive: still present after several intervals.
	time.Sleep(4 * keepalive)
	if set, _ := vo.snapshot(); !set[gone.ID.String()] {
		t.Fatal("an idle peer that answers pings was dropped")
	}
	stall.stopReading()
	stall.stopWriting()
	start := time.Now()
	if !vo.waitFor(20*time.Second, func(set map[string]bool) bool { return !set[gone.ID.String()] }) {
		t.Fatal("vanished attendant never left")
	}
	took := time.Since(start)
	t.Logf("vanished attendant left after %v (keepalive %v)", took, keepalive)
	if took > 3*keepalive+2*time.Second {
		t.Fatalf("left after %v, want within about 2 keepalive intervals", took)
	}
}

// TestAttendantsChurn: 200 clients join and leave at random while
// subscribed; at the end every subscriber's view equals the truth.
func TestAttendantsChurn(t *testing.T) {
	const n = 200
	s := startRoom(t, func(c *Config) { c.MaxPending = 64 })
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	type member struct {
		kp   feeds.KeyPair
		c    *client
		v    *view
		live bool
	}
	ms := make([]*member, n)
	for i := range ms {
		ms[i] = &member{kp: newKey(t)}
	}
	var wg sync.WaitGroup
	errc := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 7))
			rounds := 1 + r.IntN(3)
			for k := range rounds {
				sem <- struct{}{}
				c, err := dial(ctx, s, m.kp, dialOpts{})
				if err == nil {
					m.c = c
					m.v, err = c.subscribe(ctx)
				}
				<-sem
				if err != nil {
					errc <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				time.Sleep(time.Duration(r.IntN(50)) * time.Millisecond)
				last := k == rounds-1
				if !last || r.IntN(3) == 0 {
					m.c.ep.Close()
					<-m.v.ended
					m.live = false
					continue
				}
				m.live = true
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	truth := map[string]bool{}
	for _, m := range ms {
		if m.live {
			truth[m.kp.ID.String()] = true
		}
	}
	t.Cleanup(func() {
		for _, m := range ms {
			if m.c != nil {
				m.c.ep.Close()
			}
		}
	})
	equal := func(set map[string]bool) bool {
		if len(set) != len(truth) {
			return false
		}
		for k := range truth {
			if !set[k] {
				return false
			}
		}
		return true
	}
	// The room's own set settles on the truth (closed clients are gone
	// once the room noticed), then every live subscriber agrees.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ids := s.att.IDs()
		set := map[string]bool{}
		for _, id := range ids {
			set[id.String()] = true
		}
		if equal(set) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("room set has %d, truth %d", len(set), len(truth))
		}
		time.Sleep(20 * time.Millisecond)
	}
	wrong := 0
	for _, m := range ms {
		if !m.live {
			continue
		}
		if !m.v.waitFor(10*time.Second, equal) {
			set, _ := m.v.snapshot()
			t.Errorf("subscriber %s sees %d attendants, truth %d", m.kp.ID, len(set), len(truth))
			wrong++
		}
		if _, errs := m.v.snapshot(); len(errs) > 0 {
			t.Errorf("subscriber %s: %v", m.kp.ID, errs)
		}
	}
	t.Logf("%d clients, %d live at the end, %d wrong views", n, len(truth), wrong)
}

func TestMetricsAndHealth(t *testing.T) {
	s := startRoom(t, func(c *Config) { c.DebugListen = "127.0.0.1:0"; c.HTTPListen = "127.0.0.1:0" })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b := mustDial(t, s, newKey(t)), mustDial(t, s, newKey(t))
	if _, err := b.subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if sent, got := transfer(t, s, a, b, 100_000); sent != got {
		t.Fatal("tunnel failed")
	}
	get := func(url string) string {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", url, resp.Status)
		}
		return string(body)
	}
	m := get("http://" + s.DebugAddr() + "/metrics")
	for _, want := range []string{
		"room_connections 2", "room_attendants 1", "room_tunnels_total 1", "room_tunnels_open 0",
		`room_handshakes_total{result="ok",transport="net"} 2`, `room_handshakes_total{result="ok",transport="ws"} 0`, "room_tunnel_bytes_total",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if h := get("http://" + s.HTTPAddr() + "/healthz"); !strings.Contains(h, `"status":"ok"`) {
		t.Fatalf("health page: %s", h)
	}
}

// TestReloadLimits: limits lowered at run time (SIGHUP in `room serve`)
// apply to the next connection.
func TestReloadLimits(t *testing.T) {
	s := startRoom(t, func(c *Config) { c.LimitLoopback = true; c.MaxConnsPerIP = 8 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mustDial(t, s, newKey(t))
	next := *s.live()
	next.MaxConnsPerIP = 1
	if err := s.Reload(next); err != nil {
		t.Fatal(err)
	}
	bad := next
	bad.MaxConns = 0
	if err := s.Reload(bad); err == nil {
		t.Fatal("invalid limits accepted")
	}
	c := mustDial(t, s, newKey(t))
	if err := c.ep.Async(ctx, nil, muxrpc.Method{"room", "metadata"}); callErr(err) != "room limit: at most 1 connections per IP address" {
		t.Fatalf("after reload: %v", err)
	}
}

func TestSecondRoomOnSameRepoRefused(t *testing.T) {
	s := startRoom(t, nil)
	cfg := *s.live()
	cfg.Listen = "127.0.0.1:0"
	s2, err := New(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	err = s2.Serve(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "another room is running") {
		t.Fatalf("second room on the same repo: %v", err)
	}
}
