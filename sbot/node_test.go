package sbot

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/sbot/client"
	"github.com/cask-ssb/cask/secretstream"
)

// startNode runs an in-process node on a temp repo.
func startNode(t *testing.T) (*Node, *client.Client) {
	t.Helper()
	return startNodeWith(t, t.TempDir(), nil)
}

// startNodeWith runs an in-process node on repo, with edit applied to its
// configuration; it returns once the node is Ready.
func startNodeWith(t *testing.T, repo string, edit func(*Config)) (*Node, *client.Client) {
	t.Helper()
	cfg := Defaults(repo)
	cfg.Listen = "127.0.0.1:0"
	if edit != nil {
		edit(&cfg)
	}
	n, err := New(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	var stopped bool
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	t.Cleanup(stop)
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	c, err := client.DialRepo(context.Background(), cfg.Repo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return n, c
}

// feedOf makes n signed messages of a new feed.
func feedOf(t *testing.T, n int) (feeds.KeyPair, []*classic.Message) {
	t.Helper()
	kp, err := feeds.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*classic.Message
	var state *classic.FeedState
	for i := 1; i <= n; i++ {
		m, err := classic.Create(kp.Private, state, float64(1700000000000+i), classic.RawJSON(fmt.Sprintf(`{"type":"post","text":"msg %d"}`, i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		s := classic.StateAfter(m)
		state = &s
		msgs = append(msgs, m)
	}
	return kp, msgs
}

func TestAdd(t *testing.T) {
	n, c := startNode(t)
	kp, msgs := feedOf(t, 4)
	ctx := context.Background()
	add := func(v json.RawMessage) error {
		var out json.RawMessage
		return c.Endpoint().Async(ctx, &out, muxrpc.Method{"add"}, v)
	}
	if err := add(msgs[0].Compact); err != nil {
		t.Fatalf("add first: %v", err)
	}
	// As a KVT record too.
	kvt := fmt.Sprintf(`{"key":%q,"value":%s,"timestamp":1}`, msgs[1].Key.String(), msgs[1].Compact)
	if err := add(json.RawMessage(kvt)); err != nil {
		t.Fatalf("add KVT: %v", err)
	}
	bad := strings.Replace(string(msgs[2].Compact), "msg 3", "msg X", 1)
	// Another message 2 of the same feed, validly signed: a fork.
	st1 := classic.StateAfter(msgs[0])
	fork, err := classic.Create(kp.Private, &st1, 1700000000002, classic.RawJSON(`{"type":"post","text":"forked"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		msg  string
		want string
	}{
		{"signature", bad, "signature"},
		{"gap", string(msgs[3].Compact), "sequence"},
		{"duplicate", string(msgs[1].Compact), "already stored"},
		{"fork", string(fork.Compact), "fork"},
		{"wrong key", fmt.Sprintf(`{"key":%q,"value":%s}`, msgs[0].Key.String(), msgs[2].Compact), "does not match"},
		{"garbage", `{"hello":1}`, "invalid message"},
	}
	for _, tc := range tests {
		err := add(json.RawMessage(tc.msg))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	if seq, _, _, _ := n.Store().Latest(msgs[0].Author); seq != 2 {
		t.Fatalf("latest = %d after 2 valid adds", seq)
	}
	if err := add(msgs[2].Compact); err != nil {
		t.Fatalf("add third: %v", err)
	}
}

// fakePeer serves createHistoryStream of its own feed over SHS: the
// messages it is given, whatever they are.
func fakePeer(t *testing.T, kp feeds.KeyPair, items []json.RawMessage) (addr string, closed chan struct{}) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	caps, _ := Defaults("").CapsKey()
	l := secretstream.Listen(raw, secretstream.AppKey(caps), kp.Private, nil)
	t.Cleanup(func() { l.Close() })
	closed = make(chan struct{})
	mux := muxrpc.NewMux()
	mux.RegisterSource(muxrpc.Method{"createHistoryStream"}, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		for _, it := range items {
			if err := out.Write(it); err != nil {
				return nil
			}
		}
		<-ctx.Done() // live: keep the stream open
		return nil
	})
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		sc := c.(*secretstream.Conn)
		e := muxrpc.NewEndpoint(context.Background(), sc, mux, muxrpc.Options{RemoteKey: sc.RemoteKey()})
		<-e.Done()
		close(closed)
	}()
	return raw.Addr().String(), closed
}

// TestInvalidPeerDropped: a peer that sends an invalid message is
// disconnected, and the valid messages it sent before are kept.
func TestInvalidPeerDropped(t *testing.T) {
	n, _ := startNode(t)
	kp, msgs := feedOf(t, 5)
	items := []json.RawMessage{msgs[0].Compact, msgs[1].Compact, msgs[2].Compact,
		json.RawMessage(strings.Replace(string(msgs[3].Compact), "msg 4", "msg 4!", 1)), msgs[4].Compact}
	addr, closed := fakePeer(t, kp, items)
	if err := n.Connect(context.Background(), addr, ed25519.PublicKey(kp.ID[:])); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("the peer that sent an invalid message was not disconnected")
	}
	seq, key, ok, err := n.Store().Latest(kp.ID)
	if err != nil || !ok || seq != 3 || key != msgs[2].Key {
		t.Fatalf("latest = %d %v %v %v, want the 3 valid messages kept", seq, key, ok, err)
	}
}

// TestReplicatesPeerFeed: the valid feed of a connected peer is stored.
func TestReplicatesPeerFeed(t *testing.T) {
	n, _ := startNode(t)
	kp, msgs := feedOf(t, 20)
	var items []json.RawMessage
	for _, m := range msgs {
		items = append(items, m.Compact)
	}
	addr, _ := fakePeer(t, kp, items)
	if err := n.Connect(context.Background(), addr, ed25519.PublicKey(kp.ID[:])); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		seq, _, _, _ := n.Store().Latest(kp.ID)
		if seq == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicated %d of 20", seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := n.Status(); len(st.Peers) != 1 || st.Peers[0].ID != kp.ID.String() || st.Peers[0].Direction != "out" {
		t.Fatalf("status peers = %+v", st.Peers)
	}
}

// tcpAddr returns the node's multiserver address.
func tcpAddr(t *testing.T, n *Node) string {
	t.Helper()
	for _, l := range n.Listen() {
		if strings.HasPrefix(l, "net:") {
			return l
		}
	}
	t.Fatal("node has no TCP address")
	return ""
}

func waitLatest(t *testing.T, n *Node, feed feeds.FeedRef, seq int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, _, _, _ := n.Store().Latest(feed)
		if got == seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s at %d, want %d", feed, got, seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEBTGoToGo: two daemons replicate each other's feeds over EBT, then
// live.
func TestEBTGoToGo(t *testing.T) {
	a, ca := startNode(t)
	b, cb := startNode(t)
	ctx := context.Background()
	for i := 0; i < 120; i++ {
		if _, err := ca.Publish(ctx, map[string]any{"type": "post", "text": fmt.Sprint("a", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 80; i++ {
		if _, err := cb.Publish(ctx, map[string]any{"type": "post", "text": fmt.Sprint("b", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.ConnectAddress(ctx, tcpAddr(t, b)); err != nil {
		t.Fatal(err)
	}
	waitLatest(t, b, a.ID(), 120)
	waitLatest(t, a, b.ID(), 80)
	if _, err := cb.Publish(ctx, map[string]any{"type": "post", "text": "live"}); err != nil {
		t.Fatal(err)
	}
	waitLatest(t, a, b.ID(), 81)
	// The copies are identical.
	for seq := int64(1); seq <= 81; seq++ {
		ra, err := a.Store().GetBySequence(b.ID(), seq)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := b.Store().GetBySequence(b.ID(), seq)
		if ra.Key != rb.Key || string(ra.Value) != string(rb.Value) {
			t.Fatalf("seq %d differs", seq)
		}
	}
}

// TestEBTProtocol drives ebt.replicate by hand: version check, the server
// sends notes first, an unknown feed is answered with -1, our feed is sent
// when asked, and an invalid message gets the peer dropped.
func TestEBTProtocol(t *testing.T) {
	n, c := startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		if _, err := c.Publish(ctx, map[string]any{"type": "post", "text": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	caps, _ := Defaults("").CapsKey()
	kp, msgs := feedOf(t, 2)
	dial := func() *muxrpc.Endpoint {
		sc, err := secretstream.Dial(ctx, "tcp", strings.TrimPrefix(strings.Split(tcpAddr(t, n), "~")[0], "net:"), secretstream.AppKey(caps), kp.Private, ed25519.PublicKey(n.ID().PublicKey()))
		if err != nil {
			t.Fatal(err)
		}
		e := muxrpc.NewEndpoint(ctx, sc, muxrpc.NewMux(), muxrpc.Options{RemoteKey: sc.RemoteKey()})
		t.Cleanup(func() { e.Close() })
		return e
	}
	e := dial()

	// Wrong version.
	in, _, err := e.Duplex(ctx, muxrpc.Method{"ebt", "replicate"}, map[string]any{"version": 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Next(ctx); err == nil || !strings.Contains(err.Error(), "expected ebt.replicate({version: 3})") {
		t.Fatalf("version 2: %v", err)
	}

	in, out, err := e.Duplex(ctx, muxrpc.Method{"ebt", "replicate"}, map[string]any{"version": 3, "format": "classic"})
	if err != nil {
		t.Fatal(err)
	}
	var notes map[string]int64
	if err := in.Decode(ctx, &notes); err != nil {
		t.Fatal(err)
	}
	if notes[n.ID().String()] != 6 || notes[kp.ID.String()] != 0 {
		t.Fatalf("server notes = %v, want our feed at 3 (6) and the peer's at 0", notes)
	}
	unknown := feeds.FeedRef{7, 7, 7}
	if err := out.Write(map[string]int64{n.ID().String(): 2, unknown.String(): 0, kp.ID.String(): 1}); err != nil {
		t.Fatal(err)
	}
	var gotUnknown bool
	var seqs []int64
	for !gotUnknown || len(seqs) < 2 {
		b, err := in.Next(ctx)
		if err != nil {
			t.Fatalf("after %v: %v", seqs, err)
		}
		if bytes.Contains(b, []byte(`"signature"`)) {
			var m struct{ Sequence int64 }
			json.Unmarshal(b, &m)
			seqs = append(seqs, m.Sequence)
			continue
		}
		var nn map[string]int64
		json.Unmarshal(b, &nn)
		if v, ok := nn[unknown.String()]; ok && v == -1 {
			gotUnknown = true
		}
	}
	if seqs[0] != 2 || seqs[1] != 3 {
		t.Fatalf("sent %v, want sequences 2 and 3 (we said we have 1)", seqs)
	}
	// Our messages go in; then a forged one gets us dropped.
	out.Write(json.RawMessage(msgs[0].Compact))
	waitLatest(t, n, kp.ID, 1)
	out.Write(json.RawMessage(strings.Replace(string(msgs[1].Compact), "msg 2", "msg 2!", 1)))
	select {
	case <-e.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("peer that sent a forged message was not dropped")
	}
	if seq, _, _, _ := n.Store().Latest(kp.ID); seq != 1 {
		t.Fatalf("latest %d, want the valid message kept", seq)
	}
	var clock map[string]int64
	if err := c.Endpoint().Async(ctx, &clock, muxrpc.Method{"ebt", "clock"}); err != nil || clock[n.ID().String()] != 3 || clock[kp.ID.String()] != 1 {
		t.Fatalf("ebt.clock = %v, %v", clock, err)
	}
}

// TestFollowGraphReplication: a followed feed is fetched from a peer that
// holds it (not only from its author); a blocked peer is refused.
func TestFollowGraphReplication(t *testing.T) {
	a, ca := startNode(t)
	b, _ := startNode(t)
	c, cc := startNode(t)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if _, err := cc.Publish(ctx, map[string]any{"type": "post", "text": fmt.Sprint("c", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// B gets C's feed by connecting to C.
	if err := b.ConnectAddress(ctx, tcpAddr(t, c)); err != nil {
		t.Fatal(err)
	}
	waitLatest(t, b, c.ID(), 10)
	// A talks only to B; C's feed does not come while A does not follow C.
	if err := a.ConnectAddress(ctx, tcpAddr(t, b)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if seq, _, _, _ := a.Store().Latest(c.ID()); seq != 0 {
		t.Fatalf("A has %d of C's feed without following C", seq)
	}
	// A follows C: the running session asks B for it.
	if _, err := ca.Publish(ctx, map[string]any{"type": "contact", "contact": c.ID().String(), "following": true}); err != nil {
		t.Fatal(err)
	}
	var hops map[string]int
	if err := ca.Endpoint().Async(ctx, &hops, muxrpc.Method{"friends", "hops"}); err != nil || hops[c.ID().String()] != 1 {
		t.Fatalf("friends.hops = %v, %v", hops, err)
	}
	var following bool
	if err := ca.Endpoint().Async(ctx, &following, muxrpc.Method{"friends", "isFollowing"}, map[string]string{"source": a.ID().String(), "dest": c.ID().String()}); err != nil || !following {
		t.Fatalf("friends.isFollowing = %v, %v", following, err)
	}
	waitLatest(t, a, c.ID(), 10)

	// A blocks C: C's connection is refused and C's feed is no longer offered.
	if _, err := ca.Publish(ctx, map[string]any{"type": "contact", "contact": c.ID().String(), "blocking": true}); err != nil {
		t.Fatal(err)
	}
	if err := c.ConnectAddress(ctx, tcpAddr(t, a)); err == nil {
		t.Fatal("a blocked peer could connect")
	}
	if (ebtPolicy{a}).Replicates(b.ID(), c.ID()) {
		t.Fatal("a blocked feed is still replicated")
	}
}

// TestPeersReconnect: a configured peer is dialled at start and again
// after it restarts.
func TestPeersReconnect(t *testing.T) {
	bRepo := t.TempDir()
	startB := func(listen string) (*Node, context.CancelFunc, chan error) {
		cfg := Defaults(bRepo)
		cfg.Listen = listen
		n, err := New(Options{Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Serve(ctx) }()
		for n.TCPAddr() == "" {
			time.Sleep(10 * time.Millisecond)
		}
		return n, cancel, done
	}
	b, stopB, doneB := startB("127.0.0.1:0")
	bAddr := tcpAddr(t, b)
	port := b.TCPAddr()

	cfg := Defaults(t.TempDir())
	cfg.Listen = "off"
	cfg.Peers = []string{bAddr}
	a, err := New(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- a.Serve(ctx) }()
	defer func() { cancel(); <-doneA }()
	sees := func(n *Node, id feeds.FeedRef) bool {
		for _, p := range n.Status().Peers {
			if p.ID == id.String() {
				return true
			}
		}
		return false
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("A to connect to B", func() bool { return sees(b, a.ID()) })
	stopB()
	<-doneB
	waitFor("A to notice B is gone", func() bool { return !sees(a, b.ID()) })
	b2, stopB2, doneB2 := startB(port)
	defer func() { stopB2(); <-doneB2 }()
	waitFor("A to reconnect to the restarted B", func() bool { return sees(b2, a.ID()) })
}

// TestBlobsThroughAPeer: A wants a blob only C has; A talks to B, B to C.
// B forwards A's want (one hop further), fetches the blob from C and
// announces it, and A fetches it from B.
func TestBlobsThroughAPeer(t *testing.T) {
	a, ca := startNode(t)
	b, _ := startNode(t)
	c, cc := startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := bytes.Repeat([]byte{1, 2, 3, 4, 5}, 50000)
	snk, err := cc.Endpoint().Sink(ctx, muxrpc.Method{"blobs", "add"})
	if err != nil {
		t.Fatal(err)
	}
	snk.WriteRaw(muxrpc.FlagBinary, data)
	if err := snk.Close(); err != nil {
		t.Fatal(err)
	}
	ref := feeds.BlobRef(sha256.Sum256(data))
	if err := b.ConnectAddress(ctx, tcpAddr(t, c)); err != nil {
		t.Fatal(err)
	}
	if err := a.ConnectAddress(ctx, tcpAddr(t, b)); err != nil {
		t.Fatal(err)
	}
	var has bool
	if err := ca.Endpoint().Async(ctx, &has, muxrpc.Method{"blobs", "want"}, ref.String()); err != nil || !has {
		t.Fatalf("want = %v, %v", has, err)
	}
	for name, n := range map[string]*Node{"A": a, "B (in between)": b} {
		if _, ok := n.blobs.Has(ref); !ok {
			t.Fatalf("%s does not hold the blob", name)
		}
	}
	src, err := ca.Endpoint().Source(ctx, muxrpc.Method{"blobs", "getSlice"}, map[string]any{"key": ref.String(), "start": 10, "end": 20})
	if err != nil {
		t.Fatal(err)
	}
	var slice []byte
	for body, err := range src.All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		slice = append(slice, body...)
	}
	if !bytes.Equal(slice, data[10:20]) {
		t.Fatalf("getSlice = %v", slice)
	}
	// A peer (not the owner) cannot add blobs.
	caps, _ := Defaults("").CapsKey()
	kp, _ := feeds.GenerateKeyPair(nil)
	pc, err := client.DialTCP(ctx, tcpAddr(t, a), kp, caps)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	psnk, err := pc.Endpoint().Sink(ctx, muxrpc.Method{"blobs", "add"})
	if err == nil {
		psnk.WriteRaw(muxrpc.FlagBinary, []byte("x"))
		err = psnk.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "not in list of allowed methods") {
		t.Fatalf("blobs.add as a peer: %v", err)
	}
}

// TestAddBatch: addBatch stores a whole array in order; the first invalid
// message ends it, the ones before it stay stored and the error says so;
// a repeated batch is all held.
func TestAddBatch(t *testing.T) {
	n, c := startNode(t)
	_, msgs := feedOf(t, 10)
	ctx := context.Background()
	addBatch := func(ms []json.RawMessage) (map[string]int, error) {
		var out map[string]int
		err := c.Endpoint().Async(ctx, &out, muxrpc.Method{"addBatch"}, ms)
		return out, err
	}
	raw := func(ms []*classic.Message) []json.RawMessage {
		var out []json.RawMessage
		for _, m := range ms {
			out = append(out, m.Compact)
		}
		return out
	}
	bad := json.RawMessage(strings.Replace(string(msgs[5].Compact), "msg 6", "msg X", 1))
	batch := append(append(raw(msgs[:5]), bad), raw(msgs[6:])...)
	if _, err := addBatch(batch); err == nil || !strings.Contains(err.Error(), "stored 5") || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("batch with a bad 6th: err = %v", err)
	}
	if seq, _, _, _ := n.Store().Latest(msgs[0].Author); seq != 5 {
		t.Fatalf("latest = %d, want 5", seq)
	}
	out, err := addBatch(raw(msgs))
	if err != nil || out["stored"] != 5 || out["held"] != 5 {
		t.Fatalf("full batch: %v, %v", out, err)
	}
	out, err = addBatch(raw(msgs))
	if err != nil || out["stored"] != 0 || out["held"] != 10 {
		t.Fatalf("repeated batch: %v, %v", out, err)
	}
}
