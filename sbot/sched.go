package sbot

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/plugins/gossip"
	"github.com/cask-ssb/cask/plugins/service"
)

// The connection scheduler keeps up to --max-outgoing connections that
// the node dialled by itself, chosen from the address book (addrbook.go):
// peers we follow first, then (while some feed within --hops is missing
// from the store) the others: pubs, rooms' attendants, peers seen before.
// Each address backs off exponentially, with jitter, after a failed dial
// or a connection that ended at once. A connection that replicated
// nothing for a while makes room for a peer waiting for a slot (rotation),
// and a followed peer takes the slot of an idle one we do not follow. It
// never dials a peer we block, nor a peer connected or being dialled (the
// connection manager keeps one connection per peer whatever the
// transport). The configured, remembered and room peers have their own
// keepers (conns_keep.go) and do not count against the limit; the room
// client's dials of followed attendants do.

// SchedOptions tune the scheduler.
type SchedOptions struct {
	// Seed seeds the jitter and the tie-breaks; 0 takes a random seed.
	Seed uint64
	// Tick is how often the scheduler looks at its connections (default
	// 2 s); negative: only when a test calls step.
	Tick time.Duration
}

// schedPolicy is what the scheduler decides by.
type schedPolicy struct {
	Max int // --max-outgoing
	// Back-off after failures in a row: Base, doubling up to Cap, times a
	// factor drawn from [1-Jitter, 1+Jitter).
	Base, Cap time.Duration
	Jitter    float64
	// IdleAfter: an outgoing connection that replicated nothing for this
	// long makes room for a peer of its tier that waits and never failed.
	IdleAfter time.Duration
	// EvictAfter: a followed peer that waits takes the slot of a peer we
	// do not follow that replicated nothing for this long.
	EvictAfter time.Duration
	// Rest: a rotated peer is not dialled again for this long.
	Rest time.Duration
	// Short: a connection that ends sooner counts as a failed dial.
	Short time.Duration
}

func defaultSchedPolicy(max int) schedPolicy {
	return schedPolicy{
		Max: max, Base: 2 * time.Second, Cap: 30 * time.Minute, Jitter: 0.25,
		IdleAfter: 5 * time.Minute, EvictAfter: time.Minute, Rest: 30 * time.Minute, Short: 30 * time.Second,
	}
}

// backoff is the wait after failures in a row (at least 1); r in [0, 1)
// draws the jitter.
func (p schedPolicy) backoff(failures int, r float64) time.Duration {
	d := p.Base
	for i := 1; i < failures && d < p.Cap; i++ {
		d *= 2
	}
	d = min(d, p.Cap)
	return time.Duration(float64(d) * (1 + p.Jitter*(2*r-1)))
}

// schedCand is an address the scheduler may dial now: not connected, not
// being dialled, not blocked, not backing off.
type schedCand struct {
	Addr     feeds.Address
	Tier     int // 0: a peer we follow; 1: any other (a pub, an attendant)
	Hop      int // follow hops from us (noHop: none within --hops)
	Failures int // in a row
	LastSeen time.Time
	Rand     uint64 // tie-break
}

const noHop = 1 << 20

// schedConn is an outgoing connection the scheduler counts.
type schedConn struct {
	Peer feeds.FeedRef
	Tier int
	Idle time.Duration // since it last replicated a message (or opened)
}

// candLess orders candidates: followed first, then by follow hops, fewer
// failures, seen more recently (never seen last), then at random.
func candLess(a, b schedCand) int {
	return cmp.Or(
		cmp.Compare(a.Tier, b.Tier),
		cmp.Compare(a.Hop, b.Hop),
		cmp.Compare(a.Failures, b.Failures),
		-cmp.Compare(a.LastSeen.UnixNano(), b.LastSeen.UnixNano()),
		cmp.Compare(a.Rand, b.Rand),
	)
}

// plan picks, from the candidates, the ones to dial into the free slots
// (one address per peer, best first), and the connections to close so
// that the waiting candidates get a slot at the next step.
func (p schedPolicy) plan(cands []schedCand, conns []schedConn, free int) (dial []schedCand, evict []feeds.FeedRef) {
	cands = slices.Clone(cands)
	slices.SortStableFunc(cands, candLess)
	picked := map[feeds.FeedRef]bool{}
	used := make([]bool, len(conns))
	for _, c := range cands {
		if picked[c.Addr.Key] {
			continue
		}
		picked[c.Addr.Key] = true
		if free > 0 {
			dial = append(dial, c)
			free--
			continue
		}
		if v := p.victim(c, conns, used); v >= 0 {
			used[v] = true
			evict = append(evict, conns[v].Peer)
		}
	}
	return dial, evict
}

