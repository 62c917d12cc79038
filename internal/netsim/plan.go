package netsim

import (
	"crypto/sha256"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"
)

// Config describes a scenario. Every random choice of the plan is drawn
// from Seed.
type Config struct {
	Seed    uint64
	Nodes   int // honest nodes (real sbot nodes)
	Hostile int // hostile nodes (see hostile.go), at most 2 kinds taken in turn
	Hops    int // the honest nodes' --hops
	// Messages each honest node publishes (posts, besides its contact
	// messages), spread over PublishFor at a rate of its own.
	Messages   int
	PublishFor time.Duration
	// Follows: each node follows a number of feeds drawn from a power law
	// with this mean (at least 1), chosen by popularity (Zipf, exponent
	// Alpha: a few popular feeds, many small ones).
	MeanFollows int
	Alpha       float64
	// Blocks: this many nodes each block one feed within their hops.
	Blocks int
	// Faults, during FaultsFor: Offline is the fraction of honest nodes
	// offline at any time (rotated every OfflineSlot; a third of those
	// stops are kills: crashes, see Sim.stop); Partitions
	// splits of the network in two halves, each healed after PartitionFor;
	// LossEvery: every so often one connection somewhere is lost.
	FaultsFor    time.Duration
	Offline      float64
	OfflineSlot  time.Duration
	Partitions   int
	PartitionFor time.Duration
	LossEvery    time.Duration
	// Links: one-way latency drawn per pair of hosts in [LatencyMin,
	// LatencyMax]; Bandwidth per direction in bytes/s (0: unlimited).
	LatencyMin, LatencyMax time.Duration
	Bandwidth              int64
	// Gossip: every DialEvery each node with fewer than Degree
	// connections dials a peer (half the time one it follows); one with Degree or more
	// drops one of them and dials with probability Rotate (drawn in the
	// plan). Dials go on after the faults until the network converges (or
	// Deadline).
	Degree    int
	DialEvery time.Duration
	Rotate    float64
	// Attacks: each hostile node attacks a random honest node every
	// AttackEvery during FaultsFor.
	AttackEvery time.Duration
	// RoomOnly: the first RoomOnly honest nodes listen on nothing
	// (--listen off) and are reached only through a room (cmd/room's
	// server, on the simulated network as RoomHost: a partition leaves it
	// in group 0), which every honest node then joins. Hostile nodes
	// attack only the others.
	RoomOnly int
	// Deadline bounds the whole run; Stall fails the run when no honest
	// node gained a message for this long before convergence.
	Deadline time.Duration
	Stall    time.Duration
}

// EventKind says what an Event does.
type EventKind int

const (
	EvPublish   EventKind = iota // Node publishes a post
	EvStop                       // Node shuts down cleanly
	EvKill                       // Node crashes: network cut, unsynced writes lost
	EvStart                      // Node starts again from its store
	EvPartition                  // Groups splits the network
	EvHeal                       // the partition ends
	EvDial                       // Node dials Peer
	EvLoss                       // one connection of Node is lost
	EvAttack                     // hostile Node attacks Peer with Attack
)

var kindNames = [...]string{"publish", "stop", "kill", "start", "partition", "heal", "dial", "loss", "attack"}

func (k EventKind) String() string { return kindNames[k] }

// Attack is what a hostile node does on one connection.
type Attack int

const (
	AttackForged  Attack = iota // a message of an honest feed with a bad signature
	AttackFork                  // the other branch of its own forked feed
	AttackGarbage               // garbage frames inside the box stream
	AttackFlood                 // thousands of stream opens
)

var attackNames = [...]string{"forged", "fork", "garbage", "flood"}

func (a Attack) String() string { return attackNames[a] }

// Event is one scheduled action, At after the start of the run.
type Event struct {
	At     time.Duration
	Kind   EventKind
	Node   int // index in Plan.Hosts
	Peer   int
	Rotate bool // EvDial: drop a connection first if at Degree
	Attack Attack
	Groups []int // EvPartition: group per host
}

func (e Event) String() string {
	s := fmt.Sprintf("%8.3fs %-9s %d", e.At.Seconds(), e.Kind, e.Node)
	switch e.Kind {
	case EvDial:
		s += fmt.Sprintf(" -> %d rotate=%v", e.Peer, e.Rotate)
	case EvAttack:
		s += fmt.Sprintf(" -> %d %s", e.Peer, e.Attack)
	case EvPartition:
		s += fmt.Sprint(" ", e.Groups)
	}
	return s
}

// Plan is the whole workload and fault schedule of a run, drawn from the
// seed: the same Config gives the same Plan.
type Plan struct {
	Config Config
	// Hosts: honest nodes first (0..Nodes-1), then the hostile ones.
	Hosts   []string
	Follows [][]int // honest node -> the nodes it follows
	Blocks  [][]int // honest node -> the nodes it blocks
	Latency map[[2]int]time.Duration
	Events  []Event // sorted by At
}

