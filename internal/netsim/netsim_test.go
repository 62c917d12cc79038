package netsim

import (
	"context"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// logWriter sends slog lines to the test log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func testLog(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: level}))
}

func smallConfig() Config {
	return Config{
		Seed: 1, Nodes: 5, Hops: 2, Messages: 5, PublishFor: time.Second,
		MeanFollows: 2, Alpha: 1.2,
		LatencyMin: time.Millisecond, LatencyMax: 5 * time.Millisecond, Bandwidth: 1 << 20,
		Degree: 3, DialEvery: 300 * time.Millisecond, Rotate: 0.3,
		Deadline: 30 * time.Second, Stall: 10 * time.Second,
	}
}

func TestNetsimSmall(t *testing.T) {
	p := NewPlan(smallConfig())
	s, err := New(p, Options{Dir: t.TempDir(), Log: testLog(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background())
	t.Logf("\n%s", res.Table(p.Config.Nodes))
	if err != nil {
		t.Fatal(err)
	}
}

// config20 is the 20-node scenario: partitions, restarts (clean and
// killed), connection loss and two hostile nodes.
func config20(seed uint64) Config {
	return Config{
		Seed: seed, Nodes: 20, Hostile: 2, Hops: 2,
		Messages: 20, PublishFor: 8 * time.Second,
		MeanFollows: 3, Alpha: 1.1, Blocks: 3,
		FaultsFor: 10 * time.Second, Offline: 0.15, OfflineSlot: 2 * time.Second,
		Partitions: 2, PartitionFor: 2 * time.Second, LossEvery: time.Second,
		LatencyMin: time.Millisecond, LatencyMax: 20 * time.Millisecond, Bandwidth: 4 << 20,
		Degree: 4, DialEvery: 800 * time.Millisecond, Rotate: 0.2,
		AttackEvery: time.Second,
		Deadline:    110 * time.Second, Stall: 30 * time.Second,
	}
}

// TestNetsim20: 20 real nodes with partitions, restarts and two hostile
// nodes converge, and the final state passes every check.
func TestNetsim20(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a 20-node simulation")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := config20(20)
	if raceEnabled {
		c.Messages = 10 // the same faults, half the posts
	}
	p := NewPlan(c)
	s, err := New(p, Options{Dir: t.TempDir(), Log: testLog(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background())
	t.Logf("\n%s", res.Table(p.Config.Nodes))
	if err != nil {
		t.Fatal(err)
	}
	if res.Kills == 0 || res.Stops == 0 || res.Attacks == 0 {
		t.Errorf("the scenario lacked faults: %d kills, %d clean stops, %d attacks", res.Kills, res.Stops, res.Attacks)
	}
	// A forged message that reached a node (the hostile wrote it before
	// the node dropped it) must have been refused.
	if res.ForgedSent > 0 && res.Refused == 0 {
		t.Errorf("%d forged messages sent, none refused", res.ForgedSent)
	}
	// Bounded memory: the whole process, per node, stays within a small
	// multiple of a lone daemon's heap.
	if perNode := res.PeakHeap / uint64(p.Config.Nodes); perNode > 32<<20 {
		t.Errorf("peak heap %d MiB per node, want at most 32", perNode>>20)
	}
}

// TestNetsimReplay: the same seed gives the same plan (workload, faults and
// their times), the same delivered set on every node and the same
// deterministic counters; another seed gives another plan.
func TestNetsimReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: three simulations")
	}
	cfg := func(seed uint64) Config {
		c := config20(seed)
		c.Nodes, c.Messages, c.PublishFor, c.FaultsFor = 8, 8, 3*time.Second, 4*time.Second
		c.Offline, c.OfflineSlot, c.Partitions, c.PartitionFor = 0.25, time.Second, 1, time.Second
		c.Blocks, c.Deadline = 2, 60*time.Second
		return c
	}
	run := func(seed uint64) (*Plan, Result) {
		p := NewPlan(cfg(seed))
		s, err := New(p, Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Run(context.Background())
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, res.Table(p.Config.Nodes))
		}
		return p, res
	}
	p1, r1 := run(7)
	p2, r2 := run(7)
	if p1.Digest() != p2.Digest() {
		t.Errorf("seed 7 gave two plans: %s and %s", p1.Digest(), p2.Digest())
	}
	if !reflect.DeepEqual(r1.Digests, r2.Digests) {
		t.Errorf("seed 7 delivered different sets:\n%v\n%v", r1.Digests, r2.Digests)
	}
	type counters struct{ Published, Starts, Stops, Kills int64 }
	c1 := counters{r1.Published, r1.Starts, r1.Stops, r1.Kills}
	c2 := counters{r2.Published, r2.Starts, r2.Stops, r2.Kills}
	if c1 != c2 {
		t.Errorf("seed 7 gave different counters: %+v and %+v", c1, c2)
	}
	t.Logf("seed 7: plan %s…, %d events, counters %+v, delivered %v", p1.Digest()[:12], len(p1.Events), c1, r1.Digests)
	if p3 := NewPlan(cfg(8)); p3.Digest() == p1.Digest() {
		t.Error("seeds 7 and 8 gave the same plan")
	}
}

// TestNetsimRoom: nodes that listen on nothing meet the others only
// through a room, and the network still converges.
func TestNetsimRoom(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a simulation")
	}
	c := smallConfig()
	c.Nodes, c.RoomOnly, c.Seed = 6, 3, 3
	p := NewPlan(c)
	s, err := New(p, Options{Dir: t.TempDir(), Log: testLog(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background())
	t.Logf("\n%s", res.Table(p.Config.Nodes))
	if err != nil {
		t.Fatal(err)
	}
	if res.Tunnels == 0 {
		t.Error("no connection went through the room")
	}
	// The room is a host of the simulated network: its links (and the
	// tunnels spliced through it) carry the latency and faults.
	if sent := s.Network().SentBy(RoomHost); sent == 0 {
		t.Error("the room sent nothing over the simulated network")
	} else {
		t.Logf("the room sent %d bytes over the simulated links", sent)
	}
}