// victim returns the connection c may replace, or -1: one of a lower
// tier (not followed) idle for EvictAfter, or, for a candidate that never
// failed, one of its own tier idle for IdleAfter; the lowest tier and
// the longest idle first.
func (p schedPolicy) victim(c schedCand, conns []schedConn, used []bool) int {
	best := -1
	for i, x := range conns {
		if used[i] {
			continue
		}
		ok := (x.Tier > c.Tier && x.Idle >= p.EvictAfter) ||
			(x.Tier == c.Tier && c.Failures == 0 && x.Idle >= p.IdleAfter)
		if !ok {
			continue
		}
		if best < 0 || x.Tier > conns[best].Tier || (x.Tier == conns[best].Tier && x.Idle > conns[best].Idle) {
			best = i
		}
	}
	return best
}

type scheduler struct {
	n    *Node
	log  *slog.Logger
	p    schedPolicy
	tick time.Duration
	wake chan struct{}

	mu       sync.Mutex
	rnd      *rand.Rand
	life     context.Context
	inflight map[feeds.FeedRef]bool // our dials in progress
	reserved int                    // the room client's dials in progress
	closing  map[feeds.FeedRef]bool // rotated out, not gone yet
	// owned are the connections the limit counts: dialled by the
	// scheduler or by the room client (not by the owner's connect).
	owned    map[*conn]bool
	lacking  bool                        // some feed within --hops is missing from the store
	lackedAt time.Time                   // when lacking was computed
	useful   map[feeds.FeedRef]time.Time // last message kept from a peer
	wg       sync.WaitGroup              // dials
}

func newScheduler(n *Node, opts SchedOptions) *scheduler {
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	tick := opts.Tick
	if tick == 0 {
		tick = 2 * time.Second
	}
	return &scheduler{
		n: n, log: n.log.With("component", "scheduler"), p: defaultSchedPolicy(n.cfg.MaxOutgoing), tick: tick,
		wake: make(chan struct{}, 1), rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		inflight: map[feeds.FeedRef]bool{}, owned: map[*conn]bool{}, closing: map[feeds.FeedRef]bool{}, useful: map[feeds.FeedRef]time.Time{},
	}
}

func (s *scheduler) service() service.Service {
	return service.Service{
		Name:      "scheduler",
		OnConnect: s.onConnect,
		OnAppend: func(m *classic.Message) {
			if m.Author == s.n.keys.ID && m.ContentType() == "contact" {
				s.poke() // a follow or a block of ours changes the order
			}
		},
		Run: s.run,
	}
}

// backoffFn draws the back-off of failures in a row.
func (s *scheduler) backoffFn(failures int) time.Duration {
	s.mu.Lock()
	r := s.rnd.Float64()
	s.mu.Unlock()
	return s.p.backoff(failures, r)
}

// poke makes the scheduler look again soon.
func (s *scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *scheduler) run(ctx context.Context) error {
	s.mu.Lock()
	s.life = ctx
	s.mu.Unlock()
	defer func() {
		s.wg.Wait()
		if err := s.n.addrs.save(s.n.now()); err != nil {
			s.log.Warn("could not save the address book", "err", err)
		}
	}()
	if s.tick < 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(s.tick)
	defer t.Stop()
	for {
		s.step()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
	}
}

// onConnect notes a connection: its peer's addresses are seen now, and
// when it ends (context.AfterFunc: no goroutine waits meanwhile) the book
// records how long it lasted.
func (s *scheduler) onConnect(ctx context.Context, p service.Peer) {
	c, ok := p.(*conn)
	if !ok {
		return
	}
	s.n.addrs.seen(c.id, s.n.now())
	context.AfterFunc(ctx, func() { s.ended(c) })
}

func (s *scheduler) ended(c *conn) {
	now := s.n.now()
	why := "connection ended"
	if r := c.reason.Load(); r != nil {
		why = *r
	} else if err := c.e.Err(); err != nil {
		why = err.Error()
	}
	s.n.addrs.connEnded(c.id, now.Sub(c.since), s.p.Short, now, why, s.backoffFn)
	s.mu.Lock()
	delete(s.closing, c.id)
	delete(s.useful, c.id)
	delete(s.owned, c)
	s.mu.Unlock()
	s.poke()
}

// received notes that a message from peer was stored.
func (s *scheduler) received(peer feeds.FeedRef) {
	now := s.n.now()
	s.mu.Lock()
	s.useful[peer] = now
	s.mu.Unlock()
}