// Hostile reports whether host i is a hostile node.
func (p *Plan) Hostile(i int) bool { return i >= p.Config.Nodes }

// NewPlan draws the plan of c.
func NewPlan(c Config) *Plan {
	r := rand.New(rand.NewPCG(c.Seed, 0x6e657473696d)) // "netsim"
	n, total := c.Nodes, c.Nodes+c.Hostile
	p := &Plan{Config: c, Latency: map[[2]int]time.Duration{}}
	for i := range total {
		if i < n {
			p.Hosts = append(p.Hosts, fmt.Sprintf("n%03d.sim", i))
		} else {
			p.Hosts = append(p.Hosts, fmt.Sprintf("h%03d.sim", i-n))
		}
	}
	for i := range total {
		for j := i + 1; j < total; j++ {
			span := c.LatencyMax - c.LatencyMin
			d := c.LatencyMin
			if span > 0 {
				d += time.Duration(r.Int64N(int64(span)))
			}
			p.Latency[[2]int{i, j}] = d
		}
	}
	p.drawGraph(r)
	p.drawEvents(r)
	return p
}

// drawGraph draws the follow graph: out-degrees from a power law, targets
// by Zipf popularity over a random ranking of the nodes.
func (p *Plan) drawGraph(r *rand.Rand) {
	c := p.Config
	n := c.Nodes
	rank := r.Perm(n) // rank[k] is the k-th most popular node
	weights := make([]float64, n)
	var sum float64
	for k := range n {
		weights[k] = 1 / math.Pow(float64(k+1), c.Alpha)
		sum += weights[k]
	}
	pick := func() int {
		x := r.Float64() * sum
		for k, w := range weights {
			if x < w {
				return rank[k]
			}
			x -= w
		}
		return rank[n-1]
	}
	p.Follows = make([][]int, n)
	p.Blocks = make([][]int, n)
	for i := range n {
		// Pareto out-degree with the given mean (shape 2: mean = 2*xm).
		xm := float64(max(c.MeanFollows, 1)) / 2
		k := int(math.Round(xm / math.Sqrt(1-r.Float64())))
		k = min(max(k, 1), n-1)
		set := map[int]bool{}
		for tries := 0; len(set) < k && tries < 50*k; tries++ {
			if j := pick(); j != i {
				set[j] = true
			}
		}
		p.Follows[i] = sortedKeys(set)
	}
	// Blocks: a node blocks a feed at hop 2 (one its friends follow), so
	// that the block is what keeps it out.
	for _, i := range r.Perm(n)[:min(c.Blocks, n)] {
		hops := p.hopsOf(i, 2)
		var cands []int
		for f, h := range hops {
			if h == 2 {
				cands = append(cands, f)
			}
		}
		if len(cands) == 0 {
			continue
		}
		sort.Ints(cands)
		p.Blocks[i] = []int{cands[r.IntN(len(cands))]}
	}
}

// hopsOf is the honest feeds within max follow hops of node i (i at 0),
// breadth first, never into a feed i blocks: what contacts.Graph.Hops
// computes from the node's contact messages.
func (p *Plan) hopsOf(i, max int) map[int]int {
	out := map[int]int{i: 0}
	frontier := []int{i}
	for h := 1; h <= max; h++ {
		var next []int
		for _, a := range frontier {
			for _, b := range p.Follows[a] {
				if _, ok := out[b]; ok || slices.Contains(p.Blocks[i], b) {
					continue
				}
				out[b] = h
				next = append(next, b)
			}
		}
		frontier = next
	}
	return out
}

// Expected is what honest node i must hold at quiescence: every feed within
// its hops.
func (p *Plan) Expected(i int) map[int]int { return p.hopsOf(i, p.Config.Hops) }