// outgoing lists the outgoing connections the limit counts: those the
// scheduler and the room client dialled, not the owner's nor the
// keepers' (configured, remembered, rooms).
func (s *scheduler) outgoing(now time.Time) []schedConn {
	m := s.n.conns
	me := s.n.keys.ID
	conns := m.connected()
	m.mu.Lock()
	kept := map[feeds.FeedRef]bool{}
	for id := range m.targets {
		kept[id] = true
	}
	m.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.owned {
		if c.e.Context().Err() != nil {
			delete(s.owned, c) // ended before it was adopted
		}
	}
	var out []schedConn
	for _, c := range conns {
		if c.direction != "out" || kept[c.id] || !s.owned[c] {
			continue
		}
		tier := 1
		if s.n.graph.Follows(me, c.id) {
			tier = 0
		}
		last := c.since
		if u := s.useful[c.id]; u.After(last) {
			last = u
		}
		out = append(out, schedConn{Peer: c.id, Tier: tier, Idle: now.Sub(last)})
	}
	return out
}

// reserve takes a slot for a dial of the room client; false when the
// outgoing connections are at the limit. release gives it back.
func (s *scheduler) reserve() bool {
	n := len(s.outgoing(s.n.now()))
	s.mu.Lock()
	defer s.mu.Unlock()
	if n+len(s.inflight)+s.reserved >= s.p.Max {
		return false
	}
	s.reserved++
	return true
}

func (s *scheduler) release(c *conn) {
	s.mu.Lock()
	s.reserved--
	s.adoptLocked(c)
	s.mu.Unlock()
	s.poke()
}

// adoptLocked counts c (a dial's result, nil when it failed) against the
// limit, unless it is a connection the owner or a keeper opened before.
func (s *scheduler) adoptLocked(c *conn) {
	if c != nil && c.direction == "out" && c.e.Context().Err() == nil && s.n.now().Sub(c.since) < time.Minute {
		s.owned[c] = true
	}
}

// syncRooms puts the present attendants of our rooms in the book (as
// tunnel addresses) and drops the ones that left.
func (s *scheduler) syncRooms() {
	present := map[string]bool{}
	for _, a := range s.n.rooms.attendantAddrs() {
		present[a.String()] = true
		s.n.addrs.AddKnown(a, SourceRoom)
	}
	s.n.addrs.dropSource(SourceRoom, func(a feeds.Address) bool { return present[a.String()] })
}

// attendantAddrs lists the tunnel addresses of the attendants present in
// the rooms we are an attendant of.
func (rc *roomClient) attendantAddrs() []feeds.Address {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []feeds.Address
	for roomID, r := range rc.rooms {
		if r.state != "attendant" {
			continue
		}
		for id := range r.present {
			out = append(out, feeds.Address{Key: id, Portal: roomID, Transport: feeds.TransportTunnel})
		}
	}
	return out
}

// candidate is the scheduler's view of one known address now.
type candidate struct {
	view     knownView
	state    string // connected, dialling, backoff, ready, standby, blocked, paused, or the keeper's state
	followed bool
	hop      int
}

// survey classifies every known address.
func (s *scheduler) survey(now time.Time) (all []candidate, lacking bool) {
	n := s.n
	me := n.keys.ID
	m := n.conns
	hops := n.graph.Hops(me, n.cfg.Hops)
	lacking = s.isLacking(now)
	m.mu.Lock()
	keeper := map[feeds.FeedRef]string{}
	for id, t := range m.targets {
		keeper[id] = t.state
	}
	dialling := map[feeds.FeedRef]bool{}
	for id := range m.dials {
		dialling[id] = true
	}
	connected := map[feeds.FeedRef]bool{}
	for id := range m.peers {
		connected[id] = true
	}
	m.mu.Unlock()
	s.mu.Lock()
	for id := range s.inflight {
		dialling[id] = true
	}
	s.mu.Unlock()
	for _, k := range n.addrs.snapshot() {
		id := k.addr.Key
		c := candidate{view: k, followed: n.graph.Follows(me, id), hop: noHop}
		if h, ok := hops[id]; ok {
			c.hop = h
		}
		switch {
		case n.graph.Blocks(me, id):
			c.state = "blocked"
		case connected[id]:
			c.state = "connected"
		case keeper[id] != "":
			c.state = keeper[id]
		case dialling[id]:
			c.state = "dialling"
		case k.paused:
			c.state = "paused"
		case now.Before(k.next):
			c.state = "backoff"
		case !c.followed && !lacking:
			c.state = "standby"
		default:
			c.state = "ready"
		}
		all = append(all, c)
	}
	return all, lacking
}

// isLacking reports whether a feed within --hops is missing from the
// store, computed at most every 10 s.
func (s *scheduler) isLacking(now time.Time) bool {
	s.mu.Lock()
	fresh := !s.lackedAt.IsZero() && now.Sub(s.lackedAt) < 10*time.Second && now.After(s.lackedAt)
	l := s.lacking
	s.mu.Unlock()
	if fresh {
		return l
	}
	l = s.n.missingFeeds() > 0
	s.mu.Lock()
	s.lacking, s.lackedAt = l, now
	s.mu.Unlock()
	return l
}

// step looks at the book and the connections once: it closes the
// connections that make room, and dials into the free slots.
func (s *scheduler) step() {
	s.mu.Lock()
	life := s.life
	s.mu.Unlock()
	if life == nil || life.Err() != nil {
		return
	}
	n := s.n
	now := n.now()
	s.syncRooms()
	all, _ := s.survey(now)
	conns := s.outgoing(now)
	s.mu.Lock()
	var cands []schedCand
	for _, c := range all {
		if c.state != "ready" {
			continue
		}
		tier := 1
		if c.followed {
			tier = 0
		}
		cands = append(cands, schedCand{Addr: c.view.addr, Tier: tier, Hop: c.hop, Failures: c.view.failures, LastSeen: c.view.lastSeen, Rand: s.rnd.Uint64()})
	}
	free := s.p.Max - len(conns) - len(s.inflight) - s.reserved
	victims := conns[:0:0]
	for _, c := range conns {
		if !s.closing[c.Peer] {
			victims = append(victims, c)
		}
	}
	dial, evict := s.p.plan(cands, victims, free)
	for _, id := range evict {
		s.closing[id] = true
	}
	for _, c := range dial {
		s.inflight[c.Addr.Key] = true
		s.wg.Add(1)
	}
	s.mu.Unlock()
	for _, id := range evict {
		if c := n.conns.peer(id); c != nil {
			n.addrs.restUntil(id, now.Add(s.p.Rest))
			s.log.Info("rotating an idle peer out", "peer", id.String(), "rest", s.p.Rest)
			n.conns.close(c, fmt.Sprintf("rotated: replicated nothing for %s and another peer waits", s.p.IdleAfter))
		} else {
			s.mu.Lock()
			delete(s.closing, id)
			s.mu.Unlock()
		}
	}
	for _, c := range dial {
		go s.dial(life, c.Addr)
	}
	if err := n.addrs.saveIfDue(now, 30*time.Second); err != nil {
		s.log.Warn("could not save the address book", "err", err)
	}
}

func (s *scheduler) dial(life context.Context, a feeds.Address) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(life, 30*time.Second)
	c, err := s.n.conns.dial(ctx, a)
	cancel()
	s.mu.Lock()
	delete(s.inflight, a.Key)
	s.adoptLocked(c)
	s.mu.Unlock()
	if err != nil && life.Err() == nil {
		s.log.Debug("dial failed", "addr", a.String(), "err", err)
		s.poke() // the slot is free for the next candidate
	}
}

// settle waits for the dials in progress (tests).
func (s *scheduler) settle() { s.wg.Wait() }

// report lists the known addresses for gossip.peers.
func (s *scheduler) report(now time.Time) []gossip.Known {
	all, _ := s.survey(now)
	out := make([]gossip.Known, 0, len(all))
	for _, c := range all {
		k := gossip.Known{
			Address: c.view.addr.String(), ID: c.view.addr.Key.String(), Sources: c.view.sources,
			State: c.state, Followed: c.followed, Failures: c.view.failures, Dials: c.view.dials, LastError: c.view.lastError,
		}
		if c.state == "backoff" {
			k.NextDial = c.view.next.UnixMilli()
		}
		if !c.view.lastSeen.IsZero() {
			k.LastSeen = c.view.lastSeen.UnixMilli()
		}
		if !c.view.lastFailure.IsZero() {
			k.LastFailure = c.view.lastFailure.UnixMilli()
		}
		out = append(out, k)
	}
	return out
}

// AddKnown adds an address the node learnt from source (SourcePub for
// the `pub` messages of feeds we follow): the scheduler may dial it.
func (n *Node) AddKnown(a feeds.Address, source string) {
	if n.addrs.AddKnown(a, source) {
		n.sched.poke()
	}
}