// drawEvents draws the publishing, fault, gossip and attack schedule.
func (p *Plan) drawEvents(r *rand.Rand) {
	c := p.Config
	n := c.Nodes
	var ev []Event
	add := func(e Event) { ev = append(ev, e) }
	// Publishing: node i publishes Messages posts evenly over a span of
	// its own (a third of PublishFor to all of it), with jitter.
	for i := range n {
		span := c.PublishFor/3 + time.Duration(r.Int64N(int64(c.PublishFor*2/3)+1))
		step := span / time.Duration(max(c.Messages, 1))
		for k := range c.Messages {
			at := time.Duration(k)*step + time.Duration(r.Int64N(int64(step)+1))
			add(Event{At: at, Kind: EvPublish, Node: i})
		}
	}
	// Offline rotation.
	if c.Offline > 0 && c.OfflineSlot > 0 {
		per := int(math.Round(c.Offline * float64(n)))
		off := map[int]bool{}
		for at := time.Duration(0); at < c.FaultsFor; at += c.OfflineSlot {
			next := map[int]bool{}
			for _, i := range r.Perm(n)[:per] {
				next[i] = true
			}
			for _, i := range sortedKeys(off) {
				if !next[i] {
					add(Event{At: at, Kind: EvStart, Node: i})
				}
			}
			for _, i := range sortedKeys(next) {
				if !off[i] {
					kind := EvStop
					if r.IntN(3) == 0 {
						kind = EvKill
					}
					add(Event{At: at, Kind: kind, Node: i})
				}
			}
			off = next
		}
		for _, i := range sortedKeys(off) {
			add(Event{At: c.FaultsFor, Kind: EvStart, Node: i})
		}
	}
	// Partitions, spread over the fault phase.
	for k := range c.Partitions {
		at := c.FaultsFor * time.Duration(k) / time.Duration(c.Partitions)
		at += time.Duration(r.Int64N(int64(c.FaultsFor/time.Duration(c.Partitions*4)) + 1))
		groups := make([]int, len(p.Hosts))
		for _, i := range r.Perm(len(p.Hosts))[:len(p.Hosts)/2] {
			groups[i] = 1
		}
		add(Event{At: at, Kind: EvPartition, Groups: groups})
		add(Event{At: min(at+c.PartitionFor, c.FaultsFor), Kind: EvHeal})
	}
	// Connection loss.
	if c.LossEvery > 0 {
		for at := c.LossEvery; at < c.FaultsFor; at += c.LossEvery {
			add(Event{At: at, Kind: EvLoss, Node: r.IntN(n)})
		}
	}
	// Gossip dials, until the deadline: each node starts at a random
	// offset within a period.
	if c.DialEvery > 0 {
		for i := range n {
			for at := time.Duration(r.Int64N(int64(c.DialEvery))); at < c.Deadline; at += c.DialEvery {
				// Half the dials go to a feed the node follows (as the
				// daemon's scheduler prefers them), the rest anywhere.
				var j int
				if f := p.Follows[i]; len(f) > 0 && r.IntN(2) == 0 {
					j = f[r.IntN(len(f))]
				} else {
					j = r.IntN(n - 1)
					if j >= i {
						j++
					}
				}
				add(Event{At: at, Kind: EvDial, Node: i, Peer: j, Rotate: r.Float64() < c.Rotate})
			}
		}
	}
	// Attacks.
	if c.AttackEvery > 0 {
		for h := range c.Hostile {
			kinds := []Attack{AttackForged, AttackFork}
			if h%2 == 1 {
				kinds = []Attack{AttackGarbage, AttackFlood}
			}
			victim := c.RoomOnly + r.IntN(n-c.RoomOnly) // every fork attack of h goes to one node
			k := 0
			for at := c.AttackEvery / 2; at < c.FaultsFor; at += c.AttackEvery {
				e := Event{At: at, Kind: EvAttack, Node: n + h, Peer: c.RoomOnly + r.IntN(n-c.RoomOnly), Attack: kinds[k%len(kinds)]}
				if e.Attack == AttackFork {
					e.Peer = victim
				}
				add(e)
				k++
			}
		}
	}
	sort.SliceStable(ev, func(a, b int) bool { return ev[a].At < ev[b].At })
	p.Events = ev
}

// Digest is a hash of the whole plan: equal seeds give equal digests.
func (p *Plan) Digest() string {
	var b strings.Builder
	fmt.Fprintln(&b, p.Hosts, p.Follows, p.Blocks)
	for i := range p.Hosts {
		for j := i + 1; j < len(p.Hosts); j++ {
			fmt.Fprint(&b, p.Latency[[2]int{i, j}], " ")
		}
	}
	for _, e := range p.Events {
		fmt.Fprintln(&b, e)
	}
	return fmt.Sprintf("%x", sha256.Sum256([]byte(b.String())))
}

// RoomHost is the room's host name (Config.RoomOnly).
const RoomHost = "room.sim"

// Link returns the link between hosts a and b (by name). A link to the
// room has the middle latency of the range.
func (p *Plan) Link(a, b string) Link {
	if a == RoomHost || b == RoomHost {
		return Link{Latency: (p.Config.LatencyMin + p.Config.LatencyMax) / 2, Bandwidth: p.Config.Bandwidth}
	}
	i, j := slices.Index(p.Hosts, a), slices.Index(p.Hosts, b)
	if i < 0 || j < 0 {
		return Link{}
	}
	if i > j {
		i, j = j, i
	}
	return Link{Latency: p.Latency[[2]int{i, j}], Bandwidth: p.Config.Bandwidth}
}

func sortedKeys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
